// Bench: what the default verification adds to a clone. The clone bench's database is copied
// under an exported snapshot (cloneDatabase), then verified under the same snapshot
// (verifyAtSnapshot: row count and row-hash sum of every table, both sides, in parallel).
// Usage: node dist/bench/verify.js [--rows 1000000] [--parallel min(4, cpus)] [--repeat 1]
import os from "node:os";
import { parseArgs } from "node:util";
import { cloneDatabase, exportSnapshot, prepareTargetDatabase } from "../provider/clone";
import type { ProgressSink } from "../provider/spec/types";
import { verifyAtSnapshot } from "../provider/verify";
import { startPostgres, stopAllPostgres } from "../test/support/postgres";
import { DB, fillSource, specFor } from "./clone-methods";
import { BENCH_SETTINGS, formatTable, machine, positiveInt, runBench, secs } from "./support";

const silentProgress: ProgressSink = {
  async event() {},
  async tablesQueued() {},
  async tableState() {},
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rows: { type: "string" },
      parallel: { type: "string" },
      repeat: { type: "string" },
    },
  });
  const rows = positiveInt("rows", values.rows, 1_000_000);
  const parallel = positiveInt("parallel", values.parallel, Math.min(4, os.cpus().length));
  const repeat = positiveInt("repeat", values.repeat, 1);
  const [source, target] = await Promise.all([
    startPostgres({ settings: BENCH_SETTINGS }),
    startPostgres({ settings: BENCH_SETTINGS }),
  ]);
  try {
    await fillSource(source, rows);
    const spec = specFor(source, target, parallel);
    console.log(`verify bench: ${rows.toLocaleString("en-US")} rows, parallelism ${parallel}`);
    console.log(machine());
    const results: string[][] = [];
    for (let round = 1; round <= repeat; round++) {
      await prepareTargetDatabase(spec, DB); // overwriteDbsInTarget: a fresh database each round
      const held = await exportSnapshot(spec.source, DB);
      try {
        const cloneStarted = performance.now();
        await cloneDatabase({
          spec,
          database: DB,
          snapshot: held.snapshot,
          progress: silentProgress,
        });
        const cloneMs = performance.now() - cloneStarted;
        const verifyStarted = performance.now();
        const tables = await verifyAtSnapshot(spec, DB, held.snapshot);
        const verifyMs = performance.now() - verifyStarted;
        const differing = tables.filter((t) => !t.match);
        if (differing.length > 0)
          throw new Error(`verification failed: ${JSON.stringify(differing)}`);
        const verified = tables.reduce((sum, t) => sum + t.sourceRows, 0);
        if (verified !== rows) throw new Error(`verified ${verified} rows, expected ${rows}`);
        results.push([
          String(round),
          secs(cloneMs),
          secs(verifyMs),
          `${((verifyMs / cloneMs) * 100).toFixed(0)} %`,
        ]);
      } finally {
        await held.release();
      }
    }
    console.log(formatTable(["round", "clone s", "verify s", "verify / clone"], results));
    console.log("every round: all tables matched under the snapshot, rows verified = rows filled");
  } finally {
    await Promise.all([source.stop(), target.stop()]);
  }
}

runBench(main, stopAllPostgres);
