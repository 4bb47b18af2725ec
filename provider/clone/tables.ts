// What an offline clone copies, read from the source at the clone's snapshot: ordinary tables
// and leaf partitions (never a partitioned parent, which has no rows of its own), largest first.
import type { Client } from "pg";
import { copiedTableSql } from "../pg/catalog";
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
