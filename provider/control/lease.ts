// Runtime lease queries: a worker owns a migration while its heartbeats are fresh, so two
// workers never drive the same migration; spawners use the spawn stamp to avoid duplicates.
import { MigrationError } from "../pg/errors";
import type { RequestedAction } from "../spec/types";
import type { Queryable } from "./db";

/**
 * A worker's hold on one migration. Every write the worker makes carries `owner` and changes
 * nothing once another owner holds the lease; `lost` is told so the worker stops at once
 * (before it could, say, roll back what its successor now drives).
 */
export interface LeaseFence {
  readonly migration: string;
  readonly owner: string;
  lost(reason: Error): void;
}

/** SQL condition (for the migration in `$1`, owner in `$<ownerParam>`) that the lease is held. */
export function fencedBy(ownerParam: number): string {
  return `EXISTS (SELECT FROM pgmigrate.migrations fence
                   WHERE fence.name = $1 AND fence.lease_owner = $${ownerParam})`;
}

/**
 * Called after a fenced write changed no row: when the lease is no longer ours, tells the fence
 * and throws "PGM_LEASE_LOST"; otherwise the write simply had nothing to change.
 */
export async function confirmLease(db: Queryable, fence: LeaseFence): Promise<void> {
  const { rows } = await db.query<{ held: boolean }>(`SELECT ${fencedBy(2)} AS held`, [
    fence.migration,
    fence.owner,
  ]);
  if (rows[0]?.held) return;
  const err = new MigrationError(
    "runtime",
    `worker ${fence.owner} no longer holds the lease of migration "${fence.migration}"; stopping`,
    { code: "PGM_LEASE_LOST" },
  );
  fence.lost(err);
  throw err;
}

/** Runs a fenced write; a write that changed no row checks whether the lease was lost. */
export async function fencedWrite(
  db: Queryable,
  fence: LeaseFence,
  text: string,
  values: unknown[],
): Promise<number> {
  const { rowCount } = await db.query(text, values);
  if (!rowCount) await confirmLease(db, fence);
  return rowCount ?? 0;
}

/** A lease whose heartbeat is older than this may be taken over by another worker. */
export const LEASE_EXPIRY_SECONDS = 30;

/** Takes the lease when it is free or expired; false when another worker holds it. */
export async function claimLease(
  db: Queryable,
  name: string,
  owner: string,
  worker: { pid: number; host: string },
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE pgmigrate.migrations
        SET lease_owner = $2, heartbeat_at = now(), worker_pid = $3, worker_host = $4
      WHERE name = $1 AND ended_on IS NULL
        AND (lease_owner IS NULL OR lease_owner = $2
             OR heartbeat_at < now() - make_interval(secs => $5))`,
    [name, owner, worker.pid, worker.host, LEASE_EXPIRY_SECONDS],
  );
  return rowCount === 1;
}

/** What a heartbeat learns: the lease is still ours, and what the user asked for. */
export interface Heartbeat {
  readonly held: boolean;
  readonly requestedAction: RequestedAction | null;
}

export async function heartbeat(db: Queryable, name: string, owner: string): Promise<Heartbeat> {
  const { rows } = await db.query<{ requested_action: RequestedAction | null }>(
    `UPDATE pgmigrate.migrations SET heartbeat_at = now()
      WHERE name = $1 AND lease_owner = $2
      RETURNING requested_action`,
    [name, owner],
  );
  return rows.length === 1
    ? { held: true, requestedAction: rows[0].requested_action }
    : { held: false, requestedAction: null };
}

/**
 * Gives the lease up (worker stopping or migration ended) so a successor can claim at once; a
 * worker that stops cleanly also ends a series of crashes.
 */
export async function releaseLease(db: Queryable, name: string, owner: string): Promise<void> {
  await db.query(
    `UPDATE pgmigrate.migrations SET lease_owner = NULL, crash_count = 0
      WHERE name = $1 AND lease_owner = $2`,
    [name, owner],
  );
}

/** Active migrations whose lease is free or expired, oldest first. */
export async function claimableMigrations(db: Queryable): Promise<string[]> {
  const { rows } = await db.query<{ name: string }>(
    `SELECT name FROM pgmigrate.migrations
      WHERE ended_on IS NULL
        AND (lease_owner IS NULL OR heartbeat_at < now() - make_interval(secs => $1))
      ORDER BY created_at`,
    [LEASE_EXPIRY_SECONDS],
  );
  return rows.map((r) => r.name);
}

/**
 * Reserves the right to spawn a worker for `name`, so concurrent `show`/`read` calls do not
 * start several: granted when no spawn happened in the last `debounceSeconds`, or when the
 * last spawned worker has heartbeated since (its successor is what is needed now).
 */
export async function reserveSpawn(
  db: Queryable,
  name: string,
  debounceSeconds: number,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE pgmigrate.migrations SET spawned_at = now()
      WHERE name = $1 AND ended_on IS NULL
        AND (spawned_at IS NULL OR spawned_at < heartbeat_at
             OR spawned_at < now() - make_interval(secs => $2))`,
    [name, debounceSeconds],
  );
  return rowCount === 1;
}

/** Gives back a reservation whose spawn failed, so the next caller may spawn at once. */
export async function releaseSpawn(db: Queryable, name: string): Promise<void> {
  await db.query(`UPDATE pgmigrate.migrations SET spawned_at = NULL WHERE name = $1`, [name]);
}

/** Records the spawned worker's process and log file. */
export async function recordSpawn(
  db: Queryable,
  name: string,
  worker: { pid: number; host: string; log: string },
): Promise<void> {
  await db.query(
    `UPDATE pgmigrate.migrations SET worker_pid = $2, worker_host = $3, worker_log = $4
      WHERE name = $1`,
    [name, worker.pid, worker.host, worker.log],
  );
}

/** Frees a lease whose holder is known to be dead (its process is gone from this host). */
export async function clearDeadLease(
  db: Queryable,
  name: string,
  deadOwner: string,
): Promise<void> {
  await db.query(
    `UPDATE pgmigrate.migrations SET lease_owner = NULL WHERE name = $1 AND lease_owner = $2`,
    [name, deadOwner],
  );
}

/**
 * Reserves the right to report that no worker is running (external runtime), so a poll every
 * second does not fill the event log: granted once per `everySeconds`.
 */
export async function reserveWorkerWarning(
  db: Queryable,
  name: string,
  everySeconds: number,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE pgmigrate.migrations SET worker_warned_at = now()
      WHERE name = $1 AND ended_on IS NULL
        AND (worker_warned_at IS NULL
             OR worker_warned_at < now() - make_interval(secs => $2))`,
    [name, everySeconds],
  );
  return rowCount === 1;
}
