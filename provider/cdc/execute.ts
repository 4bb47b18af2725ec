// Runs planned statements in the open target transaction: many statements per round trip (one
// simple-protocol query string, values as quoted literals), one by one only to pinpoint a failure.
import type { Client } from "pg";
import { MigrationError, isTransient, pgFields } from "../pg/errors";
import { quoteLiteral } from "../pg/ident";
import type { ApplyRelation, Statement } from "./changes";

/**
 * Size of one query string. OLTP transactions alternate tables, so most statements are one row
 * long: a round trip per statement, not the work, would bound the apply rate.
 */
const CHUNK_SQL_CHARS = 2 * 1024 * 1024;
/**
 * A statement with more values (a multi-row run) goes alone, prepared with parameters: its round
 * trip is small next to its work, and a repeated plan costs less than parsing literals.
 */
const INLINE_MAX_VALUES = 64;
const SAVEPOINT = "pgmigrate_chunk";

/**
 * `text` with each `$n` replaced by values[n-1] as a literal. An uncast literal is of type
 * unknown like an untyped parameter, and `$n::type` becomes `'…'::type`: both resolve to the
 * same type and go through the same input function, so the exact text sent is what is stored.
 * Quoted names (and any quoted text) are copied as they are: a column may be called "a$1".
 */
export function inlineValues(text: string, values: readonly (string | null)[]): string {
  if (values.length === 0) return text;
  let out = "";
  let from = 0;
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"' || c === "'") {
      const end = closingQuote(text, i);
      i = end;
      continue;
    }
    if (c === "$") {
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) >= 48 && text.charCodeAt(j) <= 57) j++;
      if (j > i + 1) {
        const n = Number(text.slice(i + 1, j));
        if (n < 1 || n > values.length) throw new Error(`statement has no value for $${n}`);
        out += text.slice(from, i) + literal(values[n - 1]);
        from = i = j;
        continue;
      }
    }
    i++;
  }
  return out + text.slice(from);
}

/** Index just past the quoted text opening at `start` (doubled quotes stay inside). */
function closingQuote(text: string, start: number): number {
  const q = text[start];
  let i = start + 1;
  for (;;) {
    const end = text.indexOf(q, i);
    if (end < 0) return text.length;
    if (text[end + 1] !== q) return end + 1;
    i = end + 2;
  }
}

// pg's escapeLiteral, without its character-by-character copy for the usual plain value.
function literal(value: string | null): string {
  if (value === null) return "NULL";
  if (!value.includes("'") && !value.includes("\\")) return `'${value}'`;
  return quoteLiteral(value); // doubles quotes; backslashes doubled in an E'' string
}

/** Executes `statements` in order; a statement with a fallback (`ifNoRows`) runs on its own. */
export async function executeStatements(
  client: Client,
  statements: readonly Statement[],
): Promise<void> {
  let chunk: Statement[] = [];
  let sql: string[] = [];
  let chars = 0;
  const flush = async (): Promise<void> => {
    const [c, s] = [chunk, sql];
    [chunk, sql, chars] = [[], [], 0];
    await executeChunk(client, c, s);
  };
  for (const s of statements) {
    if (s.ifNoRows || s.values.length > INLINE_MAX_VALUES || valueChars(s) > CHUNK_SQL_CHARS) {
      await flush();
      await executeOne(client, s);
      continue;
    }
    const text = inlineValues(s.text, s.values);
    if (chunk.length > 0 && chars + text.length > CHUNK_SQL_CHARS) await flush();
    chunk.push(s);
    sql.push(text);
    chars += text.length + 2;
  }
  await flush();
}

function valueChars(s: Statement): number {
  let n = 0;
  for (const v of s.values) if (v !== null) n += v.length;
  return n;
}

async function executeChunk(
  client: Client,
  chunk: readonly Statement[],
  sql: readonly string[],
): Promise<void> {
  if (chunk.length === 0) return;
  // One statement: its parameterised (and maybe prepared) form, no string to build.
  if (chunk.length === 1) return executeOne(client, chunk[0]);
  const relation = chunk[0].relation;
  if (chunk.every((s) => s.relation === relation)) {
    try {
      await client.query(sql.join(";\n"));
    } catch (err) {
      throw applyError(err, relation);
    }
    return;
  }
  // Several tables: a failure must name the right one. The savepoint undoes the chunk's partial
  // effects so it can run again one statement at a time, in the same order.
  try {
    await client.query(
      `SAVEPOINT ${SAVEPOINT};\n${sql.join(";\n")};\nRELEASE SAVEPOINT ${SAVEPOINT}`,
    );
  } catch (err) {
    if (isTransient(err)) throw err;
    try {
      await client.query(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`);
    } catch {
      // The session is unusable: the first error stands, named after the chunk's first table.
      throw applyError(err, relation);
    }
    for (const s of chunk) await executeOne(client, s);
    await client.query(`RELEASE SAVEPOINT ${SAVEPOINT}`);
  }
}

async function executeOne(client: Client, s: Statement): Promise<void> {
  let touched: number | null;
  try {
    const result = await client.query(
      s.name
        ? { name: s.name, text: s.text, values: s.values }
        : { text: s.text, values: s.values },
    );
    touched = result.rowCount;
  } catch (err) {
    throw applyError(err, s.relation);
  }
  if (s.ifNoRows && touched === 0) for (const next of s.ifNoRows) await executeOne(client, next);
}

/**
 * The columns a "value does not fit" error is about. PostgreSQL names the type, not the column
 * ("value too long for type character varying(20)"; numeric overflow gives precision and scale
 * in the detail): the relation's columns declared with that type are the candidates.
 */
export function columnsOfValueError(err: unknown, relation: ApplyRelation): string[] {
  const target = relation.target;
  if (!target) return [];
  const message = err instanceof Error ? err.message : "";
  const tooLong = /value too long for type (.+)$/.exec(message);
  const numeric = /precision (\d+), scale (\d+)/.exec(pgFields(err).detail ?? "");
  const type = tooLong ? tooLong[1] : numeric ? `numeric(${numeric[1]},${numeric[2]})` : undefined;
  if (type === undefined) return [];
  return relation.columns.filter((_, i) => target[i]?.declaredType === type);
}

/** Connection losses pass through untouched (the stream retries them); the rest name the table. */
export function applyError(err: unknown, relation: ApplyRelation): unknown {
  if (isTransient(err) || err instanceof MigrationError) return err;
  const fields = pgFields(err);
  const message = err instanceof Error ? err.message : String(err);
  const columns = columnsOfValueError(err, relation);
  const where =
    columns.length > 0
      ? ` (column ${columns.join(" or ")}: the target column cannot hold the source's value; widen it on the target)`
      : "";
  const pg = fields.table ? {} : { schema: relation.schema, table: relation.name };
  return new MigrationError(
    "replicate",
    `applying changes to ${relation.schema}.${relation.name} failed: ${message}${where}`,
    { cause: err, pg: columns.length === 1 ? { ...pg, column: columns[0] } : pg },
  );
}
