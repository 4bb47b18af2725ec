// What every verification shares: sessions (their output settings pinned by pg/connect), the tables
// compared, and one table's measure (row count, and an order-independent hash of its rows).
import type { Client } from "pg";
import { copiedTableSql } from "../pg/catalog";
import { qualify } from "../pg/ident";
import { openSession } from "../pg/session";
import type { MigrationSpec, TableRef } from "../spec/types";

/** A table's measure on one side: rows, and with a hash the sum of 64-bit row hashes. */
export interface Measure {
  readonly rows: number;
  readonly hash: string | null;
}

/** A compared table; unlogged ones are copied but never replicated (pg/catalog.ts). */
export interface ListedTable extends TableRef {
  readonly unlogged: boolean;
}

/** Tables compared: those the clone copies (pg/catalog.ts), from the source catalog. */
export async function listTables(source: Client): Promise<ListedTable[]> {
  const { rows } = await source.query<ListedTable>(
    `SELECT n.nspname AS schema, c.relname AS name, c.relpersistence = 'u' AS unlogged
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE ${copiedTableSql()}
      ORDER BY pg_catalog.pg_table_size(c.oid) DESC, 1, 2`,
  );
  return rows;
}

export async function measure(
  client: Client,
  table: TableRef,
  mode: "counts" | "checksum",
): Promise<Measure> {
  const name = qualify(table.schema, table.name);
  // md5 of the row's text, first 64 bits as a signed bigint, summed as numeric (no overflow):
  // independent of row order and physical layout, and sensitive to duplicate rows.
  const sql =
    mode === "counts"
      ? `SELECT count(*)::text AS rows, NULL::text AS hash FROM ONLY ${name}`
      : `SELECT count(*)::text AS rows,
                COALESCE(sum(('x' || substr(md5(ROW(r.*)::text), 1, 16))::bit(64)::bigint), 0)::text AS hash
           FROM ONLY ${name} AS r`;
  const { rows } = await client.query<{ rows: string; hash: string | null }>(sql);
  return { rows: Number(rows[0].rows), hash: rows[0].hash };
}

export const same = (a: Measure, b: Measure): boolean => a.rows === b.rows && a.hash === b.hash;

/** Sessions for one verification worker. */
export interface Pair {
  readonly source: Client;
  readonly target: Client;
}

export async function openPair(spec: MigrationSpec, database: string): Promise<Pair> {
  const source = await openSession(spec.source, database, "pgmigrate verify");
  try {
    const target = await openSession(spec.target, database, "pgmigrate verify");
    return { source, target };
  } catch (err) {
    await source.end().catch(() => undefined);
    throw err;
  }
}

export async function closePair(pair: Pair): Promise<void> {
  await Promise.all([pair.source.end(), pair.target.end()].map((p) => p.catch(() => undefined)));
}

export const keyOf = (table: TableRef): string => `${table.schema}.${table.name}`;
