// What an offline clone copies, read from the source at the clone's snapshot: ordinary tables
// and leaf partitions (never a partitioned parent, which has no rows of its own), largest first.
import type { Client } from "pg";
import { copiedTableSql } from "../pg/catalog";
import { qualify, quoteIdent } from "../pg/ident";
import type { TableRef } from "../spec/types";
import { estimateCopySizes } from "./estimate";

/** A table to copy and the columns COPY must name on both sides. */
export interface TableToCopy extends TableRef {
  /** Unquoted column names in attnum order, without dropped and GENERATED ... STORED columns. */
  readonly columns: readonly string[];
  /** Estimated size on the COPY stream (clone/estimate.ts): the total progress counts towards. */
  readonly estimatedBytes: number;
  /** Estimated rows, from the same sample. */
  readonly estimatedRows: number;
  /** Heap pages of the main fork when planned: what block ranges divide (clone/ranges.ts). */
  readonly pages: number;
  /** Heap bytes (pages × block size): compared with the split threshold. */
  readonly heapBytes: number;
  /**
   * A one-column smallint/integer/bigint primary key and its least and greatest values at the
   * snapshot (null: no rows); read only where ranges are by key (sources before 14, large tables).
   */
  readonly integerKey?: {
    readonly column: string;
    readonly min: string | null;
    readonly max: string | null;
  };
}

/**
 * `tables` with the integer primary key and its bounds of each table over `threshold` bytes,
 * read in the caller's snapshot transaction (index endpoints: two cheap probes per table).
 */
export async function withIntegerKeys(
  client: Client,
  tables: readonly TableToCopy[],
  threshold: number,
): Promise<TableToCopy[]> {
  const out: TableToCopy[] = [];
  for (const table of tables) {
    if (table.heapBytes <= threshold) {
      out.push(table);
      continue;
    }
    const { rows } = await client.query<{ column: string }>(
      `SELECT a.attname::text AS column
         FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = $1::regclass AND i.indisprimary AND i.indnatts = 1
          AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)`,
      [qualify(table.schema, table.name)],
    );
    if (rows.length === 0) {
      out.push(table);
      continue;
    }
    const column = quoteIdent(rows[0].column);
    const [bounds] = (
      await client.query<{ min: string | null; max: string | null }>(
        `SELECT min(${column})::text AS min, max(${column})::text AS max FROM ONLY ${qualify(table.schema, table.name)}`,
      )
    ).rows;
    out.push({ ...table, integerKey: { column: rows[0].column, ...bounds } });
  }
  return out;
}

/**
 * Tables whose rows a migration copies (pg/catalog.ts decides which; unlogged ones included),
 * with their columns and estimated COPY sizes; largest on disk first.
 */
export async function listTablesToCopy(
  client: Client,
  sourceMajor: number,
): Promise<TableToCopy[]> {
  // attgenerated exists from PostgreSQL 12; generated columns are computed again on the target.
  const notGenerated = sourceMajor >= 12 ? "AND a.attgenerated = ''" : "";
  const { rows } = await client.query<{
    schema: string;
    name: string;
    columns: string[];
    pages: string;
    heap_bytes: string;
  }>(
    `SELECT n.nspname AS schema, c.relname AS name,
            (pg_relation_size(c.oid) / current_setting('block_size')::int)::text AS pages,
            pg_relation_size(c.oid)::text AS heap_bytes,
            ARRAY(SELECT a.attname::text FROM pg_attribute a
                   WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ${notGenerated}
                   ORDER BY a.attnum) AS columns
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE ${copiedTableSql()}
      ORDER BY pg_table_size(c.oid) DESC, n.nspname, c.relname`,
  );
  const estimates = await estimateCopySizes(
    client,
    rows.map((r) => ({ ...r, pages: Number(r.pages) })),
  );
  return rows.map((r, i) => ({
    schema: r.schema,
    name: r.name,
    columns: r.columns,
    estimatedBytes: estimates[i].bytes,
    estimatedRows: estimates[i].rows,
    pages: Number(r.pages),
    heapBytes: Number(r.heap_bytes),
  }));
}

/** Facts about the source database the clone reports as warnings. */
export async function sourceNotes(client: Client): Promise<string[]> {
  const { rows } = await client.query<{ extconfig: string[] }>(
    `SELECT ARRAY(SELECT c.oid::regclass::text FROM pg_extension e, unnest(e.extconfig) AS x(oid)
                    JOIN pg_class c ON c.oid = x.oid WHERE c.relkind = 'r') AS extconfig`,
  );
  const notes: string[] = [];
  if (rows[0].extconfig.length > 0) {
    notes.push(
      `rows users added to extension configuration tables were not copied: ${rows[0].extconfig.join(", ")}`,
    );
  }
  return notes;
}
