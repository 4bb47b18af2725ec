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
 * Measures a sample of `pages` heap pages (SYSTEM block sampling, or the whole table when small)
 * in the caller's transaction, and scales it to the table. Escapes (a backslash before a tab,
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
  const { rows } = await client.query<{ rows: number; bytes: number }>(
    `SELECT count(*)::float8 AS rows, coalesce(sum(${width}), 0)::float8 AS bytes FROM ${from}`,
  );
  const scale = 100 / percent;
  return { bytes: Math.round(rows[0].bytes * scale), rows: Math.round(rows[0].rows * scale) };
}
