// Net-change compaction: the changes of a chunk (many source transactions applied in one target
// transaction) reduced to each row's final state per table, for set-based statements. Anything
// whose net effect is not certain is a barrier, applied in source order where it stood.
import type { ApplyRelation, Change } from "./changes";
import { UNCHANGED_TOAST, type ColumnValue } from "./pgoutput";

type Value = string | null;

/** An existing row (found by `key`) updated in place: unsent TOAST values stay as they are. */
export interface NetUpdate {
  readonly key: readonly Value[];
  readonly values: readonly ColumnValue[];
}

/** One table's net changes, applied in this order: deletes, updates, inserts. */
export interface NetChanges {
  /** Keys of rows that existed before the chunk and do not afterwards (or were replaced). */
  readonly deletes: Value[][];
  readonly updates: NetUpdate[];
  /** Complete rows that exist afterwards and did not before (or replace a deleted one). */
  readonly inserts: Value[][];
}

export type Step =
  | { readonly kind: "net"; readonly relation: ApplyRelation; readonly net: NetChanges }
  | { readonly kind: "ordered"; readonly changes: Change[] };

/** Where a relation's changes may go; decided from the target catalog. */
type Route = "keyed" | "insertOnly" | "ordered" | "global";

/**
 * How `relation`'s changes are applied set-based:
 * - keyed: inserts, updates and deletes compact by replica identity key;
 * - insertOnly: inserts are appended in a set (updates and deletes are barriers), for tables
 *   found by all their values (identity FULL, duplicates allowed) or without identity;
 * - ordered: every change is a barrier for its table;
 * - global: every change is a barrier for all tables (triggers or rules fire on apply and may
 *   touch other tables).
 */
function routeOf(relation: ApplyRelation): Route {
  const target = relation.target;
  if (!target || relation.firesOnApply) return "global";
  if (relation.columns.length === 0 || !target.every((c) => c.setBased)) return "ordered";
  const keyed =
    !relation.full &&
    relation.keyColumns.length > 0 &&
    relation.keyColumns.every((i) => target[i].hasEquality) &&
    // Identity ALWAYS columns take new values only through guarded, ordered statements.
    !target.some((c) => c.identityAlways);
  return keyed ? "keyed" : "insertOnly";
}

const isSent = (v: ColumnValue): v is Value => v !== UNCHANGED_TOAST;
const allSent = (values: readonly ColumnValue[]): values is readonly Value[] =>
  values.every(isSent);
// Values never contain NUL: it separates the parts of a key.
const keyText = (key: readonly Value[]): string =>
  key.map((v) => (v === null ? "\u0001" : `${v}`)).join("\u0000");

/** The row as it is now in the chunk: inserted in it, or an existing row updated in place. */
type Live =
  { kind: "insert"; values: Value[] } | { kind: "update"; key: Value[]; values: ColumnValue[] };

class TableNet {
  readonly live = new Map<string, Live>();
  readonly deleted = new Map<string, Value[]>();
  readonly appended: Value[][] = [];

  constructor(
    readonly relation: ApplyRelation,
    readonly route: "keyed" | "insertOnly",
  ) {}

  get empty(): boolean {
    return this.live.size === 0 && this.deleted.size === 0 && this.appended.length === 0;
  }

  /** Folds `change` into the table's net state; false (nothing changed) when it cannot. */
  add(change: Exclude<Change, { kind: "truncate" }>): boolean {
    if (this.route === "insertOnly") {
      if (change.kind !== "insert" || !allSent(change.values)) return false;
      this.appended.push(change.values as Value[]);
      return true;
    }
    const keys = this.relation.keyColumns;
    if (change.kind === "insert") {
      if (!allSent(change.values)) return false;
      const key = keyText(keys.map((i) => change.values[i] as Value));
      if (this.live.has(key)) return false; // a second row with one key: let the target decide
      this.live.set(key, { kind: "insert", values: change.values as Value[] });
      return true;
    }
    if (change.kind === "delete") {
      const oldKey = keys.map((i) => change.old[i]);
      if (!allSent(oldKey)) return false;
      const key = keyText(oldKey);
      const live = this.live.get(key);
      if (live) {
        this.live.delete(key);
        if (live.kind === "update") this.deleted.set(key, live.key);
      } else if (!this.deleted.has(key)) this.deleted.set(key, [...oldKey]);
      return true;
    }
    return this.update(change);
  }

  private update(change: Extract<Change, { kind: "update" }>): boolean {
    const keys = this.relation.keyColumns;
    const { old, values } = change;
    const oldKey = old ? keys.map((i) => old[i]) : keys.map((i) => values[i]);
    if (!allSent(oldKey)) return false;
    // A key column whose (TOASTed) value did not change is not sent in the new tuple.
    const newKey = keys.map((i, j) => (isSent(values[i]) ? values[i] : oldKey[j]));
    const from = keyText(oldKey);
    const to = keyText(newKey);
    const live = this.live.get(from);
    if (!live && this.deleted.has(from)) return false; // updating a deleted row: not ours to judge
    const merged = live ? mergeValues(live.values, values) : (values as ColumnValue[]);
    if (from === to) {
      if (!live) this.live.set(from, { kind: "update", key: [...oldKey], values: merged });
      else if (live.kind === "insert") live.values = merged as Value[];
      else live.values = merged;
      return true;
    }
    // The key changed: the row moves. Without every value of the row it cannot be re-inserted.
    if (this.live.has(to) || !allSent(merged)) return false;
    this.live.delete(from);
    if (live?.kind !== "insert") this.deleted.set(from, live?.key ?? [...oldKey]);
    this.live.set(to, { kind: "insert", values: merged as Value[] });
    return true;
  }

  toNet(): NetChanges {
    const inserts: Value[][] = [...this.appended];
    const updates: NetUpdate[] = [];
    for (const live of this.live.values()) {
      if (live.kind === "insert") inserts.push(live.values);
      else updates.push({ key: live.key, values: live.values });
    }
    return { deletes: [...this.deleted.values()], updates, inserts };
  }
}

/** `next` with each unchanged TOAST value taken from `previous` (still unsent if it was). */
function mergeValues(
  previous: readonly ColumnValue[],
  next: readonly ColumnValue[],
): ColumnValue[] {
  return next.map((v, i) => (isSent(v) ? v : previous[i]));
}

/**
 * Steps applying `changes` with the same result as applying them one by one in order, when
 * triggers and foreign keys do not fire (session_replication_role = replica): tables are then
 * independent of each other, and within a table the net effect per key is what counts. Target
 * columns of every relation must be loaded.
 */
export function compactChanges(changes: readonly Change[]): Step[] {
  const steps: Step[] = [];
  const tables = new Map<string, TableNet>();
  const tableName = (r: ApplyRelation): string => `${r.schema}\u0000${r.name}`;
  const flush = (name: string): void => {
    const table = tables.get(name);
    if (!table) return;
    tables.delete(name);
    if (!table.empty) steps.push({ kind: "net", relation: table.relation, net: table.toNet() });
  };
  const flushAll = (): void => [...tables.keys()].forEach(flush);
  const ordered = (change: Change): void => {
    const last = steps[steps.length - 1];
    if (last?.kind === "ordered") last.changes.push(change);
    else steps.push({ kind: "ordered", changes: [change] });
  };
  for (const change of changes) {
    if (change.kind === "truncate") {
      flushAll();
      ordered(change);
      continue;
    }
    const relation = change.relation;
    const name = tableName(relation);
    const route = routeOf(relation);
    let table = tables.get(name);
    // A re-announced relation (its columns changed) starts afresh after what came before.
    if (table && table.relation !== relation) {
      flush(name);
      table = undefined;
    }
    if (route === "global") {
      flushAll();
      ordered(change);
      continue;
    }
    if (route === "ordered") {
      ordered(change);
      continue;
    }
    if (!table) tables.set(name, (table = new TableNet(relation, route)));
    if (!table.add(change)) {
      flush(name);
      ordered(change);
    }
  }
  flushAll();
  return steps;
}
