// The clone bench's contenders: pg_dump | pg_restore (custom format, serial), pg_dump -Fd -j +
// pg_restore -j (directory format, parallel), and our cloneDatabase; each into a fresh database.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { cloneDatabase, prepareTargetDatabase } from "../provider/clone";
import { quoteIdent } from "../provider/pg/ident";
import { resolveSpec } from "../provider/spec/inputs";
import type { MigrationSpec, ProgressSink } from "../provider/spec/types";
import type { PgServer } from "../test/support/postgres";
import {
  ProcessSampler,
  endpoint,
  runCommand,
  runPipeline,
  sequential,
  toolEnv,
  type CommandCost,
} from "./support";

/** The source database; our clone's target database has the same name (as in a migration). */
export const DB = "bench";

function specFor(source: PgServer, target: PgServer, parallel: number): MigrationSpec {
  const resolved = resolveSpec(
    {
      source: endpoint(source),
      target: endpoint(target),
      databases: [DB],
      parallelism: { tables: parallel, indexes: parallel },
      overwriteDbsInTarget: true,
    },
    "bench-clone",
  );
  if (!resolved.ok) throw new Error(JSON.stringify(resolved.problems));
  return resolved.spec;
}

const silentProgress: ProgressSink = {
  async event() {},
  async tablesQueued() {},
  async tableState() {},
};

/** One way of copying the source database into a fresh database on the target server. */
export interface Method {
  readonly name: string;
  readonly database: string;
  /** Recreates the method's database, then copies; only the copy is timed. */
  run(): Promise<CommandCost>;
}

async function freshDatabase(target: PgServer, database: string): Promise<void> {
  await target.query(`DROP DATABASE IF EXISTS ${quoteIdent(database)} WITH (FORCE)`);
  await target.query(`CREATE DATABASE ${quoteIdent(database)}`);
}

export function dumpCustomPipe(source: PgServer, target: PgServer, bin: string): Method {
  const database = "bench_dump_custom";
  return {
    name: "pg_dump -Fc | pg_restore",
    database,
    async run() {
      await freshDatabase(target, database);
      return runPipeline(
        { bin: path.join(bin, "pg_dump"), args: ["-Fc", "--no-owner"], env: toolEnv(source, DB) },
        {
          bin: path.join(bin, "pg_restore"),
          args: ["--no-owner", "--exit-on-error", "-d", database],
          env: toolEnv(target, database),
        },
      );
    },
  };
}

export function dumpDirectoryParallel(
  source: PgServer,
  target: PgServer,
  bin: string,
  parallel: number,
): Method {
  const database = "bench_dump_dir";
  return {
    name: `pg_dump -Fd -j ${parallel} + pg_restore -j ${parallel}`,
    database,
    async run() {
      await freshDatabase(target, database);
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-bench-dump-"));
      try {
        const archive = path.join(dir, "archive");
        const dump = await runCommand({
          bin: path.join(bin, "pg_dump"),
          args: ["-Fd", "-j", String(parallel), "--no-owner", "-f", archive],
          env: toolEnv(source, DB),
        });
        const restore = await runCommand({
          bin: path.join(bin, "pg_restore"),
          args: ["-j", String(parallel), "--no-owner", "--exit-on-error", "-d", database, archive],
          env: toolEnv(target, database),
        });
        return sequential(dump, restore);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

export function ourClone(source: PgServer, target: PgServer, parallel: number): Method {
  const spec = specFor(source, target, parallel);
  return {
    name: `cloneDatabase (parallelism ${parallel})`,
    database: DB,
    async run() {
      await prepareTargetDatabase(spec, DB); // overwriteDbsInTarget: a fresh database each round
      const sampler = new ProcessSampler();
      const started = performance.now();
      let usage: ReturnType<ProcessSampler["stop"]>;
      try {
        await cloneDatabase({ spec, database: DB, progress: silentProgress });
      } finally {
        usage = sampler.stop();
      }
      const ms = performance.now() - started;
      // Also the lifetime peak of this process (the sampler can miss a spike shorter than 50 ms):
      // the fill and the baselines ran in the servers and in child processes, so it is the clone's.
      const peakRssBytes = Math.max(usage.peakRssBytes, process.resourceUsage().maxRSS * 1024);
      return { ms, peakRssBytes, cpuMs: usage.cpuMs };
    },
  };
}
