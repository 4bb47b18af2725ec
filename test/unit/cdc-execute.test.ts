// Apply errors name the table and, for values that do not fit, the column.
import assert from "node:assert/strict";
import type { ApplyRelation } from "../../provider/cdc/changes";
import { applyError, columnsOfValueError } from "../../provider/cdc/execute";
import type { MigrationError } from "../../provider/pg/errors";

describe("naming the column a value does not fit", () => {
  const column = (typeName: string, declaredType: string) => ({
    typeName,
    declaredType,
    hasEquality: true,
    identityAlways: false,
    inUniqueIndex: false,
    arrayElement: typeName,
    setBased: true,
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
