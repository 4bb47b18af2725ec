// pgbench for online-migration tests: initializes its tables in a test database and drives the
// builtin TPC-B-like load against it. Credentials go through the environment, never argv.
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { PgServer } from "./postgres";
import { until } from "./wait";

/** Path of the pgbench client (PostgreSQL 15's works against 13-16 servers). */
export function pgbenchBinary(): string {
  const candidates: string[] = [];
  try {
    const bindir = execFileSync("pg_config", ["--bindir"], { encoding: "utf8" }).trim();
    candidates.push(path.join(bindir, "pgbench"));
  } catch {
    // pg_config missing: fall back to Debian's layout
  }
  candidates.push("/usr/lib/postgresql/15/bin/pgbench");
  const found = candidates.find((c) => fs.existsSync(c));
  if (!found) throw new Error(`pgbench not found (looked at ${candidates.join(", ")})`);
  return found;
}

// libpq settings for pgbench; the password only ever travels in PGPASSWORD.
function libpqEnvironment(server: PgServer, database: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PGHOST: server.host,
    PGPORT: String(server.port),
    PGUSER: server.user,
    PGPASSWORD: server.password,
    PGDATABASE: database,
    PGSSLMODE: "disable",
    PGAPPNAME: "pgbench",
  };
}

export interface PgbenchInitOptions {
  /** Scale factor: 100,000 pgbench_accounts rows per unit; default 1. */
  scale?: number;
  /**
   * pgbench_history has no primary key (pgbench ≤ 15): add `id bigserial PRIMARY KEY` so it
   * replicates without REPLICA IDENTITY FULL. Default false.
   */
  historyPrimaryKey?: boolean;
}

/** Creates and fills the pgbench tables in the existing `database`. */
export async function initPgbench(
  server: PgServer,
  database: string,
  options: PgbenchInitOptions = {},
): Promise<void> {
  const scale = options.scale ?? 1;
  await new Promise<void>((resolve, reject) => {
    execFile(
      pgbenchBinary(),
      ["-i", "-q", "-s", String(scale)],
      { env: libpqEnvironment(server, database), maxBuffer: 8 * 1024 * 1024 },
      (err, _stdout, stderr) =>
        err ? reject(new Error(`pgbench -i failed: ${err.message}\n${stderr}`)) : resolve(),
    );
  });
  if (options.historyPrimaryKey) {
    await server.query(
      "ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY",
      [],
      database,
    );
  }
}

export interface PgbenchRunOptions {
  /** Concurrent clients; default 2. */
  clients?: number;
  /** Transactions per client (a deterministic amount of work); otherwise runs until stop(). */
  transactionsPerClient?: number;
  /** Total transactions per second across clients (pgbench -R); default unthrottled. */
  rate?: number;
}

export interface PgbenchResult {
  /** Transactions pgbench reports as processed; undefined when it was stopped by a signal. */
  readonly transactions?: number;
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly output: string;
}

export interface PgbenchRun {
  /** Settles when pgbench exits (on its own or after stop()). */
  readonly done: Promise<PgbenchResult>;
  /**
   * Interrupts pgbench and waits until its server backends are gone too, so no transaction of
   * it commits after this resolves.
   */
  stop(): Promise<PgbenchResult>;
}

/** Starts the builtin tpcb-like script (no initial vacuum/truncate: `-n`). */
export function startPgbench(
  server: PgServer,
  database: string,
  options: PgbenchRunOptions = {},
): PgbenchRun {
  const args = ["-n", "-c", String(options.clients ?? 2), "-b", "tpcb-like"];
  // Without a transaction count it runs "forever": stop() ends it.
  if (options.transactionsPerClient !== undefined)
    args.push("-t", String(options.transactionsPerClient));
  else args.push("-T", "3600");
  if (options.rate !== undefined) args.push("-R", String(options.rate));
  const child: ChildProcess = spawn(pgbenchBinary(), args, {
    env: libpqEnvironment(server, database),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const done = new Promise<PgbenchResult>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (exitCode, signal) => {
      const m = /number of transactions actually processed: (\d+)/.exec(output);
      resolve({ transactions: m ? Number(m[1]) : undefined, exitCode, signal, output });
    });
  });
  done.catch(() => undefined);

  const stop = async (): Promise<PgbenchResult> => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGINT");
    const result = await done;
    await waitForBackendsGone(server, database);
    return result;
  };
  return { done, stop };
}

// A backend whose client vanished after sending COMMIT still commits: wait until it is gone.
async function waitForBackendsGone(server: PgServer, database: string): Promise<void> {
  await until(
    async () => {
      const rows = await server.query(
        "SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND application_name = 'pgbench'",
        [database],
      );
      return rows.length;
    },
    {
      what: "pgbench's backends to go away",
      accept: (n) => n === 0,
      timeoutMs: 30_000,
      intervalMs: 100,
    },
  );
}
