// Which post-data entries are built with their table as soon as its data is complete
// (clone/post-data.ts): a table's own indexes and key constraints, matched by catalog and OID;
// foreign keys, index attachments, triggers and the rest wait for every table.
import assert from "node:assert/strict";
import {
  EARLY_BUILD_MIN_BYTES,
  earlyTables,
  MAINTENANCE_WORK_MEM_BUDGET,
  maintenanceOptions,
  planPostData,
  TableBuilds,
  tableKey,
} from "../../provider/clone/post-data";
import type { TableRef } from "../../provider/spec/types";

const TOC = [
  ";",
  "; Archive created at 2026-12-03 07:00:00 UTC",
  ";",
  "215; 1259 16390 TABLE public big postgres",
  "3350; 2606 16400 CONSTRAINT public big big_pkey postgres",
  "3351; 1259 16410 INDEX public big_note_idx postgres",
  "3352; 1259 16411 INDEX public part_1_idx postgres",
  "3353; 0 0 INDEX ATTACH public part_1_idx postgres",
  "3354; 2606 16420 FK CONSTRAINT public child child_parent_id_fkey postgres",
  "3355; 2620 16410 TRIGGER public big big_audit postgres",
  "3356; 0 0 COMMENT public INDEX big_note_idx postgres",
  "",
].join("\n");

const big = tableKey({ schema: "public", name: "big" });
const part = tableKey({ schema: "public", name: "part_1" });

describe("post-data split into each table's own part and the rest", () => {
  it("takes a table's indexes and key constraints by catalog OID, leaves everything else", () => {
    const own = new Map([
      [big, new Set([16400, 16410])],
      [part, new Set([16411])],
    ]);
    const plan = planPostData(TOC, own);
    assert.deepEqual(plan.early.get(big), [
      "3350; 2606 16400 CONSTRAINT public big big_pkey postgres",
      "3351; 1259 16410 INDEX public big_note_idx postgres",
    ]);
    assert.deepEqual(plan.early.get(part), ["3352; 1259 16411 INDEX public part_1_idx postgres"]);
    const rest = plan.rest.split("\n");
    for (const kept of [
      "TABLE public big",
      "INDEX ATTACH",
      "FK CONSTRAINT",
      "TRIGGER",
      "COMMENT",
    ]) {
      assert.ok(
        rest.some((l) => l.includes(kept)),
        kept,
      );
    }
    assert.ok(!rest.some((l) => /big_pkey|3351;|3352;/.test(l)), plan.rest);
    assert.equal(plan.early.size + rest.length, TOC.split("\n").length - 1);
  });

  it("leaves the TOC whole when no table owns an entry", () => {
    const plan = planPostData(TOC, new Map());
    assert.equal(plan.early.size, 0);
    assert.equal(plan.rest, TOC);
  });

  it("builds early only tables of EARLY_BUILD_MIN_BYTES or more, or over the split threshold", () => {
    const t = (name: string, heapBytes: number) => ({ schema: "public", name, heapBytes });
    const tables = [t("huge", EARLY_BUILD_MIN_BYTES), t("mid", 300_000), t("tiny", 8192)];
    assert.deepEqual([...earlyTables(tables, 1024 ** 3)], [tableKey(tables[0])]);
    assert.deepEqual([...earlyTables(tables, 131_072)], [tableKey(tables[0]), tableKey(tables[1])]);
  });

  it("shares the maintenance_work_mem budget, never below the target's own setting", () => {
    const mb = 1024 * 1024;
    assert.equal(
      maintenanceOptions(2, 64 * mb),
      `-c maintenance_work_mem=${MAINTENANCE_WORK_MEM_BUDGET / 2 / 1024}kB`,
    );
    assert.equal(maintenanceOptions(64, 64 * mb), `-c maintenance_work_mem=${64 * 1024}kB`);
  });

  it("runs builds at most N at a time and reports the first failure once", async () => {
    let running = 0;
    let peak = 0;
    const done: string[] = [];
    const builds = new TableBuilds(
      2,
      async (t: TableRef) => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((resolve) => setImmediate(resolve));
        running--;
        done.push(t.name);
      },
      () => assert.fail("no failure"),
    );
    for (const name of ["a", "b", "c", "d", "e"]) builds.add({ schema: "s", name });
    await builds.drain();
    assert.deepEqual(done.sort(), ["a", "b", "c", "d", "e"]);
    assert.equal(peak, 2);

    const failures: unknown[] = [];
    const failing = new TableBuilds(
      1,
      async (t: TableRef) => {
        if (t.name !== "ok") throw new Error(`build of ${t.name} failed`);
      },
      (err) => failures.push(err),
    );
    failing.add({ schema: "s", name: "bad" });
    failing.add({ schema: "s", name: "worse" });
    await assert.rejects(failing.drain(), /build of bad failed/);
    assert.equal(failures.length, 1);
  });
});
