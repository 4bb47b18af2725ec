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

/**
 * Measures a sample of SAMPLE_PAGES of the table's `pages` heap pages (SYSTEM block sampling, or
 * the whole table when small) in the caller's transaction, and scales it to the table. Pages
 * without a visible row are not counted as sampled: a table with long runs of dead pages is
 * overestimated until vacuumed. Escapes (a backslash before a tab,
 * newline or backslash in a value) are not counted: the estimate may be low, never the copy.
 */
export async function estimateCopySize(
  client: Client,
  table: { readonly schema: string; readonly name: string; readonly columns: readonly string[] },
  pages: number,
): Promise<CopyEstimate> {
  if (pages <= 0) return { bytes: 0, rows: 0 };
  const percent = pages <= SAMPLE_PAGES ? 100 : (100 * SAMPLE_PAGES) / pages;
  const from =
    percent >= 100
      ? `${qualify(table.schema, table.name)} t`
      : `${qualify(table.schema, table.name)} t TABLESAMPLE SYSTEM (${percent.toFixed(6)})`;
  // A zero-column row is just its newline.
  const width =
    table.columns.length === 0
      ? "1"
      : table.columns
          .map((c) => `coalesce(octet_length(t.${quoteIdent(c)}::text), 2)`)
          .join(" + ") + ` + ${table.columns.length}`;
  // SYSTEM picks each page with the given probability, so how many it read varies (±6 % at 256
  // pages): scale by the pages that held rows in the sample rather than by the percentage.
  const { rows } = await client.query<{ rows: number; bytes: number; pages: number }>(
    `SELECT count(*)::float8 AS rows, coalesce(sum(${width}), 0)::float8 AS bytes,
            count(DISTINCT (t.ctid::text::point)[0])::float8 AS pages
       FROM ${from}`,
  );
  const sample = rows[0];
  if (percent >= 100 || sample.pages === 0) {
    return { bytes: Math.round(sample.bytes), rows: Math.round(sample.rows) };
  }
  const scale = pages / sample.pages;
  return { bytes: Math.round(sample.bytes * scale), rows: Math.round(sample.rows * scale) };
}
