// On a snapshot mismatch only: finds the first differing row by a keyed merge of both sides,
// each read in the md5 order of its key so the walk never depends on either server's collation.
import type { Client } from "pg";
import { qualify, quoteIdent } from "../pg/ident";
import type { TableRef } from "../spec/types";

/** Rows fetched per round trip from each side's cursor. */
const BATCH = 5_000;
const CURSOR = "pgmigrate_verify_diff";

interface KeyedRow {
  /** md5 of the key's text: the merge order (hex, so JS string order equals COLLATE "C"). */
  readonly k: string;
  readonly key: string;
  /** md5 of the whole row's text. */
  readonly h: string;
}

/** The primary key's columns in index order, read from `client`'s catalog; empty without one. */
async function primaryKey(client: Client, table: TableRef): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT a.attname::text AS name
       FROM pg_catalog.pg_index i
       JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, position)
       JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
      WHERE n.nspname = $1 AND c.relname = $2 AND i.indisprimary
      ORDER BY k.position`,
    [table.schema, table.name],
  );
  return rows.map((r) => r.name);
}

/** Reads a cursor batch by batch; the cursor lives in the caller's open transaction. */
class CursorReader {
  private rows: KeyedRow[] = [];
  private index = 0;
  private done = false;
  constructor(private readonly client: Client) {}

  async next(): Promise<KeyedRow | undefined> {
    if (this.index >= this.rows.length) {
      if (this.done) return undefined;
      this.rows = (await this.client.query<KeyedRow>(`FETCH ${BATCH} FROM ${CURSOR}`)).rows;
      this.index = 0;
      if (this.rows.length < BATCH) this.done = true;
      if (this.rows.length === 0) return undefined;
    }
    return this.rows[this.index++];
  }
}

/**
 * Describes the first difference between `table` on source and target, or undefined when the
 * rows are the same. `source` must already be inside the snapshot's transaction; `target` must
 * be outside any transaction (one is opened and ended here). Both sessions output values in
 * the same deterministic settings, so equal values have equal text.
 */
export async function firstDifference(
  source: Client,
  target: Client,
  table: TableRef,
): Promise<string | undefined> {
  const keyColumns = await primaryKey(source, table);
  const keyed = keyColumns.length > 0;
  const key = keyed
    ? `ROW(${keyColumns.map((c) => `r.${quoteIdent(c)}`).join(", ")})::text`
    : "ROW(r.*)::text";
  const sql = `DECLARE ${CURSOR} NO SCROLL CURSOR FOR
       SELECT s.k, s.key, s.h FROM (
         SELECT md5(${key}) AS k, ${key} AS key, md5(ROW(r.*)::text) AS h
           FROM ${qualify(table.schema, table.name)} AS r) AS s
        ORDER BY s.k COLLATE "C", s.h COLLATE "C"`;
  await target.query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
  try {
    await Promise.all([source.query(sql), target.query(sql)]);
    const found = await walk(new CursorReader(source), new CursorReader(target), keyed);
    await source.query(`CLOSE ${CURSOR}`);
    return found;
  } finally {
    await target.query("ROLLBACK").catch(() => undefined);
  }
}

async function walk(
  source: CursorReader,
  target: CursorReader,
  keyed: boolean,
): Promise<string | undefined> {
  let s = await source.next();
  let t = await target.next();
  while (s !== undefined || t !== undefined) {
    // Without a primary key the key is the whole row: name no values, only what differs.
    if (t === undefined || (s !== undefined && s.k < t.k)) {
      return keyed
        ? `key ${s?.key} is missing on the target`
        : "a source row is missing on the target";
    }
    if (s === undefined || t.k < s.k) {
      return keyed
        ? `key ${t.key} exists only on the target`
        : "the target has a row the source has not";
    }
    if (s.h !== t.h) return `the row with key ${s.key} differs`;
    [s, t] = await Promise.all([source.next(), target.next()]);
  }
  return undefined;
}
