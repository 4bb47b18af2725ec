// A worker killed on an idle source and brought back must reach the cutover without waiting for
// unrelated WAL: its confirmed position starts at the slot's, not at zero (issue 11, finding 7).
// The source runs without autovacuum or timed checkpoints, so nothing else writes WAL for it.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  createMigration,
  ensureWorker,
  requestAction,
  waitForMigration,
  type RuntimeOptions,
} from "../../provider/api/index";
import { processAlive } from "../../provider/pg/process";
import type { MigrationSpec } from "../../provider/spec/types";
import { compareDatabases } from "../support/checksum";
import { controlOf, leaseHolderPid, onlineSpec } from "../support/online";
import { startPostgres, type PgServer } from "../support/postgres";

/** Waits until the slot has confirmed the source's current WAL position, unchanged for 16 s. */
async function quiescent(source: PgServer, database: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  let since = { lsn: "", at: Date.now() };
  for (;;) {
    const [row] = await source.query<{ current: string; confirmed: string | null }>(
      `SELECT pg_current_wal_lsn()::text AS current,
              (SELECT confirmed_flush_lsn::text FROM pg_replication_slots
                WHERE database = current_database()) AS confirmed`,
      [],
      database,
    );
    if (row.current !== since.lsn) since = { lsn: row.current, at: Date.now() };
    if (row.confirmed === row.current && Date.now() - since.at > 16_000) return;
    assert.ok(Date.now() < deadline, `WAL never went quiet (${JSON.stringify(row)})`);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
}

describe("cutover after a worker restart on an idle source", function () {
  let source: PgServer;
  let target: PgServer;
  let logDir: string;
  const pids = new Set<number>();

  before(async () => {
    [source, target] = await Promise.all([
      startPostgres({ settings: { autovacuum: "off", checkpoint_timeout: "'1h'" } }),
      startPostgres(),
    ]);
    logDir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-idle-"));
    await source.query("CREATE DATABASE quiet");
    await source.query(
      `CREATE TABLE item (id int PRIMARY KEY, label text NOT NULL);
       INSERT INTO item SELECT i, 'item ' || i FROM generate_series(1, 100) i`,
      [],
      "quiet",
    );
  });

  after(async () => {
    for (const pid of pids) if (processAlive(pid)) process.kill(pid, "SIGKILL");
    await Promise.all([source?.stop(), target?.stop()]);
    if (logDir) fs.rmSync(logDir, { recursive: true, force: true });
  });

  it("finishes the cutover from the slot's position, without new source WAL", async () => {
    const spec: MigrationSpec = onlineSpec(source, target, "idle-restart", ["quiet"], {
      verify: "counts",
    });
    const runtime: RuntimeOptions = { kind: "local", logDir };
    const at = controlOf(spec);
    await createMigration(spec, runtime);
    await waitForMigration(at, spec.migrationName, (o) => o.state === "WaitingForUserAction", {
      timeoutMs: 120_000,
      spec,
      runtime,
    });
    await source.query("INSERT INTO item VALUES (101, 'one more')", [], "quiet");
    const applied = await waitForMigration(
      at,
      spec.migrationName,
      (o) => (o.dbDetails.quiet?.cdcInsertCounter ?? 0) >= 1 && o.latencySeconds === 0,
      { timeoutMs: 60_000 },
    );
    assert.equal(applied.dbDetails.quiet.cdcInsertCounter, 1);

    // Quiet: the slot confirmed the source's whole WAL and nothing new was written for longer
    // than the background writer's standby-snapshot interval (15 s). Only then does a successor
    // start exactly at the source's current position.
    await quiescent(source, "quiet");
    const first = await leaseHolderPid(target, spec.migrationName);
    assert.ok(first, "a worker holds the lease");
    pids.add(first);
    process.kill(first, "SIGKILL");
    await waitForMigration(at, spec.migrationName, () => !processAlive(first), {
      timeoutMs: 10_000,
    });
    // A successor, as `pgmigrate show` or `pulumi refresh` would start it.
    assert.equal(await ensureWorker(spec, runtime, { restart: true }), true);

    await requestAction(at, spec.migrationName, "cutover");
    // Without the fix the successor's position stays at zero and this never ends.
    const done = await waitForMigration(
      at,
      spec.migrationName,
      (o) => o.state === "Succeeded" || o.state === "Failed",
      { timeoutMs: 60_000 },
    );
    assert.equal(done.state, "Succeeded", JSON.stringify(done.error));
    const successor = await leaseHolderPid(target, spec.migrationName);
    if (successor) pids.add(successor);
    const comparison = await compareDatabases(source, "quiet", target, "quiet");
    assert.deepEqual(comparison.differences, []);
    const slots = await source.query("SELECT slot_name FROM pg_replication_slots");
    assert.deepEqual(slots, []);
  });
});
