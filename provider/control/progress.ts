// Per-database and per-table progress rows: what dbDetails is built from, and where the worker
// keeps its resume point (step, copy_completed, slot, consistent point).
import type { TableLoadState, TableRef, TableVerification } from "../spec/types";
import type { Queryable } from "./db";

/** Where a database is in its pipeline; the worker resumes from here after a restart. */
export type DatabaseStep =
  "pending" | "preparing" | "copying" | "copied" | "streaming" | "completed";

export interface DatabaseRow {
  readonly name: string;
  readonly migrationState: string;
  readonly step: DatabaseStep;
  readonly copyCompleted: boolean;
  readonly slot: string | null;
  readonly consistentPoint: string | null;
  readonly cutoverLsn: string | null;
  readonly appliedLsn: string | null;
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

/** The databases of a migration in the order the user listed them, with table counts. */
export async function databaseRows(db: Queryable, migration: string): Promise<DatabaseRow[]> {
  const { rows } = await db.query<DatabaseRow>(
    `SELECT d.name, d.migration_state AS "migrationState", d.step,
            d.copy_completed AS "copyCompleted", d.slot, d.consistent_point AS "consistentPoint",
            d.cutover_lsn AS "cutoverLsn", d.applied_lsn AS "appliedLsn",
            d.inserts::float8 AS inserts, d.updates::float8 AS updates,
            d.deletes::float8 AS deletes, d.truncates::float8 AS truncates,
            d.applied_changes::float8 AS "appliedChanges",
            d.incoming_changes::float8 AS "incomingChanges",
            d.latency_seconds AS "latencySeconds", d.lag_bytes::float8 AS "lagBytes",
            d.verification, d.message, d.started_on AS "startedOn", d.ended_on AS "endedOn",
            count(t.*) FILTER (WHERE t.state = 'queued')::int AS queued,
            count(t.*) FILTER (WHERE t.state = 'loading')::int AS loading,
            count(t.*) FILTER (WHERE t.state = 'completed')::int AS completed,
            count(t.*) FILTER (WHERE t.state = 'errored')::int AS errored
       FROM pgmigrate.databases d
       LEFT JOIN pgmigrate.tables t ON t.migration = d.migration AND t.database = d.name
      WHERE d.migration = $1
      GROUP BY d.migration, d.name
      ORDER BY d.position`,
    [migration],
  );
  return rows;
}

/** Moves a database to a pipeline step with its user-visible state and message. */
export async function setDatabaseStep(
  db: Queryable,
  migration: string,
  database: string,
  step: DatabaseStep,
  migrationState: string,
  message: string,
): Promise<void> {
  await db.query(
    `UPDATE pgmigrate.databases
        SET step = $3, migration_state = $4, message = $5, updated_at = now(),
            started_on = coalesce(started_on, now()),
            ended_on = CASE WHEN $4 IN ('Succeeded', 'Failed', 'Canceled', 'ValidationFailed') THEN now() END
      WHERE migration = $1 AND name = $2`,
    [migration, database, step, migrationState, message],
  );
}

/** Forgets a half-done copy: the database starts again from a new slot and an empty target. */
export async function resetDatabase(
  db: Queryable,
  migration: string,
  database: string,
): Promise<void> {
  await db.query(
    `UPDATE pgmigrate.databases
        SET step = 'pending', copy_completed = false, slot = NULL, consistent_point = NULL,
            cutover_lsn = NULL, applied_lsn = NULL, inserts = 0, updates = 0, deletes = 0,
            truncates = 0, applied_changes = 0, incoming_changes = 0, latency_seconds = NULL,
            lag_bytes = NULL, verification = NULL, updated_at = now()
      WHERE migration = $1 AND name = $2`,
    [migration, database],
  );
}

/** The slot and the LSN where the copy's snapshot ends and the change stream begins. */
export async function setSlot(
  db: Queryable,
  migration: string,
  database: string,
  slot: string,
  consistentPoint: string,
): Promise<void> {
  await db.query(
    `UPDATE pgmigrate.databases SET slot = $3, consistent_point = $4, updated_at = now()
      WHERE migration = $1 AND name = $2`,
    [migration, database, slot, consistentPoint],
  );
}

export async function markCopyCompleted(
  db: Queryable,
  migration: string,
  database: string,
): Promise<void> {
  await db.query(
    `UPDATE pgmigrate.databases SET copy_completed = true, step = 'copied', updated_at = now()
      WHERE migration = $1 AND name = $2`,
    [migration, database],
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
  readonly latencySeconds: number | null;
  readonly lagBytes: number | null;
}

export async function writeStreamStats(
  db: Queryable,
  migration: string,
  database: string,
  stats: StreamStats,
): Promise<void> {
  await db.query(
    `UPDATE pgmigrate.databases
        SET inserts = $3, updates = $4, deletes = $5, truncates = $6, applied_changes = $7,
            incoming_changes = $8, applied_lsn = $9, latency_seconds = $10, lag_bytes = $11,
            updated_at = now()
      WHERE migration = $1 AND name = $2`,
    [
      migration,
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
    ],
  );
}

export async function setCutoverLsn(
  db: Queryable,
  migration: string,
  database: string,
  cutoverLsn: string,
): Promise<void> {
  await db.query(
    `UPDATE pgmigrate.databases SET cutover_lsn = $3, updated_at = now()
      WHERE migration = $1 AND name = $2`,
    [migration, database, cutoverLsn],
  );
}

export async function setDatabaseVerification(
  db: Queryable,
  migration: string,
  database: string,
  tables: readonly TableVerification[],
): Promise<void> {
  await db.query(
    `UPDATE pgmigrate.databases SET verification = $3, updated_at = now()
      WHERE migration = $1 AND name = $2`,
    [migration, database, JSON.stringify(tables)],
  );
}

/** Replaces a database's table list with `tables`, all queued (a restarted copy starts over). */
export async function queueTables(
  db: Queryable,
  migration: string,
  database: string,
  tables: readonly (TableRef & { readonly estimatedBytes: number })[],
): Promise<void> {
  await db.query(
    `WITH gone AS (
       DELETE FROM pgmigrate.tables
        WHERE migration = $1 AND database = $2
          AND (schema_name, table_name) NOT IN (SELECT * FROM unnest($3::text[], $4::text[])))
     INSERT INTO pgmigrate.tables (migration, database, schema_name, table_name, state, estimated_bytes)
     SELECT $1, $2, t.schema_name, t.table_name, 'queued', t.estimated_bytes
       FROM unnest($3::text[], $4::text[], $5::bigint[]) AS t(schema_name, table_name, estimated_bytes)
     ON CONFLICT (migration, database, schema_name, table_name)
       DO UPDATE SET state = 'queued', rows = NULL, bytes = NULL, error = NULL,
                     started_at = NULL, ended_at = NULL, estimated_bytes = excluded.estimated_bytes`,
    [
      migration,
      database,
      tables.map((t) => t.schema),
      tables.map((t) => t.name),
      tables.map((t) => Math.round(t.estimatedBytes)),
    ],
  );
}

export async function setTableState(
  db: Queryable,
  migration: string,
  database: string,
  table: TableRef,
  state: TableLoadState,
  detail: { rows?: number; bytes?: number; error?: string },
): Promise<void> {
  await db.query(
    `INSERT INTO pgmigrate.tables
       (migration, database, schema_name, table_name, state, rows, bytes, error, started_at, ended_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
             CASE WHEN $5 <> 'queued' THEN now() END,
             CASE WHEN $5 IN ('completed', 'errored') THEN now() END)
     ON CONFLICT (migration, database, schema_name, table_name) DO UPDATE
        SET state = excluded.state,
            rows = coalesce(excluded.rows, pgmigrate.tables.rows),
            bytes = coalesce(excluded.bytes, pgmigrate.tables.bytes),
            error = coalesce(excluded.error, pgmigrate.tables.error),
            started_at = coalesce(pgmigrate.tables.started_at, excluded.started_at),
            ended_at = excluded.ended_at`,
    [
      migration,
      database,
      table.schema,
      table.name,
      state,
      detail.rows ?? null,
      detail.bytes ?? null,
      detail.error ?? null,
    ],
  );
}

/** Per-table progress of one database (for `watch`'s progress bars). */
export interface TableProgressRow {
  readonly schema: string;
  readonly name: string;
  readonly state: TableLoadState;
  readonly estimatedBytes: number;
  readonly rows: number | null;
  readonly bytes: number | null;
  readonly error: string | null;
}

export async function tableProgress(
  db: Queryable,
  migration: string,
  database: string,
): Promise<TableProgressRow[]> {
  const { rows } = await db.query<TableProgressRow>(
    `SELECT schema_name AS schema, table_name AS name, state,
            estimated_bytes::float8 AS "estimatedBytes", rows::float8 AS rows,
            bytes::float8 AS bytes, error
       FROM pgmigrate.tables WHERE migration = $1 AND database = $2
      ORDER BY estimated_bytes DESC, schema_name, table_name`,
    [migration, database],
  );
  return rows;
}
