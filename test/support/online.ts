// Building blocks for end-to-end online-migration tests: a scenario's servers and worker (torn
// down on every path), writers on the source, faults to inject, and the checks every finished
// migration must pass (identical data, sequences, verification, nothing of ours left behind).
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  createMigration,
  getMigration,
  isEnded,
  isSettled,
  requestAction,
  waitForMigration,
  type ControlLocation,
  type RuntimeOptions,
} from "../../provider/api/index";
import { OBJECT_PREFIX, TARGET_BOOKKEEPING_SCHEMA } from "../../provider/pg/names";
import { parseOwnerId } from "../../provider/runtime/lease";
import { processAlive } from "../../provider/pg/process";
import { runWorker } from "../../provider/runtime/worker";
import type { MigrationOutputs, MigrationSpec } from "../../provider/spec/types";
import { compareDatabases, sequenceStates, type SequenceState } from "./checksum";
import { loadFixture, writeWorkload, type WorkloadCounts } from "./fixture";
import { initPgbench, startPgbench, type PgbenchResult } from "./pgbench";
import { startPostgres, type PgServer } from "./postgres";
import { specOf } from "./spec";
import { until } from "./wait";

/** An Online migration of `databases` with checksum verification; `overrides` are raw inputs. */
export function onlineSpec(
  source: PgServer,
  target: PgServer,
  migrationName: string,
  databases: string[],
  overrides: Record<string, unknown> = {},
): MigrationSpec {
  return specOf(source, target, {
    migrationName,
    databases,
    mode: "Online",
    verify: "checksum",
    ...overrides,
  });
}

export function controlOf(spec: MigrationSpec): ControlLocation {
  return { target: spec.target, controlDatabase: spec.controlDatabase };
}

/** `SELECT count(*) AS n ...` as a number. */
export async function count(server: PgServer, database: string, sql: string): Promise<number> {
  const [row] = await server.query<{ n: string }>(sql, [], database);
  return Number(row.n);
}

/** The servers of one scenario and its worker, torn down whatever happened. */
export class Scenario {
  source!: PgServer;
  target!: PgServer;
  private worker?: { controller: AbortController; run: Promise<void> };
  /** Pids of spawned workers: killed at stop() if still alive. */
  readonly spawnedPids = new Set<number>();
  /** Run first at stop() (writers, locks); their errors are ignored. */
  readonly cleanups: (() => Promise<unknown>)[] = [];
  /** Worker log folders: removed last at stop(), once no worker can write to them. */
  private readonly logDirs: string[] = [];

  async start(sourceVersion?: number, targetVersion?: number): Promise<void> {
    [this.source, this.target] = await Promise.all([
      startPostgres({ version: sourceVersion }),
      startPostgres({ version: targetVersion }),
    ]);
  }

  /** Runs the worker in this process; it returns once the migration has ended. */
  runWorker(spec: MigrationSpec): Promise<void> {
    const controller = new AbortController();
    const run = runWorker({
      target: spec.target,
      controlDatabase: spec.controlDatabase,
      migrationName: spec.migrationName,
      sourcePassword: spec.source.password,
      signal: controller.signal,
      heartbeatMs: 500,
    });
    run.catch(() => undefined);
    this.worker = { controller, run };
    return run;
  }

  /** Creates `spec`'s migration, runs its worker in this process and waits until it settles. */
  async startInProcess(
    spec: MigrationSpec,
  ): Promise<{ worker: Promise<void>; settled: MigrationOutputs }> {
    await createMigration(spec, { kind: "external" });
    const worker = this.runWorker(spec);
    const settled = await waitForMigration(controlOf(spec), spec.migrationName, isSettled, {
      timeoutMs: 120_000,
    });
    return { worker, settled };
  }

  /**
   * The user's `up` of an Online migration with the worker in this process: created, copied and
   * streaming, waiting for the cutover trigger.
   */
  async startStreaming(
    spec: MigrationSpec,
  ): Promise<{ worker: Promise<void>; settled: MigrationOutputs }> {
    const started = await this.startInProcess(spec);
    assertStreaming(started.settled);
    return started;
  }

  /** The cutover of a migration whose worker runs in this process: its outputs once it ended. */
  async cutOver(spec: MigrationSpec, worker: Promise<void>): Promise<MigrationOutputs> {
    const at = controlOf(spec);
    await requestAction(at, spec.migrationName, "cutover");
    await worker;
    return (await getMigration(at, spec.migrationName)) as MigrationOutputs;
  }

  /**
   * The same `up` with a spawned (local) worker logging to a new folder: streaming, and the
   * worker's pid (killed at stop() if still alive).
   */
  async startSpawnedStreaming(
    spec: MigrationSpec,
    logPrefix: string,
  ): Promise<
    ReturnType<typeof localRun> & { settled: MigrationOutputs; pid: number; logDir: string }
  > {
    const logDir = this.makeLogDir(logPrefix);
    const run = localRun(spec, logDir);
    await createMigration(spec, run.runtime);
    const settled = await run.wait(isSettled);
    assertStreaming(settled);
    const pid = await this.leaseHolder(spec);
    return { ...run, settled, pid, logDir };
  }

  /** Pid of the worker holding `spec`'s lease (other than `previous`), once there is one. */
  async leaseHolder(spec: MigrationSpec, previous?: number): Promise<number> {
    const pid = await until(
      async () => {
        const holder = await leaseHolderPid(this.target, spec.migrationName);
        return holder !== previous ? holder : undefined;
      },
      { what: `a worker${previous ? " other than " + previous : ""} to hold the lease` },
    );
    this.spawnedPids.add(pid);
    return pid;
  }

  /** A new folder for spawned workers' logs, removed at stop(). */
  makeLogDir(prefix: string): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    this.logDirs.push(dir);
    return dir;
  }

  async stop(): Promise<void> {
    for (const cleanup of this.cleanups.splice(0)) await cleanup().catch(() => undefined);
    if (this.worker) {
      this.worker.controller.abort();
      await this.worker.run.catch(() => undefined);
    }
    for (const pid of this.spawnedPids) if (processAlive(pid)) process.kill(pid, "SIGKILL");
    await Promise.all([this.source?.stop(), this.target?.stop()]);
    for (const dir of this.logDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A scenario for the enclosing `describe`: servers started before its tests, all torn down after. */
export function useScenario(sourceVersion?: number, targetVersion?: number): Scenario {
  const s = new Scenario();
  before(() => s.start(sourceVersion, targetVersion));
  after(() => s.stop());
  return s;
}

/** Created, copied and streaming without error: waiting for the user's cutover. */
export function assertStreaming(settled: MigrationOutputs): void {
  assert.equal(settled.error, null);
  assert.equal(settled.state, "WaitingForUserAction");
  assert.equal(settled.substate, "WaitingForCutoverTrigger");
}

/** The cutover of a migration with a spawned worker: its outputs once it ended. */
export async function cutOverSpawned(
  spec: MigrationSpec,
  wait: ReturnType<typeof localRun>["wait"],
): Promise<MigrationOutputs> {
  await requestAction(controlOf(spec), spec.migrationName, "cutover");
  return wait((o) => isEnded(o.state));
}

/**
 * Local (spawned) runtime for `spec` logging to `logDir`, and a wait on its migration that keeps
 * a worker running (ensureWorker) while it polls.
 */
export function localRun(
  spec: MigrationSpec,
  logDir: string,
): {
  runtime: RuntimeOptions;
  wait: (done: (o: MigrationOutputs) => boolean) => Promise<MigrationOutputs>;
} {
  const runtime: RuntimeOptions = { kind: "local", logDir };
  const wait = (done: (o: MigrationOutputs) => boolean) =>
    waitForMigration(controlOf(spec), spec.migrationName, done, {
      timeoutMs: 120_000,
      spec,
      runtime,
    });
  return { runtime, wait };
}

/** The fixture (`rows`) and pgbench's tables (`scale`) in a new source database. */
export async function prepareSource(
  source: PgServer,
  database: string,
  options: { rows: number; scale: number; historyPrimaryKey: boolean },
): Promise<void> {
  await loadFixture(source, database, { rows: options.rows });
  await initPgbench(source, database, {
    scale: options.scale,
    historyPrimaryKey: options.historyPrimaryKey,
  });
}

/** pgbench (2 clients at `rate` tps) and the fixture workload writing at the same time. */
export interface Writers {
  /** Stops both; resolves once no transaction of theirs can still commit. */
  stop(): Promise<{ pgbench: PgbenchResult; workload: WorkloadCounts }>;
}

export function startWriters(server: PgServer, database: string, rate = 100): Writers {
  const pgbench = startPgbench(server, database, { clients: 2, rate });
  const controller = new AbortController();
  const workload = writeWorkload(server, database, {
    transactions: 1_000_000,
    pauseMs: 40,
    signal: controller.signal,
  });
  workload.catch(() => undefined);
  return {
    async stop() {
      controller.abort();
      const [pgbenchResult, counts] = await Promise.all([pgbench.stop(), workload]);
      // Ended by our signal, not by an error of its own.
      assert.equal(pgbenchResult.signal, "SIGINT", pgbenchResult.output);
      return { pgbench: pgbenchResult, workload: counts };
    },
  };
}

/** Pid of the worker holding migration `name`'s lease. */
export async function leaseHolderPid(target: PgServer, name: string): Promise<number | undefined> {
  const [row] = await target.query<{ lease_owner: string | null }>(
    "SELECT lease_owner FROM pgmigrate.migrations WHERE name = $1",
    [name],
  );
  return row?.lease_owner ? parseOwnerId(row.lease_owner)?.pid : undefined;
}

/** Terminates our walsenders on the source; returns how many were terminated. */
export async function terminateWalsender(source: PgServer): Promise<number> {
  const rows = await source.query<{ ok: boolean }>(
    `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_replication
     WHERE application_name = 'pgmigrate_stream'`,
  );
  return rows.filter((r) => r.ok).length;
}

/** Terminates the apply backends in a target database; returns how many were terminated. */
export async function terminateApply(target: PgServer, database: string): Promise<number> {
  const rows = await target.query<{ ok: boolean }>(
    `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
     WHERE application_name = 'pgmigrate_apply' AND datname = $1`,
    [database],
  );
  return rows.filter((r) => r.ok).length;
}

/** Slots on the source and publications in `database` that carry our prefix. */
export async function ourSourceObjects(source: PgServer, database: string): Promise<string[]> {
  const prefix = `${OBJECT_PREFIX.replace(/_/g, "\\_")}%`;
  const slots = await source.query<{ name: string }>(
    "SELECT slot_name AS name FROM pg_replication_slots WHERE slot_name LIKE $1",
    [prefix],
  );
  const publications = await source.query<{ name: string }>(
    "SELECT pubname AS name FROM pg_publication WHERE pubname LIKE $1",
    [prefix],
    database,
  );
  return [...slots, ...publications].map((r) => r.name);
}

// Orders sequence states by where nextval continues.
export function sequencePosition(s: SequenceState): bigint {
  return BigInt(s.lastValue) * 2n + (s.isCalled ? 1n : 0n);
}

/**
 * What a Succeeded online migration of the fixture + pgbench must leave: identical tables,
 * sequences at least as far as the source's (inserts using defaults don't collide), a
 * Succeeded checksum verification, and nothing of ours on either server.
 */
export async function assertMigrated(
  s: Scenario,
  database: string,
  done: MigrationOutputs,
  options: { historyPrimaryKey: boolean },
): Promise<void> {
  assert.equal(done.error, null);
  assert.equal(done.state, "Succeeded");
  assert.equal(done.substate, "Completed");
  assert.equal(done.dbDetails[database].migrationState, "Succeeded");

  const comparison = await compareDatabases(s.source, database, s.target, database);
  assert.deepEqual(comparison.differences, []);
  const history = "SELECT count(*) AS n FROM pgbench_history";
  assert.ok((await count(s.target, database, history)) > 0, "pgbench wrote history rows");

  const [sourceSeqs, targetSeqs] = await Promise.all([
    sequenceStates(s.source, database),
    sequenceStates(s.target, database),
  ]);
  assert.deepEqual([...targetSeqs.keys()], [...sourceSeqs.keys()]);
  for (const [name, state] of sourceSeqs) {
    const copied = targetSeqs.get(name) as SequenceState;
    assert.ok(
      sequencePosition(copied) >= sequencePosition(state),
      `sequence ${name}: target ${copied.lastValue}/${copied.isCalled} behind source ${state.lastValue}/${state.isCalled}`,
    );
  }
  const [customer] = await s.target.query<{ id: string; top: string }>(
    `INSERT INTO public.customers (email, full_name, created_at)
     VALUES ('after-cutover@example.com', 'After Cutover', now())
     RETURNING customer_id AS id, (SELECT max(customer_id) FROM public.customers) AS top`,
    [],
    database,
  );
  assert.ok(BigInt(customer.id) > BigInt(customer.top), "customer id continues after the rows");
  if (options.historyPrimaryKey) {
    const [row] = await s.target.query<{ id: string; top: string }>(
      `INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 1, 0, now())
       RETURNING id, (SELECT max(id) FROM pgbench_history) AS top`,
      [],
      database,
    );
    assert.ok(BigInt(row.id) > BigInt(row.top), "history id continues after the rows");
  }

  const verification = done.verification;
  assert.equal(verification?.status, "Succeeded");
  assert.ok((verification?.tables.length ?? 0) > 0);
  for (const t of verification?.tables ?? []) {
    assert.equal(t.skippedReason, undefined, `${t.table} skipped: ${t.skippedReason}`);
    assert.ok(t.match, `${t.table}: ${t.sourceRows} vs ${t.targetRows}`);
  }

  assert.deepEqual(await ourSourceObjects(s.source, database), []);
  const bookkeeping = await s.target.query(
    "SELECT 1 FROM pg_namespace WHERE nspname = $1",
    [TARGET_BOOKKEEPING_SCHEMA],
    database,
  );
  assert.equal(bookkeeping.length, 0, "the target keeps no bookkeeping schema");
}
