// The runtime worker (`pgmigrate runtime`): claims migrations in the control store and drives
// each through its states while holding its lease. With a migration name it serves that one and
// returns when it ends; without, it serves every claimable one until its signal aborts.
import os from "node:os";
import type { Pool } from "pg";
import { openChangeListener } from "../control/changes";
import { openControlPool } from "../control/db";
import { claimableMigrations, claimLease, clearDeadLease } from "../control/lease";
import { getMigrationRow, type StoredSpec } from "../control/migrations";
import { installControlSchema } from "../control/schema";
import { MigrationError } from "../pg/errors";
import { processAlive } from "../pg/process";
import { sleep, Wakeup } from "../pg/retry";
import type { Endpoint, MigrationSpec } from "../spec/types";
import type { MigrationContext } from "./context";
import { errorText, Journal, logLine } from "./journal";
import { HEARTBEAT_MS, LeaseKeeper, newOwnerId, parseOwnerId } from "./lease";
import { runMigration } from "./machine";
import { StreamSet } from "./streams";
import { runtimeIdentity, UnitRunner, withRuntimePasswords } from "./unit-runner";

export interface WorkerOptions {
  /** The target server (with password): the control store lives there. */
  readonly target: Endpoint;
  readonly controlDatabase: string;
  /** Serve only this migration; otherwise every claimable active one. */
  readonly migrationName?: string;
  readonly sourcePassword?: string;
  /** Aborting stops the worker gracefully: state and slots stay for a successor. */
  readonly signal?: AbortSignal;
  /** Heartbeat period (tests shorten it); default 3 s. */
  readonly heartbeatMs?: number;
  /** Touched at every runtime heartbeat (a container's liveness probe reads its age). */
  readonly heartbeatFile?: string;
  /** Copy units this runtime runs at once (0: it only coordinates); default per migration. */
  readonly copyUnits?: number;
}

/** How long a named worker keeps trying to claim a lease that a dead worker may still hold. */
const CLAIM_PATIENCE_MS = 45_000;
const CLAIM_RETRY_MS = 1_000;
/** A predecessor asked to stop (restart) gets this long to release its lease. */
const STOPPING_GRACE_MS = 10_000;
const POLL_MS = 2_000;

/**
 * Runs the worker: the migrations it claims (their state machines), and alongside, the work
 * units of pool migrations (or of its one named migration) that any runtime may copy.
 */
export async function runWorker(options: WorkerOptions): Promise<void> {
  const at = { target: options.target, controlDatabase: options.controlDatabase };
  await installControlSchema(at);
  const pool = await openControlPool(at, 8);
  const units = new UnitRunner(pool, runtimeIdentity(newOwnerId(), options.migrationName), {
    at,
    sourcePassword: options.sourcePassword,
    heartbeatMs: options.heartbeatMs ?? HEARTBEAT_MS,
    heartbeatFile: options.heartbeatFile,
    copyUnits: options.copyUnits,
    signal: options.signal,
  });
  const unitsDone = units.run();
  try {
    const runtimeId = units.identity.id;
    if (options.migrationName) {
      await serveNamed(pool, options, options.migrationName, runtimeId);
      return;
    }
    await serveAll(pool, options, runtimeId);
  } finally {
    units.close();
    await unitsDone;
    await pool.end().catch(() => undefined);
  }
}

/**
 * Frees the leases of migrations whose worker was on this host and is gone (killed), so they
 * are claimed at the next poll instead of after the lease expiry.
 */
async function freeDeadLocalLeases(pool: Pool): Promise<void> {
  const { rows } = await pool.query<{ name: string; owner: string }>(
    `SELECT name, lease_owner AS owner FROM pgmigrate.migrations
      WHERE ended_on IS NULL AND lease_owner IS NOT NULL`,
  );
  for (const row of rows) {
    const holder = parseOwnerId(row.owner);
    if (holder?.host === os.hostname() && !processAlive(holder.pid)) {
      await clearDeadLease(pool, row.name, row.owner);
    }
  }
}

// Serves every claimable migration, polling for new ones, until the worker's signal aborts. A
// control store that is briefly unreachable is retried at the next poll.
async function serveAll(pool: Pool, options: WorkerOptions, runtimeId: string): Promise<void> {
  const secrets = [options.target.password, options.sourcePassword];
  const running = new Map<string, Promise<void>>();
  // A new migration (or a freed lease) is seen at once, not at the next poll.
  const wakeup = new Wakeup();
  const at = { target: options.target, controlDatabase: options.controlDatabase };
  const listener = await openChangeListener(at, undefined, () => wakeup.wake(), 500).catch(
    () => undefined,
  );
  while (!options.signal?.aborted) {
    try {
      await freeDeadLocalLeases(pool);
      for (const name of await claimableMigrations(pool)) {
        if (running.has(name)) continue;
        const owner = newOwnerId();
        if (!(await claimLease(pool, name, owner, { pid: process.pid, host: os.hostname() }))) {
          continue;
        }
        const run = serve(pool, options, name, owner, runtimeId)
          .catch((err: unknown) => logLine(secrets, "error", `${name}: ${errorText(err, secrets)}`))
          .finally(() => running.delete(name));
        running.set(name, run);
      }
    } catch (err) {
      logLine(secrets, "warning", `looking for migrations to serve: ${errorText(err, secrets)}`);
    }
    await wakeup.wait(POLL_MS, options.signal);
  }
  await listener?.close();
  await Promise.all(running.values());
}

// A freshly spawned worker may find the lease still held by its dead predecessor (on another
// host we cannot tell it is dead): keep trying until the lease expires or a live worker shows.
async function serveNamed(
  pool: Pool,
  options: WorkerOptions,
  name: string,
  runtimeId: string,
): Promise<void> {
  const owner = newOwnerId();
  const started = Date.now();
  for (;;) {
    const row = await getMigrationRow(pool, name);
    if (!row) {
      throw new MigrationError("runtime", `no migration named "${name}" on the target server`, {
        code: "PGM_NOT_FOUND",
      });
    }
    if (row.endedOn) {
      logLine([], "info", `${name}: already ended (${row.state}); nothing to do`);
      return;
    }
    if (await claimLease(pool, name, owner, { pid: process.pid, host: os.hostname() })) {
      await serve(pool, options, name, owner, runtimeId);
      return;
    }
    const holder = row.leaseOwner ? parseOwnerId(row.leaseOwner) : undefined;
    const fresh = row.heartbeatAgeSeconds !== null && row.heartbeatAgeSeconds < 15;
    const waited = Date.now() - started;
    if ((fresh && waited > STOPPING_GRACE_MS) || waited > CLAIM_PATIENCE_MS) {
      logLine(
        [],
        "info",
        `${name}: served by another worker (${holder?.host ?? "?"} pid ${holder?.pid ?? "?"}); exiting`,
      );
      return;
    }
    await sleep(CLAIM_RETRY_MS, options.signal);
    if (options.signal?.aborted) return;
  }
}

/** Runs one claimed migration; releases the lease when it ends or the worker stops. */
async function serve(
  pool: Pool,
  options: WorkerOptions,
  name: string,
  owner: string,
  runtimeId: string,
): Promise<void> {
  const row = await getMigrationRow(pool, name);
  if (!row) return;
  const spec = specWithSecrets(row.spec, options);
  const secrets = [spec.target.password, spec.source.password];
  const lease = new LeaseKeeper(
    pool,
    name,
    owner,
    (message) => logLine(secrets, "warning", `${name}: ${message}`),
    options.heartbeatMs ?? HEARTBEAT_MS,
  );
  const journal = new Journal(pool, lease, secrets);
  const ctx: MigrationContext = {
    spec,
    db: pool,
    lease,
    journal,
    streams: new StreamSet(pool, spec, journal),
    runtimeId,
  };
  // A cutover or cancel request is seen at once, not at the next heartbeat (polling stays).
  const listener = await openChangeListener(
    { target: options.target, controlDatabase: options.controlDatabase },
    name,
    () => void lease.refresh(),
  ).catch((err: unknown) => {
    logLine(
      secrets,
      "warning",
      `${name}: not listening for requests (${errorText(err, secrets)}); polling`,
    );
    return undefined;
  });
  try {
    await lease.start(options.signal);
    await journal.event("info", `worker ${owner} serving the migration`);
    await runMigration(ctx);
  } finally {
    await listener?.close();
    await lease.release();
  }
}

/**
 * The stored spec (no passwords) with the passwords this worker was given; without a source
 * password, the password file's for the migration's source (withRuntimePasswords).
 */
export function specWithSecrets(stored: StoredSpec, options: WorkerOptions): MigrationSpec {
  return withRuntimePasswords(stored, {
    source: options.sourcePassword,
    target: options.target.password,
  });
}
