// What one decoded change becomes on the target: the statement text (names quoted, values only
// as parameters, casts from the target's types) and its values in parameter order.
import assert from "node:assert/strict";
import type { Change, Statement } from "../../provider/cdc/changes";
import { UNCHANGED_TOAST } from "../../provider/cdc/pgoutput";
import {
  deleteStatement,
  fullDeleteStatement,
  fullUpdateStatements,
  identityUpdateStatement,
  insertStatement,
  keyedUpdate,
  maxRows,
  truncateStatement,
  updateStatement,
} from "../../provider/cdc/statements";
import { relationOf, truncate, update } from "../support/relations";

const U: typeof UNCHANGED_TOAST = UNCHANGED_TOAST;
type UpdateChange = Extract<Change, { kind: "update" }>;
const asUpdate = (change: Change): UpdateChange => change as UpdateChange;
const shape = (s: Statement): { text: string; values: Statement["values"] } => ({
  text: s.text,
  values: s.values,
});

describe("cdc statements", () => {
  const orders = relationOf("orders", [
    { name: "id", key: true, type: "bigint" },
    { name: "code", type: "character(3)" },
    { name: "note", type: "text" },
  ]);

  describe("rows per statement", () => {
    it("stays under 500 rows and 65535 parameters, and is at least one row", () => {
      assert.equal(maxRows(1), 500);
      assert.equal(maxRows(131), 500);
      assert.equal(maxRows(132), 496); // floor(65535 / 132)
      assert.equal(maxRows(1600), 40);
      assert.equal(maxRows(0), 500);
      assert.equal(maxRows(70_000), 1);
    });
  });

  describe("insert", () => {
    it("lists every column, overrides identity, and names only single and full-size runs", () => {
      const one = insertStatement(orders, [["1", "ab ", null]]);
      assert.deepEqual(shape(one), {
        text:
          'INSERT INTO "public"."orders" ("id", "code", "note") OVERRIDING SYSTEM VALUE ' +
          "VALUES ($1, $2, $3)",
        values: ["1", "ab ", null],
      });
      assert.equal(one.name, `pgm${orders.id}_i_1`);

      const two = insertStatement(orders, [
        ["1", "ab ", "x"],
        ["2", null, "y"],
      ]);
      assert.match(two.text, /VALUES \(\$1, \$2, \$3\), \(\$4, \$5, \$6\)$/);
      assert.deepEqual(two.values, ["1", "ab ", "x", "2", null, "y"]);
      assert.equal(two.name, undefined, "a partial run's text does not recur: not prepared");

      const full = insertStatement(
        orders,
        Array.from({ length: maxRows(3) }, (_, r) => [String(r), null, null]),
      );
      assert.equal(full.name, `pgm${orders.id}_i_500`);
      assert.equal(full.values.length, 1500);
    });

    it("quotes schema, table and column names exactly, whatever they contain", () => {
      const odd = relationOf('my "t"', [{ name: "a$1", key: true }, { name: "Mixed Case" }], {
        schema: "Sales",
      });
      assert.equal(
        insertStatement(odd, [["1", "2"]]).text,
        'INSERT INTO "Sales"."my ""t""" ("a$1", "Mixed Case") OVERRIDING SYSTEM VALUE VALUES ($1, $2)',
      );
    });

    it("inserts rows into a table without columns", () => {
      const empty = relationOf("nothing", []);
      assert.deepEqual(shape(insertStatement(empty, [[], [], []])), {
        text: 'INSERT INTO "public"."nothing" SELECT FROM generate_series(1, 3)',
        values: [],
      });
    });
  });

  describe("keyed update", () => {
    it("sets the sent non-key columns, leaves unchanged TOAST values alone, finds the row by key", () => {
      const u = keyedUpdate(asUpdate(update(orders, ["7", U, "new note"])));
      assert.deepEqual(u.key, ["7"]);
      assert.deepEqual(u.set, [2]);
      assert.deepEqual(u.identity, []);
      assert.equal(u.keyChanged, false);
      assert.deepEqual(shape(updateStatement(orders, "0", [u])), {
        text: 'UPDATE ONLY "public"."orders" SET "note" = $1 WHERE "id" = $2',
        values: ["new note", "7"],
      });
    });

    it("a changed key finds the row by the old key and sets the new one", () => {
      const u = keyedUpdate(asUpdate(update(orders, ["8", "abc", "n"], ["7", null, null])));
      assert.equal(u.keyChanged, true);
      assert.deepEqual(u.key, ["7"]);
      assert.deepEqual(u.set, [0, 1, 2]);
      assert.deepEqual(updateStatement(orders, "1k", [u]).values, ["8", "abc", "n", "7"]);
    });

    it("an old key equal to the new one is not a key change", () => {
      const u = keyedUpdate(asUpdate(update(orders, ["7", "abc", "n"], ["7", null, null])));
      assert.equal(u.keyChanged, false);
      assert.deepEqual(u.set, [1, 2]);
    });

    it("several rows join a typed VALUES list on the key", () => {
      const rows = [
        keyedUpdate(asUpdate(update(orders, ["1", "ab ", "x"]))),
        keyedUpdate(asUpdate(update(orders, ["2", null, "y"]))),
      ];
      const s = updateStatement(orders, "3", rows);
      assert.deepEqual(shape(s), {
        text:
          'UPDATE ONLY "public"."orders" AS t SET "code" = v.c0, "note" = v.c1 FROM (VALUES ' +
          "($1::character(3), $2::text, $3::bigint), ($4::character(3), $5::text, $6::bigint)) " +
          'AS v(c0, c1, c2) WHERE t."id" = v.c2',
        values: ["ab ", "x", "1", null, "y", "2"],
      });
      assert.equal(s.name, undefined);
    });

    it("a composite key matches on every key column", () => {
      const lines = relationOf("lines", [
        { name: "order_id", key: true },
        { name: "line", key: true, type: "smallint" },
        { name: "qty" },
      ]);
      const rows = [
        keyedUpdate(asUpdate(update(lines, ["1", "1", "5"]))),
        keyedUpdate(asUpdate(update(lines, ["1", "2", "6"]))),
      ];
      assert.deepEqual(shape(updateStatement(lines, "0", rows.slice(0, 1))), {
        text: 'UPDATE ONLY "public"."lines" SET "qty" = $1 WHERE "order_id" = $2 AND "line" = $3',
        values: ["5", "1", "1"],
      });
      assert.match(
        updateStatement(lines, "0", rows).text,
        /AS v\(c0, c1, c2\) WHERE t\."order_id" = v\.c1 AND t\."line" = v\.c2$/,
      );
    });

    it("refuses a table without replica identity, and a key it was not sent", () => {
      const noKey = relationOf("log", [{ name: "at" }, { name: "line" }]);
      assert.throws(
        () => keyedUpdate(asUpdate(update(noKey, ["1", "2"]))),
        (err: Error & { phase?: string }) =>
          /public\.log has no replica identity/.test(err.message) && err.phase === "replicate",
      );
      assert.throws(
        () => keyedUpdate(asUpdate(update(orders, [U, "abc", "n"]))),
        /an update of public\.orders does not identify its row/,
      );
    });
  });

  describe("identity ALWAYS columns", () => {
    const tickets = relationOf("tickets", [
      { name: "id", key: true },
      { name: "seq", identityAlways: true },
      { name: "title", type: "text" },
    ]);

    it("are left out of SET and guard the update; a missed guard overrides them", () => {
      const u = keyedUpdate(asUpdate(update(tickets, ["1", "40", "t"])));
      assert.deepEqual(u.set, [2]);
      assert.deepEqual(u.identity, [1]);
      const s = identityUpdateStatement(tickets, "5", u);
      assert.deepEqual(shape(s), {
        text: 'UPDATE ONLY "public"."tickets" SET "title" = $1 WHERE "id" = $2 AND "seq" = $3',
        values: ["t", "1", "40"],
      });
      assert.equal(s.name, `pgm${tickets.id}_g5_1`);
      assert.deepEqual(s.ifNoRows?.map(shape), [
        {
          text: 'ALTER TABLE "public"."tickets" ALTER COLUMN "seq" SET GENERATED BY DEFAULT',
          values: [],
        },
        {
          text: 'UPDATE ONLY "public"."tickets" SET "title" = $1, "seq" = $2 WHERE "id" = $3',
          values: ["t", "40", "1"],
        },
        {
          text: 'ALTER TABLE "public"."tickets" ALTER COLUMN "seq" SET GENERATED ALWAYS',
          values: [],
        },
      ]);
    });

    it("with nothing else to set, the guard only looks for the row", () => {
      const u = keyedUpdate(asUpdate(update(tickets, ["1", "41", U])));
      const s = identityUpdateStatement(tickets, "6", u);
      assert.deepEqual(shape(s), {
        text: 'SELECT FROM ONLY "public"."tickets" WHERE "id" = $1 AND "seq" = $2',
        values: ["1", "41"],
      });
      assert.equal(s.ifNoRows?.length, 3);
    });
  });

  describe("delete", () => {
    it("finds one row by key, several through a typed VALUES list", () => {
      assert.deepEqual(shape(deleteStatement(orders, [["7"]])), {
        text: 'DELETE FROM ONLY "public"."orders" WHERE "id" = $1',
        values: ["7"],
      });
      assert.deepEqual(shape(deleteStatement(orders, [["7"], ["9"]])), {
        text:
          'DELETE FROM ONLY "public"."orders" AS t USING (VALUES ($1::bigint), ($2::bigint)) AS v(c0) ' +
          'WHERE t."id" = v.c0',
        values: ["7", "9"],
      });
    });
  });

  describe("REPLICA IDENTITY FULL", () => {
    const notes = relationOf(
      "notes",
      [
        { name: "id" },
        { name: "body", type: "text" },
        { name: "doc", type: "json", hasEquality: false },
        { name: "amount", type: "numeric(10,2)" },
      ],
      { full: true },
    );

    it("deletes the first row holding every sent old value; NULL matches IS NULL", () => {
      assert.deepEqual(shape(fullDeleteStatement(notes, ["1", null, '{"a":1}', "1.50"])), {
        text:
          'DELETE FROM ONLY "public"."notes" WHERE ctid = (SELECT ctid FROM ONLY "public"."notes" WHERE ' +
          '"id" = $1::integer AND "id"::text = ($1::integer)::text AND "body" IS NULL AND ' +
          '"doc"::text = ($2::json)::text AND ' +
          '"amount" = $3::numeric(10,2) AND "amount"::text = ($3::numeric(10,2))::text LIMIT 1)',
        values: ["1", '{"a":1}', "1.50"],
      });
    });

    it("cannot compare an unchanged TOAST value, so leaves it out of the match", () => {
      const s = fullDeleteStatement(notes, ["1", U, null, null]);
      assert.doesNotMatch(s.text, /"body"/);
      assert.match(s.text, /"doc" IS NULL AND "amount" IS NULL LIMIT 1\)$/);
      assert.deepEqual(s.values, ["1"]);
    });

    it("a row of NULLs and unchanged values matches any row", () => {
      const s = fullDeleteStatement(notes, [null, U, null, null]);
      assert.match(s.text, /WHERE "id" IS NULL AND "doc" IS NULL AND "amount" IS NULL LIMIT 1\)$/);
      assert.match(
        fullDeleteStatement(relationOf("n", [{ name: "b" }], { full: true }), [U]).text,
        /WHERE true LIMIT 1\)$/,
      );
    });

    it("updates only the columns whose value changed", () => {
      const [s, ...rest] = fullUpdateStatements(
        asUpdate(update(notes, ["1", "new", U, "1.50"], ["1", "old", U, "1.50"])),
      );
      assert.equal(rest.length, 0);
      assert.deepEqual(shape(s), {
        text:
          'UPDATE ONLY "public"."notes" SET "body" = $1 WHERE ctid = (SELECT ctid FROM ONLY "public"."notes" ' +
          'WHERE "id" = $2::integer AND "id"::text = ($2::integer)::text AND "body" = $3::text AND ' +
          '"body"::text = ($3::text)::text AND "amount" = $4::numeric(10,2) AND ' +
          '"amount"::text = ($4::numeric(10,2))::text LIMIT 1)',
        values: ["new", "1", "old", "1.50"],
      });
    });

    it("a change to the same values, or without the old row, is nothing to do", () => {
      const row = ["1", "same", null, "2.00"];
      assert.deepEqual(fullUpdateStatements(asUpdate(update(notes, row, row))), []);
      assert.deepEqual(fullUpdateStatements(asUpdate(update(notes, row))), []);
    });

    it("a changed identity ALWAYS column is set with the column overridden", () => {
      const counters = relationOf(
        "counters",
        [{ name: "id", identityAlways: true }, { name: "n" }],
        { full: true },
      );
      const statements = fullUpdateStatements(asUpdate(update(counters, ["2", "5"], ["1", "5"])));
      assert.deepEqual(
        statements.map((s) => s.text.replace(/ WHERE ctid = .*$/, "")),
        [
          'ALTER TABLE "public"."counters" ALTER COLUMN "id" SET GENERATED BY DEFAULT',
          'UPDATE ONLY "public"."counters" SET "id" = $1',
          'ALTER TABLE "public"."counters" ALTER COLUMN "id" SET GENERATED ALWAYS',
        ],
      );
      assert.deepEqual(statements[1].values, ["2", "1", "5"]);
    });
  });

  describe("truncate", () => {
    it("truncates only the named tables, with the source's options", () => {
      const other = relationOf("Other", [{ name: "id", key: true }], { schema: "s" });
      const plain = truncateStatement(asTruncate(truncate([orders])));
      assert.deepEqual(shape(plain), { text: 'TRUNCATE ONLY "public"."orders"', values: [] });
      const both = truncateStatement(
        asTruncate(truncate([orders, other], { cascade: true, restartIdentity: true })),
      );
      assert.equal(
        both.text,
        'TRUNCATE ONLY "public"."orders", "s"."Other" RESTART IDENTITY CASCADE',
      );
      assert.equal(both.relation, orders);
    });
  });
});

function asTruncate(change: Change): Extract<Change, { kind: "truncate" }> {
  assert.equal(change.kind, "truncate");
  return change as Extract<Change, { kind: "truncate" }>;
}
