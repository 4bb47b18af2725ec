// Runtimes and work units (control schema v7): live `pgmigrate runtime` processes heartbeat in
// pgmigrate.runtimes; the copy of a pool migration is split into pgmigrate.work_units that any
// runtime claims with FOR UPDATE SKIP LOCKED. A unit's lease is its owner's heartbeat: a unit
// whose owner stopped heartbeating (or whose process is gone from this host) is claimed again.
import type { RuntimeOutput } from "../spec/types";
import type { Queryable } from "./db";
import { fencedBy, fencedWrite, type LeaseFence } from "./lease";

/** A runtime whose heartbeat is older than this is taken for dead: its units are claimed again. */
export const RUNTIME_EXPIRY_SECONDS = 15;

/** A unit claimed this many times (its runtimes kept dying) fails instead. */
export const MAX_UNIT_CLAIMS = 4;

export interface RuntimeIdentity {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  /** The migration a named runtime serves; undefined: a pool runtime. */
  readonly migration?: string;
}

/** Records (or refreshes) this runtime; also its heartbeat. */
export async function heartbeatRuntime(db: Queryable, runtime: RuntimeIdentity): Promise<void> {
  await db.query(
    `INSERT INTO pgmigrate.runtimes (id, host, pid, migration) VALUES ($1, $2, $3, $4)
     ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()`,
    [runtime.id, runtime.host, runtime.pid, runtime.migration ?? null],
  );
}

/** A runtime stopping cleanly: its running units go back to the queue at once. */
export async function removeRuntime(db: Queryable, id: string): Promise<void> {
  await db.query(
    `UPDATE pgmigrate.work_units SET state = 'pending', owner = NULL
      WHERE owner = $1 AND state = 'running' AND kind = 'copy' AND target_xid IS NULL`,
    [id],
  );
  await db.query("DELETE FROM pgmigrate.runtimes WHERE id = $1", [id]);
}

/**
 * Forgets runtimes known dead: on `host`, whose process `alive` says is gone, and anywhere,
 * those silent for an hour. Their units are then claimable without waiting for the expiry.
 */
export async function forgetDeadRuntimes(
  db: Queryable,
  host: string,
  alive: (pid: number) => boolean,
): Promise<void> {
  const { rows } = await db.query<{ id: string; pid: number }>(
    "SELECT id, pid FROM pgmigrate.runtimes WHERE host = $1",
    [host],
  );
  const dead = rows.filter((r) => !alive(r.pid)).map((r) => r.id);
  await db.query(
    `DELETE FROM pgmigrate.runtimes
      WHERE id = ANY($1::text[]) OR heartbeat_at < now() - interval '1 hour'`,
    [dead],
  );
}

/** What a copy unit carries: the clone's CopyUnit and the source encoding both sessions use. */
export interface CopyUnitPayload {
  readonly encoding: string;
  readonly unit: unknown;
}

/**
 * Publishes the copy units of `database` under `snapshot` (the coordinator, under its migration
 * lease). Units of an earlier snapshot must have been canceled first (cancelCopyUnits).
 */
export async function publishCopyUnits(
  db: Queryable,
  fence: LeaseFence,
  database: string,
  snapshot: string,
  payloads: readonly CopyUnitPayload[],
): Promise<void> {
  await fencedWrite(
    db,
    fence,
    `INSERT INTO pgmigrate.work_units (migration, database, kind, snapshot, unit, seq)
     SELECT $1, $3, 'copy', $4, u.unit, u.seq::int - 1
       FROM unnest($5::jsonb[]) WITH ORDINALITY AS u(unit, seq)
      WHERE ${fencedBy(2)}`,
    [fence.migration, fence.owner, database, snapshot, payloads.map((p) => JSON.stringify(p))],
  );
}

/** A backend that ran a unit's copy on the target server. */
export interface UnitBackend {
  readonly pid: number;
  readonly backendStart: Date;
}

/**
 * Cancels the unfinished units of `migration` (one database, or all: copies, and the snapshot
 * and stream records) and returns the copies' target backends, which the caller ends
 * (endBackends): a runtime still copying one finds its unit canceled at its commit and rolls
 * back.
 */
export async function cancelCopyUnits(
  db: Queryable,
  migration: string,
  database?: string,
): Promise<UnitBackend[]> {
  const { rows } = await db.query<{ pid: number | null; start: Date | null }>(
    `UPDATE pgmigrate.work_units SET state = 'canceled', finished_at = now()
      WHERE migration = $1 AND ($2::text IS NULL OR database = $2)
        AND state IN ('pending', 'running')
      RETURNING target_pid AS pid, target_backend_start AS start`,
    [migration, database ?? null],
  );
  return rows
    .filter((r) => r.pid !== null && r.start !== null)
    .map((r) => ({ pid: r.pid as number, backendStart: r.start as Date }));
}

/**
 * Ends `backends` on the server `db` is connected to (the target server: the control store lives
 * there) and waits until they are gone, so their transactions are rolled back. The same role may
 * end its own sessions; a backend whose pid was reused (another start time) is left alone.
 */
export async function endBackends(
  db: Queryable,
  backends: readonly UnitBackend[],
  timeoutMs = 30_000,
): Promise<void> {
  if (backends.length === 0) return;
  const pids = backends.map((b) => b.pid);
  const starts = backends.map((b) => b.backendStart.toISOString());
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await db.query<{ pid: number }>(
      `SELECT a.pid, pg_terminate_backend(a.pid) FROM pg_stat_activity a
         JOIN unnest($1::int[], $2::timestamptz[]) AS b(pid, start)
           ON a.pid = b.pid
          -- Recorded through a JavaScript Date: milliseconds.
          AND date_trunc('milliseconds', a.backend_start) = date_trunc('milliseconds', b.start)`,
      [pids, starts],
    );
    if (rows.length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(
        `target backend(s) ${rows.map((r) => r.pid).join(", ")} of an earlier copy did not end`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A copy unit claimed by this runtime. */
export interface ClaimedUnit {
  readonly id: string;
  readonly migration: string;
  readonly database: string;
  readonly snapshot: string;
  readonly payload: CopyUnitPayload;
  readonly claims: number;
  /** The previous owner's target backend and transaction, when it was claimed before. */
  readonly previous?: { backend?: UnitBackend; xid?: string; rows: number; bytes: number };
}

/**
 * Claims the oldest claimable copy unit: pending, or running under a runtime that stopped
 * heartbeating (or was forgotten as dead). Only units of pool migrations (or of `migration`, for
 * a named runtime), and at most the migration's `parallelism.tables` units per runtime.
 */
export async function claimCopyUnit(
  db: Queryable,
  runtime: RuntimeIdentity,
  skip: readonly string[] = [],
): Promise<ClaimedUnit | undefined> {
  const { rows } = await db.query<{
    id: string;
    migration: string;
    database: string;
    snapshot: string;
    unit: CopyUnitPayload;
    claims: number;
    old_pid: number | null;
    old_start: Date | null;
    old_xid: string | null;
    rows: string;
    bytes: string;
    was_running: boolean;
  }>(
    `WITH candidate AS (
       SELECT u.id, u.state = 'running' AS was_running, u.target_pid AS old_pid,
              u.target_backend_start AS old_start, u.target_xid AS old_xid
         FROM pgmigrate.work_units u
         JOIN pgmigrate.migrations m ON m.name = u.migration AND m.ended_on IS NULL
        WHERE u.kind = 'copy'
          AND (CASE WHEN $2::text IS NULL THEN m.runtime_kind = 'pool' ELSE u.migration = $2 END)
          AND u.migration <> ALL($4::text[])
          AND (u.state = 'pending'
               OR (u.state = 'running' AND u.owner IS DISTINCT FROM $1 AND NOT EXISTS (
                     SELECT FROM pgmigrate.runtimes r WHERE r.id = u.owner
                        AND r.heartbeat_at > now() - make_interval(secs => $3))))
          AND (SELECT count(*) FROM pgmigrate.work_units mine
                WHERE mine.migration = u.migration AND mine.owner = $1
                  AND mine.state = 'running' AND mine.kind = 'copy')
              < greatest(1, coalesce((m.spec -> 'parallelism' ->> 'tables')::int, 1))
        ORDER BY u.id
        LIMIT 1
        FOR UPDATE OF u SKIP LOCKED)
     UPDATE pgmigrate.work_units w
        SET state = 'running', owner = $1, claims = w.claims + 1, started_at = now(),
            target_pid = NULL, target_backend_start = NULL, target_xid = NULL,
            history = w.history || $1::text
       FROM candidate c
      WHERE w.id = c.id
      RETURNING w.id::text, w.migration, w.database, w.snapshot, w.unit, w.claims,
                c.old_pid, c.old_start, c.old_xid::text, w.rows::text, w.bytes::text, c.was_running`,
    [runtime.id, runtime.migration ?? null, RUNTIME_EXPIRY_SECONDS, skip],
  );
  const r = rows[0];
  if (!r) return undefined;
  const previous = r.was_running
    ? {
        backend:
          r.old_pid !== null && r.old_start !== null
            ? { pid: r.old_pid, backendStart: r.old_start }
            : undefined,
        xid: r.old_xid ?? undefined,
        rows: Number(r.rows),
        bytes: Number(r.bytes),
      }
    : undefined;
  return {
    id: r.id,
    migration: r.migration,
    database: r.database,
    snapshot: r.snapshot,
    payload: r.unit,
    claims: r.claims,
    previous,
  };
}

/**
 * Writes to one claimed unit, each applied only while this runtime still owns it and it is
 * running: false when it was claimed by another runtime or canceled meanwhile.
 */
export class OwnedUnit {
  constructor(
    private readonly db: Queryable,
    readonly id: string,
    readonly owner: string,
  ) {}

  private async set(assignments: string, values: unknown[] = []): Promise<boolean> {
    const { rowCount } = await this.db.query(
      `UPDATE pgmigrate.work_units SET ${assignments}
        WHERE id = $1 AND owner = $2 AND state = 'running'`,
      [this.id, this.owner, ...values],
    );
    return rowCount === 1;
  }

  /** The target backend copying it (ended by whoever claims the unit again). */
  backend(backend: UnitBackend): Promise<boolean> {
    return this.set("target_pid = $3, target_backend_start = $4", [
      backend.pid,
      backend.backendStart,
    ]);
  }

  /** Rows and bytes so far. */
  progress(rows: number, bytes: number): Promise<boolean> {
    return this.set("rows = $3, bytes = $4", [rows, bytes]);
  }

  /**
   * The target transaction about to commit the unit; false: roll it back. From now on whoever
   * claims the unit again asks the server whether that transaction committed.
   */
  aboutToCommit(xid: string, rows: number, bytes: number): Promise<boolean> {
    return this.set("target_xid = $3::bigint, rows = $4, bytes = $5", [xid, rows, bytes]);
  }

  finish(rows: number, bytes: number): Promise<boolean> {
    return this.set("state = 'done', rows = $3, bytes = $4, finished_at = now()", [rows, bytes]);
  }

  /** Back to the queue (this runtime cannot run it; another may): this claim does not count. */
  release(): Promise<boolean> {
    return this.set(
      "state = 'pending', owner = NULL, target_pid = NULL, target_backend_start = NULL, claims = claims - 1",
    );
  }

  fail(error: string, code: string | undefined): Promise<boolean> {
    return this.set("state = 'failed', error = $3, error_code = $4, finished_at = now()", [
      error,
      code ?? null,
    ]);
  }
}

/** A copy unit as its coordinator follows it. */
export interface CopyUnitStatus {
  readonly seq: number;
  readonly state: "pending" | "running" | "done" | "failed" | "canceled";
  readonly rows: number;
  readonly bytes: number;
  readonly error: string | null;
  readonly errorCode: string | null;
}

/**
 * The copy units of `database` under `snapshot` that changed after `sinceVersion` (0: all), and
 * the newest version seen (pass it next time).
 */
export async function changedCopyUnits(
  db: Queryable,
  migration: string,
  database: string,
  snapshot: string,
  sinceVersion: string,
): Promise<{ units: CopyUnitStatus[]; version: string }> {
  const { rows } = await db.query<{
    seq: number;
    state: CopyUnitStatus["state"];
    rows: string;
    bytes: string;
    error: string | null;
    error_code: string | null;
    version: string;
  }>(
    `SELECT seq, state, rows::text, bytes::text, error, error_code, version::text
       FROM pgmigrate.work_units
      WHERE migration = $1 AND database = $2 AND version > $4::bigint
        AND kind = 'copy' AND snapshot = $3
      ORDER BY version`,
    [migration, database, snapshot, sinceVersion],
  );
  return {
    units: rows.map((r) => ({
      seq: r.seq,
      state: r.state,
      rows: Number(r.rows),
      bytes: Number(r.bytes),
      error: r.error,
      errorCode: r.error_code,
    })),
    version: rows.at(-1)?.version ?? sinceVersion,
  };
}

/**
 * The coordinator's own units (kind snapshot or stream) of one database: who holds the snapshot
 * or applies the stream, for `show`. Running until `state` says otherwise.
 */
export async function setHeldUnit(
  db: Queryable,
  fence: LeaseFence,
  database: string,
  kind: "snapshot" | "stream",
  runtimeId: string,
  state: "running" | "done" | "canceled",
  snapshot?: string,
): Promise<void> {
  await db.query(
    `DELETE FROM pgmigrate.work_units
      WHERE migration = $1 AND database = $3 AND kind = $4 AND ${fencedBy(2)}`,
    [fence.migration, fence.owner, database, kind],
  );
  await fencedWrite(
    db,
    fence,
    `INSERT INTO pgmigrate.work_units
       (migration, database, kind, snapshot, state, owner, claims, history, started_at, finished_at)
     SELECT $1, $3, $4, $6, $5, $7, 1, ARRAY[$7], now(), CASE WHEN $5 = 'running' THEN NULL ELSE now() END
      WHERE ${fencedBy(2)}`,
    [fence.migration, fence.owner, database, kind, state, snapshot ?? null, runtimeId],
  );
}

/**
 * The live runtimes serving an active `migration`: its coordinator (the lease holder), runtimes
 * named for it, pool runtimes (a pool migration) and any runtime holding one of its units; with
 * the units each runs now and how many copy units each completed. Empty once it ended.
 */
export async function runtimesOf(db: Queryable, migration: string): Promise<RuntimeOutput[]> {
  const { rows } = await db.query<RuntimeOutput>(
    `SELECT r.host, r.pid,
            to_char(r.heartbeat_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "lastHeartbeat",
            coalesce(m.lease_owner LIKE r.host || ':' || r.pid || ':%', false) AS coordinator,
            coalesce((SELECT array_agg(u.database || ': ' || coalesce(
                               (u.unit -> 'unit' -> 'table' ->> 'schema') || '.' ||
                               (u.unit -> 'unit' -> 'table' ->> 'name') ||
                               coalesce(' range ' || ((u.unit -> 'unit' -> 'range' ->> 'index')::int + 1) ||
                                        '/' || (u.unit -> 'unit' -> 'range' ->> 'count'), ''),
                               u.kind) ORDER BY u.database, u.kind, u.seq)
                        FROM pgmigrate.work_units u
                       WHERE u.migration = m.name AND u.owner = r.id AND u.state = 'running'),
                     '{}') AS units,
            (SELECT count(*) FROM pgmigrate.work_units u
              WHERE u.migration = m.name AND u.owner = r.id AND u.state = 'done'
                AND u.kind = 'copy')::int AS "unitsDone"
       FROM pgmigrate.runtimes r
       JOIN pgmigrate.migrations m ON m.name = $1 AND m.ended_on IS NULL
      WHERE r.heartbeat_at > now() - make_interval(secs => $2)
        AND (r.migration = m.name
             OR (r.migration IS NULL AND m.runtime_kind = 'pool')
             OR m.lease_owner LIKE r.host || ':' || r.pid || ':%'
             OR EXISTS (SELECT FROM pgmigrate.work_units u
                         WHERE u.migration = m.name AND u.owner = r.id AND u.state = 'running'))
      ORDER BY 4 DESC, r.started_at, r.id`,
    [migration, RUNTIME_EXPIRY_SECONDS],
  );
  return rows;
}

/** One unit of a migration and who runs (or ran) it, for `show`. */
export interface UnitView {
  readonly database: string;
  readonly kind: "snapshot" | "copy" | "stream";
  readonly what: string;
  readonly state: string;
  readonly owner: string | null;
  readonly claims: number;
  readonly rows: number;
}

/** The units of the newest snapshot of each database (older ones were canceled). */
export async function unitsOf(db: Queryable, migration: string): Promise<UnitView[]> {
  const { rows } = await db.query<{
    database: string;
    kind: UnitView["kind"];
    unit: {
      unit?: { table?: { schema: string; name: string }; range?: { index: number; count: number } };
    } | null;
    state: string;
    owner: string | null;
    claims: number;
    rows: string;
  }>(
    `SELECT u.database, u.kind, u.unit, u.state, u.owner, u.claims, u.rows::text
       FROM pgmigrate.work_units u
      WHERE u.migration = $1
        AND (u.kind <> 'copy' OR u.snapshot = (
              SELECT x.snapshot FROM pgmigrate.work_units x
               WHERE x.migration = u.migration AND x.database = u.database AND x.kind = 'copy'
               ORDER BY x.id DESC LIMIT 1))
      ORDER BY u.database, CASE u.kind WHEN 'snapshot' THEN 0 WHEN 'copy' THEN 1 ELSE 2 END, u.seq`,
    [migration],
  );
  return rows.map((r) => {
    const table = r.unit?.unit?.table;
    const range = r.unit?.unit?.range;
    const what = table
      ? `${table.schema}.${table.name}${range ? ` range ${range.index + 1}/${range.count}` : ""}`
      : r.kind;
    return {
      database: r.database,
      kind: r.kind,
      what,
      state: r.state,
      owner: r.owner,
      claims: r.claims,
      rows: Number(r.rows),
    };
  });
}
