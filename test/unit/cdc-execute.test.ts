// Statements sent many per round trip carry their values as literals: the exact text, quoted,
// in place of each parameter and nowhere else.
import assert from "node:assert/strict";
import type { ApplyRelation } from "../../provider/cdc/changes";
import { applyError, columnsOfValueError, inlineValues } from "../../provider/cdc/execute";
import type { MigrationError } from "../../provider/pg/errors";

describe("inlining statement values", () => {
  it("replaces each parameter by its value as a literal, NULL unquoted", () => {
    assert.equal(
      inlineValues("UPDATE t SET a = $1, b = $2 WHERE id = $10", [
        "x",
        null,
        "3",
        "4",
        "5",
        "6",
        "7",
        "8",
        "9",
        "42",
      ]),
      "UPDATE t SET a = 'x', b = NULL WHERE id = '42'",
    );
    assert.equal(inlineValues("SELECT $1::char(3)", ["ab "]), "SELECT 'ab '::char(3)");
  });

  it("doubles quotes, and doubles backslashes inside an E'' string", () => {
    assert.equal(inlineValues("SELECT $1", ["it's"]), "SELECT 'it''s'");
    assert.equal(inlineValues("SELECT $1", ["a\\b'"]), "SELECT  E'a\\\\b'''");
    // A value that looks like a parameter stays a value.
    assert.equal(inlineValues("SELECT $1, $2", ["$2", "z"]), "SELECT '$2', 'z'");
  });

  it("leaves quoted names alone, even when they contain $n", () => {
    assert.equal(
      inlineValues('UPDATE "s$1"."t""$2" SET "a$1" = $1 WHERE "id" = $2', ["v", "7"]),
      `UPDATE "s$1"."t""$2" SET "a$1" = 'v' WHERE "id" = '7'`,
    );
    assert.equal(inlineValues("TRUNCATE ONLY t", []), "TRUNCATE ONLY t");
  });

  it("refuses a parameter without a value", () => {
    assert.throws(() => inlineValues("SELECT $2", ["x"]), /no value for \$2/);
  });
});

describe("naming the column a value does not fit", () => {
  const column = (typeName: string, declaredType: string) => ({
    typeName,
    declaredType,
    hasEquality: true,
    identityAlways: false,
    inUniqueIndex: false,
  });
  const relation: ApplyRelation = {
    id: 1,
    schema: "public",
    name: "t",
    columns: ["id", "code", "v", "amount"],
    keyColumns: [0],
    full: false,
    target: [
      column("integer", "integer"),
      column("character varying", "character varying(3)"),
      column("character varying", "character varying(5)"),
      column("numeric", "numeric(5,2)"),
    ],
  };
  const pgError = (message: string, fields: Record<string, string>) =>
    Object.assign(new Error(message), fields);

  it("finds the column declared with the type a too-long value was refused by", () => {
    const err = pgError("value too long for type character varying(5)", { code: "22001" });
    assert.deepEqual(columnsOfValueError(err, relation), ["v"]);
    const wrapped = applyError(err, relation) as MigrationError;
    assert.match(wrapped.message, /public\.t .*column v\b/);
    assert.equal(wrapped.pg.column, "v");
  });

  it("finds a numeric column from the precision and scale of an overflow", () => {
    const err = pgError("numeric field overflow", {
      code: "22003",
      detail: "A field with precision 5, scale 2 must round to an absolute value less than 10^3.",
    });
    assert.deepEqual(columnsOfValueError(err, relation), ["amount"]);
  });

  it("names no column for other errors", () => {
    assert.deepEqual(columnsOfValueError(pgError("deadlock detected", {}), relation), []);
  });
});
