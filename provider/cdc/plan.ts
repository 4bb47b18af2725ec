// Plans the statements for a chunk of changes: consecutive changes of one kind and shape on one
// table become a single multi-row statement, in source order.
import { MigrationError } from "../pg/errors";
import type { ApplyRelation, Change, Statement } from "./changes";
import type { ColumnValue } from "./pgoutput";
import {
  deleteStatement,
  fullDeleteStatement,
  fullUpdateStatements,
  identityUpdateStatement,
  insertStatement,
  isSent,
  keyedUpdate,
  maxRows,
  targetOf,
  truncateStatement,
  updateStatement,
  type KeyedUpdate,
  type Value,
} from "./statements";

/** A run of consecutive changes that one statement applies. */
type Run =
  | { kind: "insert"; relation: ApplyRelation; rows: (readonly ColumnValue[])[] }
  | {
      kind: "update";
      relation: ApplyRelation;
      shapeId: string;
      rows: KeyedUpdate[];
      keys: Set<string>;
    }
  | { kind: "delete"; relation: ApplyRelation; rows: Value[][] };

const shapeIds = new WeakMap<ApplyRelation, Map<string, number>>();

function shapeIdOf(relation: ApplyRelation, set: readonly number[]): string {
  let shapes = shapeIds.get(relation);
  if (!shapes) shapeIds.set(relation, (shapes = new Map()));
  const key = set.join(",");
  let id = shapes.get(key);
  if (id === undefined) shapes.set(key, (id = shapes.size));
  return String(id);
}

/**
 * Statements applying `changes` in order. Runs break on a different table, kind or SET shape,
 * at the parameter limit, and when an update touches a key already in the run (a multi-row
 * UPDATE would apply only one of the two). Relations' target columns must be loaded.
 */
export function planStatements(changes: readonly Change[]): Statement[] {
  const out: Statement[] = [];
  let run: Run | undefined;
  const close = (): void => {
    if (!run) return;
    if (run.kind === "insert") out.push(insertStatement(run.relation, run.rows));
    else if (run.kind === "update") out.push(updateStatement(run.relation, run.shapeId, run.rows));
    else out.push(deleteStatement(run.relation, run.rows));
    run = undefined;
  };
  for (const change of changes) {
    if (change.kind === "truncate") {
      close();
      out.push(truncateStatement(change));
    } else if (change.kind === "insert") {
      const width = change.relation.columns.length;
      if (
        run?.kind !== "insert" ||
        run.relation !== change.relation ||
        run.rows.length >= maxRows(width)
      ) {
        close();
        run = { kind: "insert", relation: change.relation, rows: [] };
      }
      run.rows.push(change.values);
    } else if (change.relation.full) {
      close();
      if (change.kind === "update") out.push(...fullUpdateStatements(change));
      else out.push(fullDeleteStatement(change.relation, change.old));
    } else if (change.kind === "delete") {
      const relation = change.relation;
      const key = relation.keyColumns.map((i) => change.old[i]);
      if (!key.every(isSent))
        throw new MigrationError(
          "replicate",
          `a delete from ${relation.name} does not identify its row`,
        );
      if (
        run?.kind !== "delete" ||
        run.relation !== relation ||
        run.rows.length >= maxRows(key.length)
      ) {
        close();
        run = { kind: "delete", relation, rows: [] };
      }
      run.rows.push(key);
    } else {
      const update = keyedUpdate(change);
      if (update.identity.length > 0) {
        close();
        const shapeId = shapeIdOf(change.relation, [...update.set, -1, ...update.identity]);
        out.push(identityUpdateStatement(change.relation, shapeId, update));
        continue;
      }
      if (update.set.length === 0) continue; // nothing but unchanged values: a no-op
      // A key change, or a new value for a unique column, must not meet other rows in one
      // statement: uniqueness is checked row by row, and the source's order avoided conflicts.
      if (update.keyChanged || update.set.some((i) => targetOf(change.relation)[i].inUniqueIndex)) {
        close();
        out.push(
          updateStatement(change.relation, shapeIdOf(change.relation, update.set) + "k", [update]),
        );
        continue;
      }
      const shapeId = shapeIdOf(change.relation, update.set);
      const keyText = JSON.stringify(update.key);
      const width = update.set.length + update.key.length;
      if (
        run?.kind !== "update" ||
        run.relation !== change.relation ||
        run.shapeId !== shapeId ||
        run.keys.has(keyText) ||
        run.rows.length >= maxRows(width)
      ) {
        close();
        run = { kind: "update", relation: change.relation, shapeId, rows: [], keys: new Set() };
      }
      run.rows.push(update);
      run.keys.add(keyText);
    }
  }
  close();
  return out;
}
