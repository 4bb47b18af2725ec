// Bench: how long a cutover takes once the application stopped writing — an online migration of
// 1 and of 3 databases (pgbench tables), a burst of writes, lag back to 0, then the cutover
// request until the migration is Succeeded, as `pgmigrate update --cutover --wait` sees it.
// Usage: node dist/bench/cutover.js [--repeat 3] [--databases 1,3] [--scale 1]
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import {
  controlLocation,
  createMigration,
  isEnded,
  isSettled,
  requestAction,
  waitForMigration,
} from "../provider/api";
import type { MigrationOutputs, RuntimeOptions } from "../provider/spec/types";
import { startPostgres, stopAllPostgres } from "../test/support/postgres";
import { specOf } from "../test/support/spec";
import {
  BENCH_SETTINGS,
  ProcessSampler,
  clientBinDir,
  formatTable,
  machine,
  median,
  positiveInt,
  runBench,
  runCommand,
  secs,
  toolEnv,
} from "./support";

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      repeat: { type: "string" },
      databases: { type: "string" },
      scale: { type: "string" },
    },
  });
  const repeat = positiveInt("repeat", values.repeat, 3);
  const scale = positiveInt("scale", values.scale, 1);
  const counts = (values.databases ?? "1,3").split(",").map((n) => positiveInt("databases", n, 1));
  const bin = clientBinDir();
  const [source, target] = await Promise.all([
    startPostgres({ settings: { ...BENCH_SETTINGS, synchronous_commit: "on" } }),
    startPostgres({ settings: BENCH_SETTINGS }),
  ]);
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-bench-cutover-"));
  try {
    console.log(`cutover bench: ${repeat} runs per database count, pgbench scale ${scale}`);
    console.log(`machine: ${machine()}; PostgreSQL ${source.version}`);
    const rows: string[][] = [];
    let run = 0;
    for (const count of counts) {
      const times: number[] = [];
      for (let r = 0; r < repeat; r++) {
        run++;
        const databases = Array.from({ length: count }, (_, i) => `cut_${run}_${i}`);
        for (const db of databases) {
          await source.query(`CREATE DATABASE ${db}`);
          await runCommand({
            bin: path.join(bin, "pgbench"),
            args: ["--initialize", "--init-steps=dtgp", `--scale=${scale}`, "--quiet", db],
            env: toolEnv(source, db),
          });
          // pgbench_history has no key: it gets one, as an application would need online.
          await source.query(
            "ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY",
            [],
            db,
          );
        }
        const spec = specOf(source, target, {
          migrationName: `cutover-${run}`,
          databases,
          mode: "Online",
        });
        const at = controlLocation(spec);
        const runtime: RuntimeOptions = { kind: "local", logDir };
        await createMigration(spec, runtime);
        const wait = (done: (o: MigrationOutputs) => boolean): Promise<MigrationOutputs> =>
          waitForMigration(at, spec.migrationName, done, { timeoutMs: 300_000, spec, runtime });
        const streaming = await wait(isSettled);
        if (streaming.state !== "WaitingForUserAction")
          throw new Error(`migration ${spec.migrationName}: ${streaming.state} ${streaming.error}`);
        // The application writes for a while, then stops.
        await Promise.all(
          databases.map((db) =>
            runCommand({
              bin: path.join(bin, "pgbench"),
              args: ["--no-vacuum", "--client=2", "--rate=200", "--time=5", db],
              env: toolEnv(source, db),
            }),
          ),
        );
        await wait((o) => o.latencySeconds === 0);
        const sampler = new ProcessSampler();
        const started = performance.now();
        await requestAction(at, spec.migrationName, "cutover");
        const ended = await wait((o) => isEnded(o.state));
        const ms = performance.now() - started;
        sampler.stop();
        if (ended.state !== "Succeeded")
          throw new Error(`cutover of ${spec.migrationName}: ${ended.state} ${ended.error}`);
        console.log(`  ${count} database(s), run ${r + 1}: cutover ${secs(ms)} s`);
        times.push(ms);
      }
      rows.push([
        `${count} database${count > 1 ? "s" : ""}`,
        secs(median(times)),
        `${secs(Math.min(...times))}–${secs(Math.max(...times))}`,
      ]);
    }
    console.log(
      "\n" +
        formatTable(["online migration of", "cutover s (median)", "min–max"], rows) +
        "\ncutover = cutover requested (api requestAction, as `pgmigrate update --cutover`) → state Succeeded seen by waitForMigration; default inputs; lag 0 before",
    );
  } finally {
    await Promise.all([source.stop(), target.stop()]);
    fs.rmSync(logDir, { recursive: true, force: true });
  }
}

runBench(main, stopAllPostgres);
