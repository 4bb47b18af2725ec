// Statements sent many per round trip carry their values as literals: the exact text, quoted,
// in place of each parameter and nowhere else.
import assert from "node:assert/strict";
import { inlineValues } from "../../provider/cdc/execute";

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
