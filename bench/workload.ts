// The replication bench's workload: pgbench-style tables, a burst of small inserting and updating
// transactions driven by pgbench, and a marker row whose arrival on a target means "caught up".
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { PgServer } from "../test/support/postgres";
import { runCommand, toolEnv } from "./support";

/** Tables every copy of the workload database has; compared at the end. */
export const WORKLOAD_TABLES = ["pgbench_accounts", "pgbench_history", "bench_marker"] as const;

/** Changes per pgbench transaction: one UPDATE of an account, one INSERT into the history. */
export const CHANGES_PER_TRANSACTION = 2;

// Like pgbench's TPC-B transaction without the contended teller/branch rows.
const SCRIPT = `\\set aid random(1, :accounts)
\\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1 + :aid % 10, 1, :aid, :delta, CURRENT_TIMESTAMP);
END;
`;

/**
 * Creates the workload tables in `database` and fills the accounts identically everywhere
 * (subscribers start from the same data without copying it).
 */
export async function createWorkloadSchema(
  server: PgServer,
  database: string,
  accounts: number,
): Promise<void> {
  await server.query(`CREATE DATABASE ${database}`);
  await server.query(
    `CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int NOT NULL, abalance int NOT NULL, filler char(84));
     CREATE TABLE pgbench_history (
       hid bigserial PRIMARY KEY, tid int, bid int, aid int, delta int, mtime timestamp, filler char(22));
     CREATE TABLE bench_marker (id int PRIMARY KEY, at timestamptz NOT NULL);
     INSERT INTO pgbench_accounts SELECT g, 1, 0, '' FROM generate_series(1, ${accounts}) AS g;`,
    [],
    database,
  );
  await server.query("VACUUM ANALYZE", [], database);
}

export interface Burst {
  /** Changes written (UPDATEs + INSERTs), excluding the marker. */
  readonly changes: number;
  readonly transactions: number;
  readonly ms: number;
  /** Marker id inserted right after the burst. */
  readonly marker: number;
}

export interface BurstOptions {
  readonly bin: string;
  readonly database: string;
  readonly changes: number;
  readonly accounts: number;
  readonly clients: number;
  readonly marker: number;
}

/** Runs pgbench on the source until about `changes` changes are committed, then inserts the marker. */
export async function runBurst(source: PgServer, options: BurstOptions): Promise<Burst> {
  const { clients } = options;
  const perClient = Math.max(1, Math.ceil(options.changes / CHANGES_PER_TRANSACTION / clients));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-bench-pgbench-"));
  try {
    const script = path.join(dir, "burst.sql");
    fs.writeFileSync(script, SCRIPT);
    const cost = await runCommand({
      bin: path.join(options.bin, "pgbench"),
      args: [
        "--no-vacuum",
        "--protocol=prepared",
        `--client=${clients}`,
        `--jobs=${Math.min(clients, os.cpus().length)}`,
        `--transactions=${perClient}`,
        `--define=accounts=${options.accounts}`,
        `--file=${script}`,
        options.database,
      ],
      env: toolEnv(source, options.database),
    });
    await source.query(
      "INSERT INTO bench_marker VALUES ($1, now())",
      [options.marker],
      options.database,
    );
    const transactions = perClient * clients;
    return {
      changes: transactions * CHANGES_PER_TRANSACTION,
      transactions,
      ms: cost.ms,
      marker: options.marker,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Resolves when marker `id` is visible in `database` on `target` (polled every 20 ms). */
export async function waitForMarker(
  target: PgServer,
  database: string,
  id: number,
  timeoutMs: number,
): Promise<void> {
  const client = await target.connect(database);
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { rowCount } = await client.query("SELECT 1 FROM bench_marker WHERE id = $1", [id]);
      if (rowCount) return;
      if (Date.now() > deadline) {
        throw new Error(`marker ${id} did not arrive in ${database} within ${timeoutMs / 1000} s`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    await client.end();
  }
}
