// The clone bench's data sets (mixed tables, pgbench, one wide table) and its contenders:
// pg_dump | pg_restore (custom format, serial), pg_dump -Fd -j + pg_restore -j (directory
// format, parallel), and our cloneDatabase; each into a fresh database.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { cloneDatabase, prepareTargetDatabase } from "../provider/clone";
import { quoteIdent } from "../provider/pg/ident";
import { resolveSpec, splitThreshold } from "../provider/spec/inputs";
import type { MigrationSpec, ProgressSink } from "../provider/spec/types";
import { initPgbench } from "../test/support/pgbench";
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

/** Three tables of different widths (10% / 30% / 60% of the rows), a foreign key, five indexes. */
export async function fillSource(source: PgServer, rows: number): Promise<void> {
  const customers = Math.max(1, Math.round(rows * 0.1));
  const orders = Math.max(1, Math.round(rows * 0.3));
  const events = Math.max(1, rows - customers - orders);
  await source.query(`CREATE DATABASE ${DB}`);
  await source.query(
    `CREATE TABLE customers (
       id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL, created_at timestamptz NOT NULL);
     CREATE TABLE orders (
       id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers,
       status text NOT NULL, total numeric(12,2) NOT NULL, placed_at timestamptz NOT NULL, note text);
     CREATE TABLE events (
       id bigint PRIMARY KEY, order_id bigint NOT NULL, kind text NOT NULL, payload jsonb NOT NULL,
       at timestamptz NOT NULL);
     INSERT INTO customers
       SELECT g, 'customer ' || g, 'c' || g || '@example.com', '2024-01-01'::timestamptz + g * interval '1 minute'
       FROM generate_series(1, ${customers}) AS g;
     INSERT INTO orders
       SELECT g, 1 + (g::bigint * 7919) % ${customers}, (ARRAY['new','paid','shipped','returned'])[1 + g % 4],
              (g % 100000) / 100.0, '2024-01-01'::timestamptz + g * interval '10 seconds',
              CASE WHEN g % 3 = 0 THEN repeat('note ', 1 + g % 20) END
       FROM generate_series(1, ${orders}) AS g;
     INSERT INTO events
       SELECT g, 1 + g % ${orders}, (ARRAY['created','viewed','updated','closed'])[1 + g % 4],
              jsonb_build_object('seq', g, 'source', 'bench', 'tags', jsonb_build_array(g % 7, g % 11)),
              '2024-01-01'::timestamptz + g * interval '1 second'
       FROM generate_series(1, ${events}) AS g;
     CREATE INDEX orders_customer_idx ON orders (customer_id);
     CREATE INDEX events_at_idx ON events (at);`,
    [],
    DB,
  );
  await source.query("VACUUM ANALYZE", [], DB);
}

/**
 * One table of about `megabytes` of heap (≈ 110 bytes a row) with two indexes: its primary key
 * and one on an integer column.
 */
export async function fillWideTable(source: PgServer, megabytes: number): Promise<void> {
  const rows = Math.max(1, Math.round((megabytes * 1024 * 1024) / 118));
  await source.query(`CREATE DATABASE ${DB}`);
  await source.query(
    `CREATE TABLE wide (id bigint PRIMARY KEY, k int NOT NULL, payload text NOT NULL, at timestamptz NOT NULL);
     INSERT INTO wide
       SELECT g, (g::bigint * 7919) % 100000, md5(g::text) || md5((g + 1)::text),
              '2024-01-01'::timestamptz + g * interval '1 second'
       FROM generate_series(1, ${rows}) AS g;
     CREATE INDEX wide_k_idx ON wide (k);`,
    [],
    DB,
  );
  await source.query("VACUUM ANALYZE", [], DB);
}

/** pgbench's tables at `scale` (100,000 accounts each; three primary keys). */
export async function fillPgbench(source: PgServer, scale: number): Promise<void> {
  await source.query(`CREATE DATABASE ${DB}`);
  await initPgbench(source, DB, { scale });
  await source.query("VACUUM ANALYZE", [], DB);
}

export function specFor(
  source: PgServer,
  target: PgServer,
  parallel: number,
  splitTablesLargerThan?: number,
): MigrationSpec {
  const resolved = resolveSpec(
    {
      source: endpoint(source),
      target: endpoint(target),
      databases: [DB],
      parallelism: { tables: parallel, indexes: parallel, splitTablesLargerThan },
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

export function ourClone(
  source: PgServer,
  target: PgServer,
  parallel: number,
  splitTablesLargerThan?: number,
): Method {
  const spec = specFor(source, target, parallel, splitTablesLargerThan);
  const split = splitThreshold(spec.parallelism);
  return {
    name: `cloneDatabase (parallelism ${parallel}, split > ${Math.round(split / 1024 / 1024)} MB)`,
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
