// Set-based SQL for one table's net changes: one statement per kind (and per set of updated
// columns), each column's values in one array parameter unnested in step. Statement texts
// depend only on the table and the shape, so each is prepared once per session.
import { qualify, quoteIdent } from "../pg/ident";
import type { ApplyRelation, Statement, TargetColumn } from "./changes";
import type { NetChanges } from "./compact";
import { UNCHANGED_TOAST } from "./pgoutput";

type Value = string | null;

/** The array parameter carrying one column's values, and how a row reads it back. */
function unnested(column: TargetColumn, param: number, alias: string): [string, string] {
  if (column.arrayElement !== null)
    return [`unnest($${param}::${column.arrayElement}[])`, `u.${alias}`];
  // Arrays, domains and composites (see TargetColumn.arrayElement): text, read by the type's
  // input function (the cast from text is an I/O conversion for them).
  return [`unnest($${param}::text[])`, `u.${alias}::${column.typeName}`];
}

/**
 * `ROWS FROM (unnest($1::…[]), …) AS u(alias, …)` over the listed columns, parameters numbered
 * in that order (no limit on the number of columns), and each column's value as a row reads it.
 */
function rowsFrom(
  target: readonly TargetColumn[],
  columns: readonly (readonly [index: number, alias: string])[],
): { from: string; reads: string[] } {
  const calls: string[] = [];
  const reads: string[] = [];
  columns.forEach(([i, alias], j) => {
    const [call, read] = unnested(target[i], j + 1, alias);
    calls.push(call);
    reads.push(read);
  });
  const aliases = columns.map(([, alias]) => alias);
  return { from: `ROWS FROM (${calls.join(", ")}) AS u(${aliases.join(", ")})`, reads };
}

/** Column-major parameters: one array per listed column. */
function columnArrays(rows: readonly (readonly Value[])[], count: number): Value[][] {
  const arrays: Value[][] = Array.from({ length: count }, () => new Array<Value>(rows.length));
  rows.forEach((row, r) => {
    for (let j = 0; j < count; j++) arrays[j][r] = row[j];
  });
  return arrays;
}

const tableOf = (relation: ApplyRelation): string => qualify(relation.schema, relation.name);

/** What a set-based statement must touch: a DELETE that finds fewer rows is not exact. */
export interface NetStatement extends Statement {
  readonly expectRows?: number;
}

// Statement names stay short (the server cuts names at 63 bytes): shapes get small numbers.
// Texts depend only on the relation and the shape: built once per session, like the plans.
const prepared = new WeakMap<ApplyRelation, Map<string, { name: string; text: string }>>();
function preparedFor(
  relation: ApplyRelation,
  shape: string,
  build: () => string,
): { name: string; text: string } {
  let shapes = prepared.get(relation);
  if (!shapes) prepared.set(relation, (shapes = new Map()));
  let found = shapes.get(shape);
  if (!found) {
    found = { name: `pgm${relation.id}_n${shapes.size}`, text: build() };
    shapes.set(shape, found);
  }
  return found;
}

/**
 * Statements applying `net` to its table: deletes, updates grouped by the columns they set,
 * then inserts. Target columns must be loaded; the table's route must be keyed or insertOnly.
 * Values go column by column, one array parameter each (node-postgres sends a JS array as an
 * array literal, every element quoted, NULL as NULL).
 */
export function netStatements(relation: ApplyRelation, net: NetChanges): NetStatement[] {
  const target = relation.target;
  if (!target) throw new Error(`target columns of ${relation.name} are not loaded`);
  const out: NetStatement[] = [];
  const keys = relation.keyColumns;
  const col = (i: number): string => quoteIdent(relation.columns[i]);
  const keyAliases = keys.map((i, j) => [i, `k${j}`] as const);

  if (net.deletes.length > 0) {
    const statement = preparedFor(relation, "d", () => {
      const { from, reads } = rowsFrom(target, keyAliases);
      const where = keys.map((i, j) => `t.${col(i)} = ${reads[j]}`).join(" AND ");
      return `DELETE FROM ONLY ${tableOf(relation)} AS t USING ${from} WHERE ${where}`;
    });
    // Keys are unique on the target: each deletes at most one row; fewer means a row the
    // source had is missing here, and a replaced row must not come back from nothing.
    out.push({
      ...statement,
      values: columnArrays(net.deletes, keys.length),
      relation,
      expectRows: net.deletes.length,
    });
  }

  const isKey = new Set(keys);
  const byShape = new Map<string, { set: number[]; columns: Value[][] }>();
  for (const update of net.updates) {
    const set: number[] = [];
    update.values.forEach((v, i) => {
      if (v !== UNCHANGED_TOAST && !isKey.has(i)) set.push(i);
    });
    if (set.length === 0) continue; // nothing but unchanged values: a no-op
    const shape = set.join(",");
    let group = byShape.get(shape);
    if (!group) {
      const columns = Array.from({ length: set.length + keys.length }, (): Value[] => []);
      byShape.set(shape, (group = { set, columns }));
    }
    const { columns } = group;
    set.forEach((i, j) => columns[j].push(update.values[i] as Value));
    update.key.forEach((v, j) => columns[set.length + j].push(v));
  }
  for (const [shape, { set, columns }] of byShape) {
    const statement = preparedFor(relation, `u${shape}`, () => {
      const setAliases = set.map((i, j) => [i, `s${j}`] as const);
      const { from, reads } = rowsFrom(target, [...setAliases, ...keyAliases]);
      const sets = set.map((i, j) => `${col(i)} = ${reads[j]}`);
      const where = keys.map((i, j) => `t.${col(i)} = ${reads[set.length + j]}`).join(" AND ");
      return `UPDATE ONLY ${tableOf(relation)} AS t SET ${sets.join(", ")} FROM ${from} WHERE ${where}`;
    });
    out.push({ ...statement, values: columns, relation });
  }

  if (net.inserts.length > 0) {
    const statement = preparedFor(relation, "i", () => {
      const all = relation.columns.map((_, i) => [i, `c${i}`] as const);
      const { from, reads } = rowsFrom(target, all);
      return (
        `INSERT INTO ${tableOf(relation)} (${relation.columns.map((c) => quoteIdent(c)).join(", ")}) ` +
        `OVERRIDING SYSTEM VALUE SELECT ${reads.join(", ")} FROM ${from}`
      );
    });
    out.push({
      ...statement,
      values: columnArrays(net.inserts, relation.columns.length),
      relation,
    });
  }
  return out;
}
