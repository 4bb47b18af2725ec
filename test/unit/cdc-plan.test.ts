// How a chunk of changes is planned: consecutive changes of one table, kind and shape merge into
// one statement; source order is kept; truncates, FULL identity, key and unique changes stand
// alone; and a key already in a run starts a new one.
import assert from "node:assert/strict";
import type { Statement } from "../../provider/cdc/changes";
import { UNCHANGED_TOAST } from "../../provider/cdc/pgoutput";
import { planStatements } from "../../provider/cdc/plan";
import { insert, relationOf, remove, truncate, update } from "../support/relations";

const U: typeof UNCHANGED_TOAST = UNCHANGED_TOAST;

/** Each statement as `verb table ×rows`, enough to see merging and order. */
function outline(statements: readonly Statement[]): string[] {
  return statements.map((s) => {
    const verb = /^(INSERT INTO|UPDATE|DELETE FROM|TRUNCATE ONLY|SELECT FROM|ALTER TABLE)/.exec(
      s.text,
    )?.[1];
    const rows = (s.text.match(/\), \(/g)?.length ?? 0) + 1;
    return `${verb} ${s.relation.name} ×${rows}`;
  });
}

describe("cdc plan", () => {
  const accounts = () =>
    relationOf("accounts", [
      { name: "id", key: true },
      { name: "balance", type: "numeric" },
      { name: "note", type: "text" },
      { name: "email", type: "text", unique: true },
    ]);
  const history = () => relationOf("history", [{ name: "id", key: true }, { name: "delta" }]);

  it("merges consecutive inserts into one table and keeps source order across tables", () => {
    const a = accounts();
    const h = history();
    const plan = planStatements([
      insert(a, "1", "10", null, "a@x"),
      insert(a, "2", "20", "n", "b@x"),
      insert(h, "1", "5"),
      insert(a, "3", "30", null, "c@x"),
      insert(h, "2", "6"),
      insert(h, "3", "7"),
    ]);
    assert.deepEqual(outline(plan), [
      "INSERT INTO accounts ×2",
      "INSERT INTO history ×1",
      "INSERT INTO accounts ×1",
      "INSERT INTO history ×2",
    ]);
    assert.deepEqual(plan[0].values, ["1", "10", null, "a@x", "2", "20", "n", "b@x"]);
    assert.deepEqual(plan[3].values, ["2", "6", "3", "7"]);
  });

  it("starts a new insert once a run holds the most rows a statement takes", () => {
    const h = history();
    const plan = planStatements(Array.from({ length: 1001 }, (_, i) => insert(h, String(i), "1")));
    assert.deepEqual(outline(plan), [
      "INSERT INTO history ×500",
      "INSERT INTO history ×500",
      "INSERT INTO history ×1",
    ]);
    assert.equal(plan[0].name, plan[1].name, "full-size runs share one prepared statement");
    assert.deepEqual(plan[2].values, ["1000", "1"]);
  });

  it("merges updates of different rows with the same columns set, and deletes", () => {
    const a = accounts();
    const plan = planStatements([
      update(a, ["1", "11", U, U]),
      update(a, ["2", "21", U, U]),
      update(a, ["3", "31", U, U]),
      remove(a, "4", null, null, null),
      remove(a, "5", null, null, null),
    ]);
    assert.deepEqual(outline(plan), ["UPDATE accounts ×3", "DELETE FROM accounts ×2"]);
    assert.deepEqual(plan[0].values, ["11", "1", "21", "2", "31", "3"]);
    assert.deepEqual(plan[1].values, ["4", "5"]);
  });

  it("a different set of columns (an unchanged TOAST value) starts a new update", () => {
    const a = accounts();
    const plan = planStatements([
      update(a, ["1", "11", "n1", U]),
      update(a, ["2", "21", U, U]),
      update(a, ["3", "31", U, U]),
      update(a, ["4", "41", "n4", U]),
    ]);
    assert.deepEqual(outline(plan), [
      "UPDATE accounts ×1",
      "UPDATE accounts ×2",
      "UPDATE accounts ×1",
    ]);
    assert.match(plan[0].text, /SET "balance" = \$1, "note" = \$2 WHERE "id" = \$3$/);
    assert.equal(plan[0].name, plan[2].name, "the same shape is the same prepared statement");
    assert.notEqual(plan[0].name, plan[1].name);
  });

  it("a second update of a row in the run starts a new run, so both apply in order", () => {
    const a = accounts();
    const plan = planStatements([
      update(a, ["1", "11", U, U]),
      update(a, ["2", "21", U, U]),
      update(a, ["1", "12", U, U]),
    ]);
    assert.deepEqual(outline(plan), ["UPDATE accounts ×2", "UPDATE accounts ×1"]);
    assert.deepEqual(plan[1].values, ["12", "1"]);
  });

  it("a key change or a new value for a unique column goes alone, between its neighbours", () => {
    const a = accounts();
    const plan = planStatements([
      update(a, ["1", "11", U, U]),
      update(a, ["20", "11", U, U], ["2", null, null, null]),
      update(a, ["3", "31", U, U]),
      update(a, ["4", "41", U, "new@x"]),
      update(a, ["5", "51", U, U]),
    ]);
    assert.deepEqual(outline(plan), [
      "UPDATE accounts ×1",
      "UPDATE accounts ×1",
      "UPDATE accounts ×1",
      "UPDATE accounts ×1",
      "UPDATE accounts ×1",
    ]);
    assert.match(plan[1].text, /SET "id" = \$1, "balance" = \$2 WHERE "id" = \$3$/);
    assert.deepEqual(plan[1].values, ["20", "11", "2"]);
    assert.deepEqual(plan[3].values, ["41", "new@x", "4"]);
  });

  it("an update that sends nothing but its unchanged key is a no-op", () => {
    const a = accounts();
    assert.deepEqual(planStatements([update(a, ["1", U, U, U])]), []);
  });

  it("a truncate is a barrier: runs before it close, and it keeps its place", () => {
    const a = accounts();
    const h = history();
    const plan = planStatements([
      insert(h, "1", "5"),
      insert(h, "2", "6"),
      truncate([h, a], { restartIdentity: true }),
      insert(h, "3", "7"),
    ]);
    assert.deepEqual(outline(plan), [
      "INSERT INTO history ×2",
      "TRUNCATE ONLY history ×1",
      "INSERT INTO history ×1",
    ]);
    assert.equal(
      plan[1].text,
      'TRUNCATE ONLY "public"."history", "public"."accounts" RESTART IDENTITY',
    );
  });

  it("REPLICA IDENTITY FULL: each update and delete alone, inserts still merged", () => {
    const log = relationOf(
      "log",
      [
        { name: "at", type: "text" },
        { name: "line", type: "text" },
      ],
      {
        full: true,
      },
    );
    const plan = planStatements([
      insert(log, "t1", "a"),
      insert(log, "t2", "b"),
      update(log, ["t1", "A"], ["t1", "a"]),
      update(log, ["t2", "B"], ["t2", "b"]),
      remove(log, "t1", "A"),
      remove(log, "t2", null),
      update(log, ["t2", null], ["t2", null]),
    ]);
    assert.deepEqual(outline(plan), [
      "INSERT INTO log ×2",
      "UPDATE log ×1",
      "UPDATE log ×1",
      "DELETE FROM log ×1",
      "DELETE FROM log ×1",
    ]);
    assert.match(
      plan[4].text,
      /WHERE "at" = \$1::text AND "at"::text = \(\$1::text\)::text AND "line" IS NULL LIMIT 1\)$/,
    );
    assert.deepEqual(plan[4].values, ["t2"]);
  });

  it("an update of a table with identity ALWAYS columns is guarded, alone", () => {
    const t = relationOf("tickets", [
      { name: "id", key: true },
      { name: "seq", identityAlways: true },
      { name: "title", type: "text" },
    ]);
    const plan = planStatements([
      insert(t, "1", "1", "a"),
      update(t, ["1", "1", "b"]),
      update(t, ["2", "2", "c"]),
    ]);
    assert.deepEqual(outline(plan), [
      "INSERT INTO tickets ×1",
      "UPDATE tickets ×1",
      "UPDATE tickets ×1",
    ]);
    assert.equal(plan[1].ifNoRows?.length, 3);
    assert.equal(plan[1].name, plan[2].name, "one guard shape, one prepared statement");
  });

  it("an identity ALWAYS key that changes is found by its old value and overridden", () => {
    const t = relationOf("invoices", [
      { name: "id", key: true, identityAlways: true },
      { name: "total", type: "numeric" },
    ]);
    const [plain] = planStatements([update(t, ["1", "9.50"])]);
    assert.equal(plain.ifNoRows, undefined, "an unchanged key is not an identity update");
    assert.equal(plain.text, 'UPDATE ONLY "public"."invoices" SET "total" = $1 WHERE "id" = $2');

    const [moved, ...rest] = planStatements([update(t, ["2", "9.50"], ["1", null])]);
    assert.equal(rest.length, 0);
    // The guard cannot hold (the row has id 1, not 2): the fallback moves the row.
    assert.deepEqual(
      { text: moved.text, values: moved.values },
      {
        text: 'UPDATE ONLY "public"."invoices" SET "total" = $1 WHERE "id" = $2 AND "id" = $3',
        values: ["9.50", "1", "2"],
      },
    );
    assert.deepEqual(
      moved.ifNoRows?.map((s) => [s.text, s.values]),
      [
        ['ALTER TABLE "public"."invoices" ALTER COLUMN "id" SET GENERATED BY DEFAULT', []],
        [
          'UPDATE ONLY "public"."invoices" SET "total" = $1, "id" = $2 WHERE "id" = $3',
          ["9.50", "2", "1"],
        ],
        ['ALTER TABLE "public"."invoices" ALTER COLUMN "id" SET GENERATED ALWAYS', []],
      ],
    );
  });

  it("an unchanged TOAST identity ALWAYS column needs no guard", () => {
    const t = relationOf("tickets", [
      { name: "id", key: true },
      { name: "seq", identityAlways: true },
      { name: "title", type: "text" },
    ]);
    const [s] = planStatements([update(t, ["1", U, "b"])]);
    assert.equal(s.ifNoRows, undefined);
    assert.equal(s.text, 'UPDATE ONLY "public"."tickets" SET "title" = $1 WHERE "id" = $2');
  });

  // A delete from a relation without replica identity columns used to be planned as
  // `DELETE FROM … WHERE ` (invalid SQL) instead of the clear error the update path raises.
  it("refuses a delete from a table without replica identity, as it refuses an update", () => {
    const log = relationOf("log", [{ name: "at" }, { name: "line" }]);
    assert.throws(() => planStatements([update(log, ["1", "2"])]), /has no replica identity/);
    assert.throws(() => planStatements([remove(log, "1", "2")]), /has no replica identity/);
  });

  it("refuses a delete whose key was not sent", () => {
    const a = accounts();
    assert.throws(
      () => planStatements([remove(a, U, null, null, null)]),
      /a delete from accounts does not identify its row/,
    );
  });
});
