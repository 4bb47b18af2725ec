// Which tables the clone splits into block ranges and how (clone/ranges.ts): contiguous ranges
// covering the whole heap, the last one open-ended, at least one per worker, none before
// PostgreSQL 14, and the threshold input with its default.
import assert from "node:assert/strict";
import {
  MAX_RANGES_PER_TABLE,
  planCopyUnits,
  rangePredicate,
  type CopyUnit,
} from "../../provider/clone/ranges";
import type { TableToCopy } from "../../provider/clone/tables";
import {
  DEFAULT_SPLIT_TABLES_LARGER_THAN,
  resolveSpec,
  splitThreshold,
} from "../../provider/spec/inputs";
import type { MigrationSpec } from "../../provider/spec/types";

const BLOCK = 8192;
const endpoint = { host: "h", username: "u", password: "p" };

function spec(parallelism: Record<string, number>): MigrationSpec {
  const resolved = resolveSpec(
    { source: endpoint, target: endpoint, databases: ["d"], parallelism },
    "m",
  );
  if (!resolved.ok) throw new Error(JSON.stringify(resolved.problems));
  return resolved.spec;
}

function table(name: string, pages: number): TableToCopy {
  return {
    schema: "public",
    name,
    columns: ["id"],
    estimatedBytes: pages * BLOCK,
    estimatedRows: pages * 100,
    pages,
    heapBytes: pages * BLOCK,
  };
}

/** The block ranges of `name` as [from, to] pairs. */
function rangesOf(units: readonly CopyUnit[], name: string): [number, number | null][] {
  return units
    .filter((u) => u.table.name === name)
    .map((u) => {
      assert.ok(u.range?.kind === "blocks", `${name} is split in blocks`);
      return [u.range.fromBlock, u.range.toBlock];
    });
}

describe("block ranges of large tables", () => {
  it("splits only tables over the threshold, ranges next to each other in table order", () => {
    const s = spec({ tables: 4, splitTablesLargerThan: 100 * BLOCK });
    const units = planCopyUnits(s, 15, [table("big", 1000), table("edge", 100), table("small", 3)]);
    assert.deepEqual(
      units.map((u) => u.table.name + (u.range ? `#${u.range.index}/${u.range.count}` : "")),
      [...Array.from({ length: 10 }, (_, i) => `big#${i}/10`), "edge", "small"],
    );
    const ranges = rangesOf(units, "big");
    assert.deepEqual(ranges[0], [0, 100]);
    assert.deepEqual(ranges[9], [900, null]);
    for (let i = 1; i < ranges.length; i++) assert.equal(ranges[i][0], ranges[i - 1][1]);
  });

  it("gives a table at least one range per worker, at most MAX_RANGES_PER_TABLE, never more than pages", () => {
    const s = spec({ tables: 8, splitTablesLargerThan: 10 * BLOCK });
    assert.equal(rangesOf(planCopyUnits(s, 14, [table("t", 11)]), "t").length, 8);
    assert.equal(
      rangesOf(planCopyUnits(s, 14, [table("t", 100_000)]), "t").length,
      MAX_RANGES_PER_TABLE,
    );
    const odd = rangesOf(
      planCopyUnits(spec({ tables: 2, splitTablesLargerThan: 4 * BLOCK }), 16, [table("t", 7)]),
      "t",
    );
    assert.deepEqual(odd, [
      [0, 3],
      [3, null],
    ]);
  });

  it("splits by an integer primary key before PostgreSQL 14 (no TID range scan), else copies whole", () => {
    const s = spec({ tables: 4, splitTablesLargerThan: BLOCK });
    const units = planCopyUnits(s, 13, [table("big", 1000)]);
    assert.deepEqual(units, [{ table: table("big", 1000) }]);
    const keyed = { ...table("keyed", 3), integerKey: { column: "Id", min: "-5", max: "6" } };
    const ranges = planCopyUnits(s, 13, [keyed]).map((u) => u.range && rangePredicate(u.range));
    assert.deepEqual(ranges, [
      '"Id" < -2',
      '"Id" >= -2 AND "Id" < 1',
      '"Id" >= 1 AND "Id" < 4',
      '"Id" >= 4',
    ]);
    const few = { ...table("few", 3), integerKey: { column: "id", min: "7", max: "8" } };
    assert.equal(planCopyUnits(s, 12, [few]).length, 2);
    const empty = { ...table("empty", 3), integerKey: { column: "id", min: null, max: null } };
    assert.deepEqual(planCopyUnits(s, 12, [empty]), [{ table: empty }]);
    const huge = {
      ...table("huge", 3),
      integerKey: { column: "id", min: "1", max: "9223372036854775807" },
    };
    const hugeRanges = planCopyUnits(s, 11, [huge]).map((u) => u.range && rangePredicate(u.range));
    assert.deepEqual(hugeRanges[1], '"id" >= 2305843009213693952 AND "id" < 4611686018427387904');
  });

  it("defaults the threshold to 1 GiB when absent or 0", () => {
    assert.equal(DEFAULT_SPLIT_TABLES_LARGER_THAN, 1024 ** 3);
    assert.equal(splitThreshold(spec({}).parallelism), 1024 ** 3);
    assert.equal(splitThreshold(spec({ splitTablesLargerThan: 0 }).parallelism), 1024 ** 3);
    assert.equal(splitThreshold(spec({ splitTablesLargerThan: 5 }).parallelism), 5);
    const gib = 1024 ** 3 / BLOCK;
    assert.equal(planCopyUnits(spec({}), 15, [table("t", gib)]).length, 1);
    assert.equal(planCopyUnits(spec({}), 15, [table("t", gib + 1)]).length, 4);
    const bad = resolveSpec(
      {
        source: endpoint,
        target: endpoint,
        databases: ["d"],
        parallelism: { splitTablesLargerThan: -1 },
      },
      "m",
    );
    assert.ok(!bad.ok && bad.problems[0].property === "parallelism.splitTablesLargerThan");
  });

  it("selects a range's rows by ctid", () => {
    assert.equal(
      rangePredicate({ kind: "blocks", index: 0, count: 2, fromBlock: 0, toBlock: 40 }),
      "ctid >= '(0,0)'::tid AND ctid < '(40,0)'::tid",
    );
    assert.equal(
      rangePredicate({ kind: "blocks", index: 1, count: 2, fromBlock: 40, toBlock: null }),
      "ctid >= '(40,0)'::tid",
    );
  });
});
