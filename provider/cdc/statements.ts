// SQL for changes: one builder per statement shape. Values are always text parameters, names
// always quoted; multi-row forms join a VALUES list on the key.
import { MigrationError } from "../pg/errors";
import { qualify, quoteIdent } from "../pg/ident";
import type { ApplyRelation, Change, Statement, TargetColumn } from "./changes";
import { UNCHANGED_TOAST, type ColumnValue } from "./pgoutput";

/** Rows per multi-row statement (and PostgreSQL allows at most 65535 parameters). */
export const MAX_ROWS_PER_STATEMENT = 500;
const MAX_PARAMS = 65_535;

export type Value = string | null;
type UpdateChange = Extract<Change, { kind: "update" }>;

export const isSent = (v: ColumnValue): v is Value => v !== UNCHANGED_TOAST;
const col = (relation: ApplyRelation, i: number): string => quoteIdent(relation.columns[i]);
const tableOf = (relation: ApplyRelation): string => qualify(relation.schema, relation.name);
// UPDATE, DELETE and SELECT on an inheritance parent also reach its children; a change names
// exactly one table (children arrive as relations of their own), so every read or write of a
// row says ONLY.
const onlyTableOf = (relation: ApplyRelation): string => `ONLY ${tableOf(relation)}`;

export function targetOf(relation: ApplyRelation): readonly TargetColumn[] {
  if (!relation.target) throw new Error(`target columns of ${relation.name} are not loaded`);
  return relation.target;
}

export function maxRows(width: number): number {
  return Math.max(1, Math.min(MAX_ROWS_PER_STATEMENT, Math.floor(MAX_PARAMS / Math.max(1, width))));
}

// Prepared only when the same text will recur: single rows and full-size runs.
function statement(
  relation: ApplyRelation,
  shape: string,
  rows: number,
  full: number,
  text: string,
  values: Value[],
): Statement {
  const name = rows === 1 || rows === full ? `pgm${relation.id}_${shape}_${rows}` : undefined;
  return { name, text, values, relation };
}

function placeholders(from: number, count: number, casts?: readonly string[]): string {
  const items = Array.from(
    { length: count },
    (_, j) => `$${from + j}${casts ? "::" + casts[j] : ""}`,
  );
  return `(${items.join(", ")})`;
}

/** How an update that finds its row by key is applied. */
export interface KeyedUpdate {
  readonly key: Value[];
  /** Column indexes to SET (unchanged TOAST values and identity ALWAYS columns left out). */
  readonly set: number[];
  /** Identity ALWAYS columns with a new value that may differ (UPDATE ... SET c = DEFAULT). */
  readonly identity: number[];
  readonly keyChanged: boolean;
  readonly values: readonly ColumnValue[];
}

/** A row is found by its replica identity: a table without one cannot be updated or deleted from. */
function requireIdentity(relation: ApplyRelation): void {
  if (relation.keyColumns.length > 0) return;
  throw new MigrationError(
    "replicate",
    `table ${relation.schema}.${relation.name} has no replica identity: add a primary key or set REPLICA IDENTITY FULL`,
    { pg: { schema: relation.schema, table: relation.name } },
  );
}

export function keyedUpdate(change: UpdateChange): KeyedUpdate {
  const { relation, old, values } = change;
  requireIdentity(relation);
  const keys = relation.keyColumns;
  const newKey = keys.map((i) => values[i]);
  const oldKey = old ? keys.map((i) => old[i]) : undefined;
  const key = oldKey ?? newKey;
  if (!key.every(isSent)) {
    throw new MigrationError(
      "replicate",
      `an update of ${relation.schema}.${relation.name} does not identify its row`,
      {
        pg: { schema: relation.schema, table: relation.name },
      },
    );
  }
  const keyChanged = oldKey !== undefined && newKey.some((v, j) => isSent(v) && v !== oldKey[j]);
  const target = targetOf(relation);
  const isKey = new Set(keys);
  const sent = values
    .map((_, i) => i)
    .filter((i) => isSent(values[i]) && (keyChanged || !isKey.has(i)));
  const set = sent.filter((i) => !target[i].identityAlways);
  const identity = sent.filter((i) => target[i].identityAlways);
  return { key: key as Value[], set, identity, keyChanged, values };
}

/**
 * Identity ALWAYS columns refuse explicit values in UPDATE, yet `SET c = DEFAULT` on the source
 * gives them a new one: the statement runs with the columns made BY DEFAULT for its duration
 * (inside the apply transaction, so a failure leaves them ALWAYS).
 */
function overridingIdentity(
  relation: ApplyRelation,
  columns: readonly number[],
  statement: Statement,
): Statement[] {
  const alter = (mode: string): Statement => ({
    text:
      `ALTER TABLE ${tableOf(relation)} ` +
      columns.map((i) => `ALTER COLUMN ${col(relation, i)} SET GENERATED ${mode}`).join(", "),
    values: [],
    relation,
  });
  return [alter("BY DEFAULT"), statement, alter("ALWAYS")];
}

/**
 * A keyed update of a table with identity ALWAYS columns. The source does not say whether their
 * value changed: the update runs guarded by the new values, and only when that finds no row
 * (the value changed, or the row is missing) again with the columns overridden.
 */
export function identityUpdateStatement(
  relation: ApplyRelation,
  shapeId: string,
  update: KeyedUpdate,
): Statement {
  const { set, identity, values } = update;
  const keys = relation.keyColumns;
  const sets = set.map((i, j) => `${col(relation, i)} = $${j + 1}`);
  // Keys and identity columns are never NULL.
  const where = [...keys, ...identity].map(
    (i, j) => `${col(relation, i)} = $${set.length + j + 1}`,
  );
  // Nothing else to set: a SELECT reports whether the row already holds the values.
  const text =
    sets.length > 0
      ? `UPDATE ${onlyTableOf(relation)} SET ${sets.join(", ")} WHERE ${where.join(" AND ")}`
      : `SELECT FROM ${onlyTableOf(relation)} WHERE ${where.join(" AND ")}`;
  const guardValues = [
    ...set.map((i) => values[i] as Value),
    ...update.key,
    ...identity.map((i) => values[i] as Value),
  ];
  const guard = statement(relation, `g${shapeId}`, 1, 1, text, guardValues);
  const all = updateStatement(relation, `${shapeId}i`, [{ ...update, set: [...set, ...identity] }]);
  return { ...guard, ifNoRows: overridingIdentity(relation, identity, all) };
}

export function insertStatement(
  relation: ApplyRelation,
  rows: readonly (readonly ColumnValue[])[],
): Statement {
  const n = relation.columns.length;
  if (n === 0) {
    // A table without columns still has rows: VALUES () is not SQL.
    const text = `INSERT INTO ${tableOf(relation)} SELECT FROM generate_series(1, ${rows.length})`;
    return { text, values: [], relation };
  }
  const tuples = rows.map((_, r) => placeholders(r * n + 1, n));
  const text =
    `INSERT INTO ${tableOf(relation)} (${relation.columns.map((c) => quoteIdent(c)).join(", ")}) ` +
    `OVERRIDING SYSTEM VALUE VALUES ${tuples.join(", ")}`;
  return statement(relation, "i", rows.length, maxRows(n), text, rows.flat() as Value[]);
}

// One row: plain parameters take the column's type. Several rows: a VALUES list joined on the
// key, with casts because VALUES columns have no type of their own. The casts name the type
// without its modifier (TargetColumn.typeName): an explicit cast to varchar(n) or numeric(p,s)
// would truncate or round, while the assignment to the column checks and fails as the
// single-row statement does.
export function updateStatement(
  relation: ApplyRelation,
  shapeId: string,
  rows: readonly KeyedUpdate[],
): Statement {
  const keys = relation.keyColumns;
  const set = rows[0].set;
  const width = set.length + keys.length;
  const values = rows.flatMap((row) => [...set.map((i) => row.values[i] as Value), ...row.key]);
  if (rows.length === 1) {
    const sets = set.map((i, j) => `${col(relation, i)} = $${j + 1}`);
    const where = keys.map((i, j) => `${col(relation, i)} = $${set.length + j + 1}`);
    const text = `UPDATE ${onlyTableOf(relation)} SET ${sets.join(", ")} WHERE ${where.join(" AND ")}`;
    return statement(relation, `u${shapeId}`, 1, maxRows(width), text, values);
  }
  const target = targetOf(relation);
  const casts = [...set, ...keys].map((i) => target[i].typeName);
  const tuples = rows.map((_, r) => placeholders(r * width + 1, width, casts));
  const names = casts.map((_, j) => `c${j}`);
  const sets = set.map((i, j) => `${col(relation, i)} = v.c${j}`);
  const where = keys.map((i, j) => `t.${col(relation, i)} = v.c${set.length + j}`);
  const text =
    `UPDATE ${onlyTableOf(relation)} AS t SET ${sets.join(", ")} ` +
    `FROM (VALUES ${tuples.join(", ")}) AS v(${names.join(", ")}) WHERE ${where.join(" AND ")}`;
  return statement(relation, `u${shapeId}`, rows.length, maxRows(width), text, values);
}

export function deleteStatement(relation: ApplyRelation, rows: readonly Value[][]): Statement {
  requireIdentity(relation);
  const keys = relation.keyColumns;
  const values = rows.flat();
  if (rows.length === 1) {
    const where = keys.map((i, j) => `${col(relation, i)} = $${j + 1}`);
    const text = `DELETE FROM ${onlyTableOf(relation)} WHERE ${where.join(" AND ")}`;
    return statement(relation, "d", 1, maxRows(keys.length), text, values);
  }
  const target = targetOf(relation);
  const casts = keys.map((i) => target[i].typeName);
  const tuples = rows.map((_, r) => placeholders(r * keys.length + 1, keys.length, casts));
  const names = keys.map((_, j) => `c${j}`);
  const where = keys.map((i, j) => `t.${col(relation, i)} = v.c${j}`);
  const text =
    `DELETE FROM ${onlyTableOf(relation)} AS t USING (VALUES ${tuples.join(", ")}) AS v(${names.join(", ")}) ` +
    `WHERE ${where.join(" AND ")}`;
  return statement(relation, "d", rows.length, maxRows(keys.length), text, values);
}

/**
 * Identity FULL: the row is the first one holding the old values in every sent column; NULLs
 * match IS NULL. ctid picks exactly one row when identical duplicates exist. Each old value is
 * read as the column's type and both sides printed by the target: the source's text may come
 * from another TimeZone (timestamptz inside arrays, ranges, composites), and `=` alone cannot
 * tell 1.0 from 1.00 or 0 from -0. Types without `=` (json, point, xml) compare as text only.
 */
function rowMatch(
  relation: ApplyRelation,
  old: readonly ColumnValue[],
  firstParam: number,
): { sql: string; values: Value[] } {
  const target = targetOf(relation);
  const conditions: string[] = [];
  const values: Value[] = [];
  old.forEach((v, i) => {
    if (!isSent(v)) return; // an unchanged TOAST value was not sent: it cannot be compared
    if (v === null) conditions.push(`${col(relation, i)} IS NULL`);
    else {
      values.push(v);
      const p = `$${firstParam + values.length - 1}::${target[i].typeName}`;
      const same = `${col(relation, i)}::text = (${p})::text`;
      // `=` first: an index on the column can find the candidates.
      conditions.push(target[i].hasEquality ? `${col(relation, i)} = ${p} AND ${same}` : same);
    }
  });
  const where = conditions.length > 0 ? conditions.join(" AND ") : "true";
  return {
    sql: `ctid = (SELECT ctid FROM ${onlyTableOf(relation)} WHERE ${where} LIMIT 1)`,
    values,
  };
}

export function fullUpdateStatements(change: UpdateChange): Statement[] {
  const { relation, old, values } = change;
  if (!old) return [];
  const target = targetOf(relation);
  // Only what differs: fewer index updates, and identity ALWAYS columns only when they changed.
  const set = values.map((_, i) => i).filter((i) => isSent(values[i]) && values[i] !== old[i]);
  if (set.length === 0) return [];
  const sets = set.map((i, j) => `${col(relation, i)} = $${j + 1}`);
  const match = rowMatch(relation, old, set.length + 1);
  const text = `UPDATE ${onlyTableOf(relation)} SET ${sets.join(", ")} WHERE ${match.sql}`;
  const update = {
    text,
    values: [...set.map((i) => values[i] as Value), ...match.values],
    relation,
  };
  const identity = set.filter((i) => target[i].identityAlways);
  return identity.length > 0 ? overridingIdentity(relation, identity, update) : [update];
}

export function fullDeleteStatement(
  relation: ApplyRelation,
  old: readonly ColumnValue[],
): Statement {
  const match = rowMatch(relation, old, 1);
  return {
    text: `DELETE FROM ${onlyTableOf(relation)} WHERE ${match.sql}`,
    values: match.values,
    relation,
  };
}

export function truncateStatement(change: Extract<Change, { kind: "truncate" }>): Statement {
  // ONLY: leaves and inheritance children arrive as relations of their own.
  const names = change.relations.map(tableOf).join(", ");
  const text =
    `TRUNCATE ONLY ${names}${change.restartIdentity ? " RESTART IDENTITY" : ""}` +
    `${change.cascade ? " CASCADE" : ""}`;
  return { text, values: [], relation: change.relations[0] };
}
