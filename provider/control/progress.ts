// Per-database and per-table progress rows: what dbDetails is built from, and where the worker
// keeps its resume point (step, copy_completed, slot, consistent point).
import { copyPercent, etaSeconds, RATE_FRESH_SECONDS } from "../spec/progress";
import { TERMINAL_STATES } from "../spec/states";
import type { TableLoadState, TableRef, TableVerification } from "../spec/types";
import type { Queryable } from "./db";
import { confirmLease, fencedBy, fencedWrite, type LeaseFence } from "./lease";

/** Where a database is in its pipeline; the worker resumes from here after a restart. */
export type DatabaseStep =
  | "pending"
  | "preparing"
  | "copying"
  | "copied"
  | "streaming"
  /** Applied up to the cutover LSN and the stream stopped: the slot is never needed again. */
  | "drained"
  | "completed";

export interface DatabaseRow {
  readonly name: string;
  readonly migrationState: string;
  readonly step: DatabaseStep;
  readonly copyCompleted: boolean;
  readonly slot: string | null;
  readonly consistentPoint: string | null;
  readonly cutoverLsn: string | null;
  /** Commit LSN of the last source transaction applied on the target. */
  readonly appliedLsn: string | null;
  /** Its commit time on the source. */
  readonly appliedCommitTime: Date | null;
  readonly inserts: number;
  readonly updates: number;
  readonly deletes: number;
  readonly truncates: number;
  readonly appliedChanges: number;
  readonly incomingChanges: number;
  readonly latencySeconds: number | null;
  readonly lagBytes: number | null;
  readonly verification: TableVerification[] | null;
  readonly message: string;
  readonly startedOn: Date | null;
  readonly endedOn: Date | null;
  /** Table counts by load state. */
  readonly queued: number;
  readonly loading: number;
  readonly completed: number;
  readonly errored: number;
  /** COPY bytes and rows of its tables so far (completed and loading). */
  readonly copiedBytes: number;
  readonly copiedRows: number;
  /** Estimated COPY bytes of all its tables (the actual size of completed ones). */
  readonly totalBytes: number;
  /** Sum of the fresh rates of its loading tables; null when none is fresh. */
  readonly bytesPerSecond: number | null;
}

export async function insertDatabases(
  db: Queryable,
  migration: string,
  databases: readonly string[],
): Promise<void> {
  await db.query(
    `INSERT INTO pgmigrate.databases (migration, name, position)
     SELECT $1, d.name, d.position::int
       FROM unnest($2::text[]) WITH ORDINALITY AS d(name, position)
     ON CONFLICT DO NOTHING`,
    [migration, databases],
  );
}

/** The databases of migration `$1` in the order the user listed them, with table counts. */
export const DATABASE_ROWS_SQL = `SELECT d.name, d.position, d.migration_state AS "migrationState", d.step,
            d.copy_completed AS "copyCompleted", d.slot, d.consistent_point AS "consistentPoint",
            d.cutover_lsn AS "cutoverLsn", d.applied_lsn AS "appliedLsn",
            d.applied_commit_time AS "appliedCommitTime",
            d.inserts::float8 AS inserts, d.updates::float8 AS updates,
            d.deletes::float8 AS deletes, d.truncates::float8 AS truncates,
            d.applied_changes::float8 AS "appliedChanges",
            d.incoming_changes::float8 AS "incomingChanges",
            d.latency_seconds AS "latencySeconds", d.lag_bytes::float8 AS "lagBytes",
            d.verification, d.message, d.started_on AS "startedOn", d.ended_on AS "endedOn",
            count(t.*) FILTER (WHERE t.state = 'queued')::int AS queued,
            count(t.*) FILTER (WHERE t.state = 'loading')::int AS loading,
            count(t.*) FILTER (WHERE t.state = 'completed')::int AS completed,
            count(t.*) FILTER (WHERE t.state = 'errored')::int AS errored,
            coalesce(sum(t.bytes), 0)::float8 AS "copiedBytes",
            coalesce(sum(t.rows), 0)::float8 AS "copiedRows",
            coalesce(sum(CASE WHEN t.state = 'completed' THEN coalesce(t.bytes, t.estimated_bytes)
                              ELSE greatest(t.estimated_bytes, coalesce(t.bytes, 0)) END), 0)::float8
              AS "totalBytes",
            sum(t.bytes_per_second) FILTER (WHERE t.state = 'loading'
              AND t.progress_at > now() - make_interval(secs => ${RATE_FRESH_SECONDS})) AS "bytesPerSecond"
       FROM pgmigrate.databases d
       LEFT JOIN pgmigrate.tables t ON t.migration = d.migration AND t.database = d.name
      WHERE d.migration = $1
      GROUP BY d.migration, d.name
      ORDER BY d.position`;

/** The databases of a migration in the order the user listed them, with table counts. */
export async function databaseRows(db: Queryable, migration: string): Promise<DatabaseRow[]> {
  const { rows } = await db.query<DatabaseRow>(DATABASE_ROWS_SQL, [migration]);
  return rows;
}

/** Moves a database to a pipeline step with its user-visible state and message. */
export async function setDatabaseStep(
  db: Queryable,
  fence: LeaseFence,
  database: string,
  step: DatabaseStep,
  migrationState: string,
  message: string,
): Promise<void> {
  await fencedWrite(
    db,
    fence,
    `UPDATE pgmigrate.databases
        SET step = $3, migration_state = $4, message = $5, updated_at = now(),
            started_on = coalesce(started_on, now()),
            ended_on = CASE WHEN $4 = ANY ($6::text[]) THEN now() END
      WHERE migration = $1 AND name = $2 AND ${fencedBy(7)}`,
    [fence.migration, database, step, migrationState, message, TERMINAL_STATES, fence.owner],
  );
}

/** Forgets a half-done copy: the database starts again from a new slot and an empty target. */
export async function resetDatabase(
  db: Queryable,
  fence: LeaseFence,
  database: string,
): Promise<void> {
  await fencedWrite(
    db,
    fence,
    `UPDATE pgmigrate.databases
        SET step = 'pending', copy_completed = false, slot = NULL, consistent_point = NULL,
            cutover_lsn = NULL, applied_lsn = NULL, applied_commit_time = NULL, inserts = 0, updates = 0, deletes = 0,
            truncates = 0, applied_changes = 0, incoming_changes = 0, latency_seconds = NULL,
            lag_bytes = NULL, verification = NULL, updated_at = now()
      WHERE migration = $1 AND name = $2 AND ${fencedBy(3)}`,
    [fence.migration, database, fence.owner],
  );
}

/** The slot and the LSN where the copy's snapshot ends and the change stream begins. */
export async function setSlot(
  db: Queryable,
  fence: LeaseFence,
  database: string,
  slot: string,
  consistentPoint: string,
): Promise<void> {
  await fencedWrite(
    db,
    fence,
    `UPDATE pgmigrate.databases SET slot = $3, consistent_point = $4, updated_at = now()
      WHERE migration = $1 AND name = $2 AND ${fencedBy(5)}`,
    [fence.migration, database, slot, consistentPoint, fence.owner],
  );
}

export async function markCopyCompleted(
  db: Queryable,
  fence: LeaseFence,
  database: string,
): Promise<void> {
  await fencedWrite(
    db,
    fence,
    `UPDATE pgmigrate.databases SET copy_completed = true, step = 'copied', updated_at = now()
      WHERE migration = $1 AND name = $2 AND ${fencedBy(3)}`,
    [fence.migration, database, fence.owner],
  );
}

/** Replication counters and latency, written every few seconds while streaming. */
export interface StreamStats {
  readonly inserts: number;
  readonly updates: number;
  readonly deletes: number;
  readonly truncates: number;
  readonly appliedChanges: number;
  readonly incomingChanges: number;
  readonly appliedLsn: string | null;
  /** Source commit time (ms since the epoch) of the transaction at appliedLsn, when known. */
  readonly appliedCommitTime: number | null;
  readonly latencySeconds: number | null;
  readonly lagBytes: number | null;
}

export async function writeStreamStats(
  db: Queryable,
  fence: LeaseFence,
  database: string,
  stats: StreamStats,
): Promise<void> {
  await fencedWrite(
    db,
    fence,
    `UPDATE pgmigrate.databases
        SET inserts = $3, updates = $4, deletes = $5, truncates = $6, applied_changes = $7,
            incoming_changes = $8, applied_lsn = $9, latency_seconds = $10, lag_bytes = $11,
            applied_commit_time = coalesce(to_timestamp($13::float8 / 1000), applied_commit_time),
            updated_at = now()
      WHERE migration = $1 AND name = $2 AND ${fencedBy(12)}`,
    [
      fence.migration,
      database,
      stats.inserts,
      stats.updates,
      stats.deletes,
      stats.truncates,
      stats.appliedChanges,
      stats.incomingChanges,
      stats.appliedLsn,
      stats.latencySeconds,
      stats.lagBytes,
      fence.owner,
      stats.appliedCommitTime,
    ],
  );
}

/**
 * Records the cutover LSN of `databases` in one statement, unless one is recorded already, and
 * returns the recorded one: a resumed cutover stops where the first attempt decided to, and no
 * database of it is ever without the position while another has it.
 */
export async function setCutoverLsn(
  db: Queryable,
  fence: LeaseFence,
  databases: readonly string[],
  cutoverLsn: string,
): Promise<string> {
  const { rows } = await db.query<{ lsn: string }>(
    `WITH recorded AS (
       SELECT cutover_lsn AS lsn FROM pgmigrate.databases
        WHERE migration = $1 AND name = ANY ($2::text[]) AND cutover_lsn IS NOT NULL
        ORDER BY cutover_lsn::pg_lsn LIMIT 1)
     UPDATE pgmigrate.databases
        SET cutover_lsn = coalesce((SELECT lsn FROM recorded), $3), updated_at = now()
      WHERE migration = $1 AND name = ANY ($2::text[]) AND ${fencedBy(4)}
     RETURNING cutover_lsn AS lsn`,
    [fence.migration, databases, cutoverLsn, fence.owner],
  );
  if (rows.length === 0) {
    await confirmLease(db, fence);
    throw new Error(`no progress rows for databases ${databases.join(", ")}`);
  }
  return rows[0].lsn;
}

/**
 * Records that `database` applied everything up to its cutover LSN and its stream stopped, and
 * marks the cutover as past the point where a cancel could roll it back — unless a cancel was
 * requested first: then nothing is written and false is returned (the cancel wins). `applied`:
 * the stream's last applied commit, recorded with it.
 */
export async function markDrained(
  db: Queryable,
  fence: LeaseFence,
  database: string,
  message: string,
  applied: { readonly lsn: string | null; readonly commitTime: number | null },
): Promise<boolean> {
  // One statement: the migrations row's lock orders it against a concurrent cancel request.
  const rowCount = await fencedWrite(
    db,
    fence,
    `WITH committed AS (
       UPDATE pgmigrate.migrations
          SET cutover_drained_at = coalesce(cutover_drained_at, now()), updated_at = now()
        WHERE name = $1 AND lease_owner = $3 AND requested_action IS DISTINCT FROM 'cancel'
       RETURNING 1)
     UPDATE pgmigrate.databases
        SET step = 'drained', migration_state = 'InProgress', message = $4, updated_at = now(),
            applied_lsn = coalesce($5, applied_lsn),
            applied_commit_time = coalesce(to_timestamp($6::float8 / 1000), applied_commit_time)
      WHERE migration = $1 AND name = $2 AND EXISTS (SELECT FROM committed)`,
    [fence.migration, database, fence.owner, message, applied.lsn, applied.commitTime],
  );
  return rowCount === 1;
}

export async function setDatabaseVerification(
  db: Queryable,
  fence: LeaseFence,
  database: string,
  tables: readonly TableVerification[],
): Promise<void> {
  await fencedWrite(
    db,
    fence,
    `UPDATE pgmigrate.databases SET verification = $3, updated_at = now()
      WHERE migration = $1 AND name = $2 AND ${fencedBy(4)}`,
    [fence.migration, database, JSON.stringify(tables), fence.owner],
  );
}

/** Replaces a database's table list with `tables`, all queued (a restarted copy starts over). */
export async function queueTables(
  db: Queryable,
  fence: LeaseFence,
  database: string,
  tables: readonly (TableRef & {
    readonly estimatedBytes: number;
    readonly estimatedRows?: number;
  })[],
): Promise<void> {
  // Both the delete and the insert are fenced: data-modifying CTEs run whatever the outer query returns.
  await fencedWrite(
    db,
    fence,
    `WITH gone AS (
       DELETE FROM pgmigrate.tables
        WHERE migration = $1 AND database = $2 AND ${fencedBy(6)}
          AND (schema_name, table_name) NOT IN (SELECT * FROM unnest($3::text[], $4::text[])))
     INSERT INTO pgmigrate.tables
       (migration, database, schema_name, table_name, state, estimated_bytes, estimated_rows)
     SELECT $1, $2, t.schema_name, t.table_name, 'queued', t.estimated_bytes, t.estimated_rows
       FROM unnest($3::text[], $4::text[], $5::bigint[], $7::bigint[])
            AS t(schema_name, table_name, estimated_bytes, estimated_rows)
      WHERE ${fencedBy(6)}
     ON CONFLICT (migration, database, schema_name, table_name)
       DO UPDATE SET state = 'queued', rows = NULL, bytes = NULL, error = NULL,
                     started_at = NULL, ended_at = NULL, estimated_bytes = excluded.estimated_bytes,
                     estimated_rows = excluded.estimated_rows, bytes_per_second = NULL,
                     progress_at = NULL`,
    [
      fence.migration,
      database,
      tables.map((t) => t.schema),
      tables.map((t) => t.name),
      tables.map((t) => Math.round(t.estimatedBytes)),
      fence.owner,
      tables.map((t) => (t.estimatedRows === undefined ? null : Math.round(t.estimatedRows))),
    ],
  );
}

/** What a table-state report carries besides the state. */
export interface TableStateDetail {
  readonly rows?: number;
  readonly bytes?: number;
  readonly error?: string;
  /** The recent copy rate (loading reports only). */
  readonly bytesPerSecond?: number | null;
}

export async function setTableState(
  db: Queryable,
  fence: LeaseFence,
  database: string,
  table: TableRef,
  state: TableLoadState,
  detail: TableStateDetail,
): Promise<void> {
  // A rate belongs to a loading table only: any other state clears it.
  await fencedWrite(
    db,
    fence,
    `INSERT INTO pgmigrate.tables
       (migration, database, schema_name, table_name, state, rows, bytes, error, started_at, ended_at,
        bytes_per_second, progress_at)
     SELECT $1, $2, $3, $4, $5, $6, $7, $8,
            CASE WHEN $5 <> 'queued' THEN now() END,
            CASE WHEN $5 IN ('completed', 'errored') THEN now() END,
            CASE WHEN $5 = 'loading' THEN $10::float8 END,
            CASE WHEN $5 = 'loading' AND $7::bigint IS NOT NULL THEN now() END
      WHERE ${fencedBy(9)}
     ON CONFLICT (migration, database, schema_name, table_name) DO UPDATE
        SET state = excluded.state,
            rows = coalesce(excluded.rows, pgmigrate.tables.rows),
            bytes = coalesce(excluded.bytes, pgmigrate.tables.bytes),
            error = coalesce(excluded.error, pgmigrate.tables.error),
            started_at = coalesce(pgmigrate.tables.started_at, excluded.started_at),
            ended_at = excluded.ended_at,
            bytes_per_second = CASE WHEN excluded.state = 'loading'
              THEN coalesce(excluded.bytes_per_second, pgmigrate.tables.bytes_per_second) END,
            progress_at = CASE WHEN excluded.state = 'loading'
              THEN coalesce(excluded.progress_at, pgmigrate.tables.progress_at) END`,
    [
      fence.migration,
      database,
      table.schema,
      table.name,
      state,
      detail.rows ?? null,
      detail.bytes ?? null,
      detail.error ?? null,
      fence.owner,
      detail.bytesPerSecond ?? null,
    ],
  );
}

/** Per-table progress of one database (for `watch`'s progress bars). */
export interface TableProgressRow {
  readonly schema: string;
  readonly name: string;
  readonly state: TableLoadState;
  /** Estimated COPY text bytes of the table (what `bytes` counts towards). */
  readonly estimatedBytes: number;
  readonly estimatedRows: number | null;
  readonly rows: number | null;
  readonly bytes: number | null;
  readonly error: string | null;
  /** 0..100; 100 only once the table's copy committed (spec/progress.ts). */
  readonly percent: number;
  /** Recent rate while loading (null when not loading or no report for a while). */
  readonly bytesPerSecond: number | null;
  readonly etaSeconds: number | null;
}

export async function tableProgress(
  db: Queryable,
  migration: string,
  database: string,
): Promise<TableProgressRow[]> {
  const { rows } = await db.query<Omit<TableProgressRow, "percent" | "etaSeconds">>(
    `SELECT schema_name AS schema, table_name AS name, state,
            estimated_bytes::float8 AS "estimatedBytes", estimated_rows::float8 AS "estimatedRows",
            rows::float8 AS rows, bytes::float8 AS bytes, error,
            CASE WHEN state = 'loading'
                  AND progress_at > now() - make_interval(secs => ${RATE_FRESH_SECONDS})
                 THEN bytes_per_second END AS "bytesPerSecond"
       FROM pgmigrate.tables WHERE migration = $1 AND database = $2
      ORDER BY estimated_bytes DESC, schema_name, table_name`,
    [migration, database],
  );
  return rows.map((t) => ({
    ...t,
    percent: copyPercent(t.state, t.bytes, t.estimatedBytes),
    etaSeconds: etaSeconds(t.bytes ?? 0, t.estimatedBytes, t.bytesPerSecond),
  }));
}
