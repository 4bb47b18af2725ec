// The size a table will have on the COPY stream, estimated before it is copied, so progress
// compares COPY text bytes with COPY text bytes (pg_table_size counts heap pages: fill factor,
// tuple headers, dead rows and compressed TOAST make it unrelated to the stream).
import type { Client } from "pg";
import { qualify, quoteIdent } from "../pg/ident";

/** Heap pages read to estimate one table: small tables are measured whole. */
const SAMPLE_PAGES = 256;

export interface CopyEstimate {
  /** COPY text bytes: each value's text, `\N` for a null, a tab or newline after each. */
  readonly bytes: number;
  readonly rows: number;
}

/** Tables measured per round trip: planning stays fast over a slow link with many tables. */
const BATCH = 100;

export interface TableToEstimate {
  readonly schema: string;
  readonly name: string;
  readonly columns: readonly string[];
  /** Heap pages of the main fork (pg_relation_size / block_size). */
  readonly pages: number;
}

/**
 * Measures a sample of SAMPLE_PAGES of each table's heap pages (SYSTEM block sampling, or the
 * whole table when small) in the caller's transaction, and scales it to the table; estimates in
 * the order of `tables`. Pages without a visible row are not counted as sampled: a table with
 * long runs of dead pages is overestimated until vacuumed. Escapes (a backslash before a tab,
 * newline or backslash in a value) are not counted: the estimate may be low, never the copy.
 */
export async function estimateCopySizes(
  client: Client,
  tables: readonly TableToEstimate[],
): Promise<CopyEstimate[]> {
  const estimates: CopyEstimate[] = tables.map(() => ({ bytes: 0, rows: 0 }));
  const measured = tables.map((t, i) => ({ t, i })).filter(({ t }) => t.pages > 0);
  for (let at = 0; at < measured.length; at += BATCH) {
    const batch = measured.slice(at, at + BATCH);
    const { rows } = await client.query<{ i: number; rows: number; bytes: number; pages: number }>(
      batch.map(({ t, i }) => sampleSql(t, i)).join("\nUNION ALL\n"),
    );
    for (const r of rows) estimates[r.i] = scaled(tables[r.i], r);
  }
  return estimates;
}

function samplePercent(pages: number): number {
  return pages <= SAMPLE_PAGES ? 100 : (100 * SAMPLE_PAGES) / pages;
}

function sampleSql(table: TableToEstimate, index: number): string {
  const percent = samplePercent(table.pages);
  const relation = `${qualify(table.schema, table.name)} t`;
  const from = percent >= 100 ? relation : `${relation} TABLESAMPLE SYSTEM (${percent.toFixed(6)})`;
  // A zero-column row is just its newline.
  const width =
    table.columns.length === 0
      ? "1"
      : table.columns
          .map((c) => `coalesce(octet_length(t.${quoteIdent(c)}::text), 2)`)
          .join(" + ") + ` + ${table.columns.length}`;
  return `(SELECT ${index} AS i, count(*)::float8 AS rows, coalesce(sum(${width}), 0)::float8 AS bytes,
                  count(DISTINCT (t.ctid::text::point)[0])::float8 AS pages
             FROM ${from})`;
}

// SYSTEM picks each page with the given probability, so how many it read varies (±6 % at 256
// pages): scale by the pages that held rows in the sample rather than by the percentage.
function scaled(
  table: TableToEstimate,
  sample: { readonly rows: number; readonly bytes: number; readonly pages: number },
): CopyEstimate {
  if (samplePercent(table.pages) >= 100 || sample.pages === 0) {
    return { bytes: Math.round(sample.bytes), rows: Math.round(sample.rows) };
  }
  const scale = table.pages / sample.pages;
  return { bytes: Math.round(sample.bytes * scale), rows: Math.round(sample.rows * scale) };
}
