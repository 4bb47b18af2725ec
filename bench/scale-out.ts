// Bench: an offline migration of one pgbench database through a pool of 1 and of 3 runtimes
// (separate `runtime --server` processes sharing the copy as work units), next to the local
// worker that copies everything itself (no units), alternating, medians of the rounds. Every
// run must end Succeeded with the source's row counts. On one machine the runtimes share its
// cores: the figure documents the units' overhead, not a speed-up.
// Usage: node dist/bench/scale-out.js [--scale 20] [--split-mb 32] [--repeat 3]
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { createMigration, isEnded, waitForMigration } from "../provider/api";
import { controlUrl } from "../provider/runtime/spawn";
import type { RuntimeOptions } from "../provider/spec/types";
import { startPostgres, stopAllPostgres, type PgServer } from "../test/support/postgres";
import { specOf } from "../test/support/spec";
import { until } from "../test/support/wait";
import { DB, fillPgbench } from "./clone-methods";
import {
  BENCH_SETTINGS,
  endpoint,
  formatTable,
  machine,
  median,
  positiveInt,
  runBench,
  secs,
} from "./support";

const RUNTIME_MAIN = path.join(__dirname, "..", "provider", "runtime", "main.js");

/** `count` pool runtimes as processes of their own. */
function startPool(source: PgServer, target: PgServer, count: number): ChildProcess[] {
  const url = controlUrl(endpoint(target), "postgres");
  return Array.from({ length: count }, () =>
    spawn(process.execPath, [RUNTIME_MAIN, "runtime", "--server", url], {
      env: {
        ...process.env,
        PGMIGRATE_TARGET_PASSWORD: target.password,
        PGMIGRATE_SOURCE_PASSWORD: source.password,
      },
      stdio: "ignore",
    }),
  );
}

async function stopPool(pool: readonly ChildProcess[]): Promise<void> {
  await Promise.all(
    pool.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null) return resolve();
          child.once("exit", () => resolve());
          child.kill("SIGTERM");
        }),
    ),
  );
}

async function rowCounts(server: PgServer): Promise<string> {
  const rows = await server.query<{ t: string; n: string }>(
    `SELECT 'accounts' AS t, count(*)::text AS n FROM pgbench_accounts
     UNION ALL SELECT 'tellers', count(*)::text FROM pgbench_tellers
     UNION ALL SELECT 'branches', count(*)::text FROM pgbench_branches`,
    [],
    DB,
  );
  return rows.map((r) => `${r.t}=${r.n}`).join(" ");
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      scale: { type: "string" },
      "split-mb": { type: "string" },
      repeat: { type: "string" },
    },
  });
  const scale = positiveInt("scale", values.scale, 20);
  const splitMb = positiveInt("split-mb", values["split-mb"], 32);
  const repeat = positiveInt("repeat", values.repeat, 3);
  const [source, target] = await Promise.all([
    startPostgres({ settings: BENCH_SETTINGS }),
    startPostgres({ settings: BENCH_SETTINGS }),
  ]);
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-bench-scale-"));
  try {
    await fillPgbench(source, scale);
    const expected = await rowCounts(source);
    console.log(
      `scale-out bench: pgbench scale ${scale} (${expected}), tables over ${splitMb} MB split, ${repeat} rounds`,
    );
    console.log(`machine: ${machine()}; PostgreSQL ${source.version}`);
    const variants = [
      { label: "local worker (no units)", runtimes: 0 },
      { label: "pool of 1 runtime", runtimes: 1 },
      { label: "pool of 3 runtimes", runtimes: 3 },
    ];
    const times = new Map<string, number[]>();
    const spread = new Map<string, string>();
    let run = 0;
    for (let round = 0; round < repeat; round++) {
      for (const variant of variants) {
        run++;
        const name = `scale-${run}`;
        const spec = specOf(source, target, {
          migrationName: name,
          databases: [DB],
          overwriteDbsInTarget: true,
          parallelism: { tables: 2, splitTablesLargerThan: splitMb * 1024 * 1024 },
        });
        const runtime: RuntimeOptions =
          variant.runtimes === 0 ? { kind: "local", logDir } : { kind: "pool" };
        const pool = startPool(source, target, variant.runtimes);
        try {
          // Timed from when the pool is up (the local worker's start is part of its run).
          await until(
            async () => {
              // Absent until a runtime or a migration installed the control store.
              const rows = await target
                .query<{ n: string }>(
                  "SELECT count(*)::text AS n FROM pgmigrate.runtimes WHERE pid = ANY($1::int[])",
                  [pool.map((child) => child.pid)],
                )
                .catch(() => [{ n: "0" }]);
              return Number(rows[0].n) === variant.runtimes;
            },
            { what: "the pool's runtimes registered", timeoutMs: 30_000 },
          );
          const started = Date.now();
          await createMigration(spec, runtime);
          const end = await waitForMigration(
            { target: spec.target, controlDatabase: spec.controlDatabase },
            name,
            (o) => isEnded(o.state),
            { timeoutMs: 1_800_000, spec, runtime },
          );
          const ms = Date.now() - started;
          if (end.state !== "Succeeded") throw new Error(`${name}: ${end.state}: ${end.error}`);
          const copied = await rowCounts(target);
          if (copied !== expected) throw new Error(`${name}: ${copied}, source ${expected}`);
          times.set(variant.label, [...(times.get(variant.label) ?? []), ms]);
          const owners = await target.query<{ owner: string; n: string }>(
            `SELECT owner, count(*)::text AS n FROM pgmigrate.work_units
              WHERE migration = $1 AND kind = 'copy' AND state = 'done' GROUP BY owner ORDER BY 2 DESC`,
            [name],
          );
          spread.set(variant.label, owners.map((o) => o.n).join(" + ") || "-");
          console.log(
            `  ${variant.label}: ${secs(ms)} s (units per runtime: ${spread.get(variant.label)})`,
          );
        } finally {
          await stopPool(pool);
        }
      }
    }
    const base = median(times.get(variants[1].label) ?? []);
    console.log(
      formatTable(
        ["variant", "median s", "vs pool of 1", "copy units per runtime (last round)"],
        variants.map((v) => {
          const m = median(times.get(v.label) ?? []);
          return [v.label, secs(m), (m / base).toFixed(2), spread.get(v.label) ?? "-"];
        }),
      ),
    );
  } finally {
    fs.rmSync(logDir, { recursive: true, force: true });
  }
}

runBench(main, stopAllPostgres);
