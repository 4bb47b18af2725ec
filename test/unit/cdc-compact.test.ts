// Net-change compaction against a model: random sequences of changes a source could send, applied
// one by one to a table held in memory, must give the same rows as their compacted steps.
import assert from "node:assert/strict";
import type { ApplyRelation, Change } from "../../provider/cdc/changes";
import { compactChanges, type Step } from "../../provider/cdc/compact";
import { UNCHANGED_TOAST, type ColumnValue } from "../../provider/cdc/pgoutput";
import { insert, relationOf, remove, truncate, update } from "../support/relations";

type Row = ColumnValue[];
type Table = Map<string, Row>;

const keyOf = (relation: ApplyRelation, row: readonly ColumnValue[]): string =>
  JSON.stringify(relation.keyColumns.map((i) => row[i]));

/** What applying `change` in order does to `tables` (the source's own semantics). */
function applyOne(tables: Map<ApplyRelation, Table>, change: Change): void {
  if (change.kind === "truncate") {
    for (const r of change.relations) tables.get(r)?.clear();
    return;
  }
  const table = tables.get(change.relation)!;
  const r = change.relation;
  if (change.kind === "insert") {
    assert.ok(!table.has(keyOf(r, change.values)), "a source insert has a new key");
    table.set(keyOf(r, change.values), [...change.values]);
  } else if (change.kind === "delete") {
    table.delete(keyOf(r, change.old));
  } else {
    const from = change.old ? keyOf(r, change.old) : keyOf(r, change.values);
    const row = table.get(from);
    if (!row) return;
    const next = change.values.map((v, i) => (v === UNCHANGED_TOAST ? row[i] : v));
    table.delete(from);
    table.set(keyOf(r, next), next);
  }
}

/** What the steps do: net changes (deletes, updates, inserts) or changes in order. */
function applySteps(tables: Map<ApplyRelation, Table>, steps: readonly Step[]): void {
  for (const step of steps) {
    if (step.kind === "ordered") {
      step.changes.forEach((c) => applyOne(tables, c));
      continue;
    }
    const r = step.relation;
    const table = tables.get(r)!;
    for (const key of step.net.deletes) {
      assert.ok(table.delete(JSON.stringify(key)), "a net delete finds its row");
    }
    for (const u of step.net.updates) {
      const row = table.get(JSON.stringify(u.key));
      assert.ok(row, "a net update finds its row");
      u.values.forEach((v, i) => {
        if (v !== UNCHANGED_TOAST && !r.keyColumns.includes(i)) row[i] = v;
      });
    }
    for (const values of step.net.inserts) {
      const key = keyOf(r, values);
      assert.ok(!table.has(key), `a net insert meets no row (${key})`);
      table.set(key, [...values]);
    }
  }
}

/** Deterministic pseudo-random numbers (mulberry32). */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("net-change compaction", () => {
  const t = relationOf("t", [
    { name: "id", key: true },
    { name: "v", type: "text" },
    { name: "body", type: "text" },
  ]);
  const other = relationOf("other", [{ name: "id", key: true }, { name: "v" }]);
  const full = relationOf("dup", [{ name: "n" }, { name: "v" }], { full: true });

  /** Source-valid random changes over keys 1..12 of `t` and `other`, some with TOAST unsent. */
  function randomChanges(seed: number, count: number): { changes: Change[]; initial: Row[] } {
    const next = random(seed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)];
    const initial: Row[] = [1, 2, 3, 4, 5, 6].map((k) => [String(k), `v${k}`, `body${k}`]);
    const live = new Map<string, Row>(initial.map((row) => [row[0] as string, [...row]]));
    const changes: Change[] = [];
    for (let n = 0; n < count; n++) {
      const roll = next();
      const free = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"].filter(
        (k) => !live.has(k),
      );
      const existing = [...live.keys()];
      if (roll < 0.05) {
        changes.push(insert(other, String(n), "x"));
      } else if (roll < 0.25 && free.length > 0) {
        const k = pick(free);
        const row: Row = [k, `i${n}`, `b${n}`];
        live.set(k, row);
        changes.push(insert(t, ...row));
      } else if (roll < 0.4 && existing.length > 0) {
        const k = pick(existing);
        live.delete(k);
        changes.push(remove(t, k, null, null));
      } else if (roll < 0.55 && existing.length > 0 && free.length > 0) {
        // A key change; half the time the TOASTed body is not sent.
        const k = pick(existing);
        const to = pick(free);
        const row = live.get(k)!;
        const body: ColumnValue = next() < 0.5 ? UNCHANGED_TOAST : `moved${n}`;
        live.delete(k);
        live.set(to, [to, `m${n}`, body === UNCHANGED_TOAST ? row[2] : body]);
        changes.push(update(t, [to, `m${n}`, body], [k, null, null]));
      } else if (existing.length > 0) {
        const k = pick(existing);
        const row = live.get(k)!;
        const body: ColumnValue = next() < 0.6 ? UNCHANGED_TOAST : `u${n}`;
        if (body !== UNCHANGED_TOAST) row[2] = body;
        row[1] = `u${n}`;
        changes.push(update(t, [k, `u${n}`, body]));
      }
    }
    return { changes, initial };
  }

  it("gives the rows of applying the changes one by one (500 random sequences)", () => {
    for (let seed = 1; seed <= 500; seed++) {
      const { changes, initial } = randomChanges(seed, 5 + (seed % 60));
      const tables = (): Map<ApplyRelation, Table> =>
        new Map([
          [t, new Map(initial.map((row) => [keyOf(t, row), [...row]]))],
          [other, new Map()],
        ]);
      const expected = tables();
      changes.forEach((c) => applyOne(expected, c));
      const actual = tables();
      applySteps(actual, compactChanges(changes));
      assert.deepEqual(actual, expected, `seed ${seed}`);
    }
  });

  it("folds insert, updates and delete of one key to nothing", () => {
    const steps = compactChanges([
      insert(t, "50", "a", "b"),
      update(t, ["50", "c", UNCHANGED_TOAST]),
      remove(t, "50", null, null),
    ]);
    assert.deepEqual(steps, []);
  });

  it("merges updates into the insert before them, taking unsent TOAST values from it", () => {
    const steps = compactChanges([
      insert(t, "50", "a", "long"),
      update(t, ["50", "c", UNCHANGED_TOAST]),
    ]);
    assert.equal(steps.length, 1);
    assert.deepEqual(steps[0].kind === "net" && steps[0].net, {
      deletes: [],
      updates: [],
      inserts: [["50", "c", "long"]],
    });
  });

  it("turns a delete and re-insert into delete then insert, and a move into both", () => {
    const steps = compactChanges([
      remove(t, "1", null, null),
      insert(t, "1", "new", "b"),
      update(t, ["9", "moved", "all"], ["2", null, null]),
    ]);
    assert.deepEqual(steps[0].kind === "net" && steps[0].net, {
      deletes: [["1"], ["2"]],
      updates: [],
      inserts: [
        ["1", "new", "b"],
        ["9", "moved", "all"],
      ],
    });
  });

  it("applies in order what it cannot be sure of: a move without the whole row, FULL identity updates, truncates", () => {
    const steps = compactChanges([
      update(t, ["9", "moved", UNCHANGED_TOAST], ["2", null, null]),
      insert(full, "1", "a"),
      remove(full, "1", "a"),
      insert(t, "20", "x", "y"),
      truncate([t]),
      insert(t, "21", "x", "y"),
    ]);
    assert.deepEqual(
      steps.map((s) =>
        s.kind === "net" ? `net ${s.relation.name}` : `ordered ${s.changes.length}`,
      ),
      ["ordered 1", "net dup", "ordered 1", "net t", "ordered 1", "net t"],
    );
  });
});
