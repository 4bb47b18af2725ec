// Table-by-table comparison of two databases for tests: row count plus an order-independent
// hash of every row's text form, equal across PostgreSQL 13-17 when the data is equal.
import type { Client } from "pg";
import { qualify } from "../../provider/pg/ident";
import type { TableRef } from "../../provider/spec/types";
import type { PgServer } from "./postgres";

/** Row count and content hash of one table. */
export interface TableChecksum {
  readonly rows: number;
  readonly hash: string;
}

export interface DatabaseComparison {
  readonly equal: boolean;
  /** One line per table missing on a side or differing; names the table. */
  readonly differences: readonly string[];
}

/** Last value and `is_called` of one sequence, i.e. what the next `nextval` continues from. */
export interface SequenceState {
  readonly lastValue: string;
  readonly isCalled: boolean;
}

/**
 * Session settings that make text output independent of server, database and role defaults
 * (time zone, styles, float digits, currency locale, search_path for regclass/regproc names), so
 * the same values hash the same on any server whatever `ALTER DATABASE ... SET` says.
 */
export const STABLE_SESSION_SQL =
  "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; " +
  "SET extra_float_digits = 1; SET bytea_output = 'hex'; SET lc_monetary = 'C'; " +
  "SET search_path = pg_catalog; SET xmloption = content";

/** `schema.name`, unquoted: the key of checksum maps and the form used in difference lines. */
export function tableKey(table: TableRef): string {
  return `${table.schema}.${table.name}`;
}

// Ordinary tables and partition leaves (relkind 'r'); partitioned parents ('p') hold no rows.
// Our own schemas are not user data; a user schema named pgmigrate_archive is.
const USER_TABLES_SQL = `
  SELECT n.nspname AS schema, c.relname AS name
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r'
    AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgmigrate', 'pgmigrate_apply')
    AND n.nspname NOT LIKE 'pg\\_toast%'
    AND n.nspname NOT LIKE 'pg\\_temp\\_%'
  ORDER BY 1, 2`;

// md5 of each row's text form, split into two 60-bit numbers that are summed: the sums do not
// depend on row order, and a change in any value (bytea, TOASTed text) changes the row's md5.
// `(r.*)` is the whole row even if the table has a column named r.
function tableChecksumSql(table: TableRef): string {
  return `
    SELECT count(*) AS rows,
           md5(coalesce(sum(('x' || substr(h, 1, 15))::bit(60)::bigint), 0)::text || ':' ||
               coalesce(sum(('x' || substr(h, 16, 15))::bit(60)::bigint), 0)::text) AS hash
    FROM (SELECT md5((r.*)::text) AS h FROM ONLY ${qualify(table.schema, table.name)} AS r) AS s`;
}

/** Checksums of every user table of `database`, keyed by `schema.name`, from one snapshot. */
export async function checksumDatabase(
  server: PgServer,
  database: string,
): Promise<Map<string, TableChecksum>> {
  const client = await server.connect(database);
  try {
    await client.query(STABLE_SESSION_SQL);
    await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const result = new Map<string, TableChecksum>();
    for (const table of await userTables(client)) {
      const { rows } = await client.query<{ rows: string; hash: string }>(tableChecksumSql(table));
      result.set(tableKey(table), { rows: Number(rows[0].rows), hash: rows[0].hash });
    }
    await client.query("COMMIT");
    return result;
  } finally {
    await client.end();
  }
}

async function userTables(client: Client): Promise<TableRef[]> {
  const { rows } = await client.query<{ schema: string; name: string }>(USER_TABLES_SQL);
  return rows;
}

/** Compares two databases table by table; `differences` is empty when they hold the same rows. */
export async function compareDatabases(
  a: PgServer,
  dbA: string,
  b: PgServer,
  dbB: string,
): Promise<DatabaseComparison> {
  const [sumsA, sumsB] = await Promise.all([checksumDatabase(a, dbA), checksumDatabase(b, dbB)]);
  const labelA = `${a.host}:${a.port}/${dbA}`;
  const labelB = `${b.host}:${b.port}/${dbB}`;
  const differences: string[] = [];
  const keys = [...new Set([...sumsA.keys(), ...sumsB.keys()])].sort();
  for (const key of keys) {
    const left = sumsA.get(key);
    const right = sumsB.get(key);
    if (!right) differences.push(`${key}: only in ${labelA}`);
    else if (!left) differences.push(`${key}: only in ${labelB}`);
    else if (left.rows !== right.rows) {
      differences.push(`${key}: ${left.rows} rows in ${labelA}, ${right.rows} rows in ${labelB}`);
    } else if (left.hash !== right.hash) {
      differences.push(`${key}: same row count (${left.rows}) but different contents`);
    }
  }
  return { equal: differences.length === 0, differences };
}

/** Every user sequence's state, keyed by `schema.name`. */
export async function sequenceStates(
  server: PgServer,
  database: string,
): Promise<Map<string, SequenceState>> {
  const client = await server.connect(database);
  try {
    const { rows: sequences } = await client.query<{ schema: string; name: string }>(
      `SELECT schemaname AS schema, sequencename AS name FROM pg_sequences
       WHERE schemaname NOT IN ('pgmigrate', 'pgmigrate_apply') ORDER BY 1, 2`,
    );
    const result = new Map<string, SequenceState>();
    for (const seq of sequences) {
      const { rows } = await client.query<{ last_value: string; is_called: boolean }>(
        `SELECT last_value, is_called FROM ${qualify(seq.schema, seq.name)}`,
      );
      result.set(tableKey(seq), { lastValue: rows[0].last_value, isCalled: rows[0].is_called });
    }
    return result;
  } finally {
    await client.end();
  }
}
