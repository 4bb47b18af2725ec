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
const shapeIds = new WeakMap<ApplyRelation, Map<string, number>>();
function shapeId(relation: ApplyRelation, shape: string): number {
  let shapes = shapeIds.get(relation);
  if (!shapes) shapeIds.set(relation, (shapes = new Map()));
  let id = shapes.get(shape);
  if (id === undefined) shapes.set(shape, (id = shapes.size));
  return id;
}

function named(
  relation: ApplyRelation,
  shape: string,
  text: string,
  values: Value[][],
): NetStatement {
  // node-postgres sends a JS array as an array literal, every element quoted, NULL as NULL.
  return {
    name: `pgm${relation.id}_n${shape}`,
    text,
    values,
    relation,
  };
}

/**
 * Statements applying `net` to its table: deletes, updates grouped by the columns they set,
 * then inserts. Target columns must be loaded; the table's route must be keyed or insertOnly.
 */
export function netStatements(relation: ApplyRelation, net: NetChanges): NetStatement[] {
  const target = relation.target;
  if (!target) throw new Error(`target columns of ${relation.name} are not loaded`);
  const out: NetStatement[] = [];
  const keys = relation.keyColumns;
  const col = (i: number): string => quoteIdent(relation.columns[i]);
  const keyAliases = keys.map((i, j) => [i, `k${j}`] as const);

  if (net.deletes.length > 0) {
    const { from, reads } = rowsFrom(target, keyAliases);
    const where = keys.map((i, j) => `t.${col(i)} = ${reads[j]}`).join(" AND ");
    const text = `DELETE FROM ONLY ${tableOf(relation)} AS t USING ${from} WHERE ${where}`;
    // Keys are unique on the target: each deletes at most one row; fewer means a row the
    // source had is missing here, and a replaced row must not come back from nothing.
    out.push({
      ...named(relation, "d", text, columnArrays(net.deletes, keys.length)),
      expectRows: net.deletes.length,
    });
  }

  const isKey = new Set(keys);
  const byShape = new Map<string, { set: number[]; rows: Value[][] }>();
  for (const update of net.updates) {
    const set = update.values.flatMap((v, i) =>
      v !== UNCHANGED_TOAST && !isKey.has(i) ? [i] : [],
    );
    if (set.length === 0) continue; // nothing but unchanged values: a no-op
    const shape = set.join(",");
    let group = byShape.get(shape);
    if (!group) byShape.set(shape, (group = { set, rows: [] }));
    group.rows.push([...set.map((i) => update.values[i] as Value), ...update.key]);
  }
  for (const [shape, { set, rows }] of byShape) {
    const setAliases = set.map((i, j) => [i, `s${j}`] as const);
    const { from, reads } = rowsFrom(target, [...setAliases, ...keyAliases]);
    const sets = set.map((i, j) => `${col(i)} = ${reads[j]}`);
    const where = keys.map((i, j) => `t.${col(i)} = ${reads[set.length + j]}`).join(" AND ");
    const text = `UPDATE ONLY ${tableOf(relation)} AS t SET ${sets.join(", ")} FROM ${from} WHERE ${where}`;
    out.push(
      named(
        relation,
        `u${shapeId(relation, shape)}`,
        text,
        columnArrays(rows, set.length + keys.length),
      ),
    );
  }

  if (net.inserts.length > 0) {
    const all = relation.columns.map((_, i) => [i, `c${i}`] as const);
    const { from, reads } = rowsFrom(target, all);
    const text =
      `INSERT INTO ${tableOf(relation)} (${relation.columns.map((c) => quoteIdent(c)).join(", ")}) ` +
      `OVERRIDING SYSTEM VALUE SELECT ${reads.join(", ")} FROM ${from}`;
    out.push(named(relation, "i", text, columnArrays(net.inserts, all.length)));
  }
  return out;
}
