// The migrations table: one row per migration (spec without secrets, state, requested action),
// each query in its own function next to the code that runs it.
import type {
  MigrationMode,
  MigrationOption,
  MigrationState,
  MigrationSubstate,
  RequestedAction,
  RuntimeOptions,
  ValidationReport,
  VerificationReport,
} from "../spec/types";
import type { publicSpec } from "../pg/redact";
import { isEnded } from "../spec/states";
import type { Queryable } from "./db";
import { fencedWrite, type LeaseFence } from "./lease";

/** The spec as stored: resolved, without passwords. */
export type StoredSpec = ReturnType<typeof publicSpec>;

/** A migrations row as the engine reads it. Ages are computed by the server (no clock skew). */
export interface MigrationRow {
  readonly name: string;
  readonly spec: StoredSpec;
  readonly specHash: string;
  readonly runtimeKind: RuntimeOptions["kind"];
  readonly runtimeLogDir: string | null;
  readonly mode: MigrationMode;
  readonly option: MigrationOption;
  readonly state: MigrationState;
  readonly substate: MigrationSubstate;
  readonly requestedAction: RequestedAction | null;
  readonly error: string | null;
  readonly createdDatabases: readonly string[];
  readonly validation: ValidationReport | null;
  readonly verification: VerificationReport | null;
  readonly createdAt: Date;
  /** Seconds since the migration was created. */
  readonly ageSeconds: number;
  readonly startedOn: Date | null;
  readonly endedOn: Date | null;
  readonly leaseOwner: string | null;
  /** Seconds since the last heartbeat; null when no worker ever held the lease. */
  readonly heartbeatAgeSeconds: number | null;
  readonly workerPid: number | null;
  readonly workerHost: string | null;
  readonly workerLog: string | null;
  /** Seconds since a spawner last started a worker. */
  readonly spawnAgeSeconds: number | null;
  /** Seconds since "no worker is running" was last reported. */
  readonly warnAgeSeconds: number | null;
  /** A database of the cutover applied everything up to the cutover LSN: cancel is refused. */
  readonly cutoverDrained: boolean;
  /** Worker crashes in a row at the same position, and the last one's error. */
  readonly crashCount: number;
  readonly crashError: string | null;
}

/** Selects MigrationRow columns from pgmigrate.migrations (callers add WHERE/ORDER BY). */
export const SELECT_ROW = `
  SELECT name, spec, spec_hash AS "specHash", runtime_kind AS "runtimeKind",
         runtime_log_dir AS "runtimeLogDir", mode, option, state, substate,
         requested_action AS "requestedAction", error, created_databases AS "createdDatabases",
         validation, verification, created_at AS "createdAt",
         extract(epoch FROM now() - created_at)::float8 AS "ageSeconds", started_on AS "startedOn",
         ended_on AS "endedOn", lease_owner AS "leaseOwner",
         extract(epoch FROM now() - heartbeat_at)::float8 AS "heartbeatAgeSeconds",
         worker_pid AS "workerPid", worker_host AS "workerHost", worker_log AS "workerLog",
         extract(epoch FROM now() - spawned_at)::float8 AS "spawnAgeSeconds",
         extract(epoch FROM now() - worker_warned_at)::float8 AS "warnAgeSeconds",
         cutover_drained_at IS NOT NULL AS "cutoverDrained", crash_count AS "crashCount",
         crash_error AS "crashError"
    FROM pgmigrate.migrations`;

/** Inserts a new migration; false when the name is taken. */
export async function insertMigration(
  db: Queryable,
  row: {
    name: string;
    spec: StoredSpec;
    specHash: string;
    mode: MigrationMode;
    option: MigrationOption;
    runtime: RuntimeOptions;
  },
): Promise<boolean> {
  const { rowCount } = await db.query(
    `INSERT INTO pgmigrate.migrations
       (name, spec, spec_hash, mode, option, runtime_kind, runtime_log_dir, state, substate,
        started_on)
     VALUES ($1, $2, $3, $4, $5, $6, $7, 'InProgress', 'PerformingPreRequisiteSteps', now())
     ON CONFLICT (name) DO NOTHING`,
    [
      row.name,
      JSON.stringify(row.spec),
      row.specHash,
      row.mode,
      row.option,
      row.runtime.kind,
      row.runtime.logDir ?? null,
    ],
  );
  return rowCount === 1;
}

/** The runtime stored with a migration. */
export function storedRuntime(row: MigrationRow): RuntimeOptions {
  return row.runtimeLogDir === null
    ? { kind: row.runtimeKind }
    : { kind: row.runtimeKind, logDir: row.runtimeLogDir };
}

/** Records a new runtime for an active migration; false when it is unchanged or has ended. */
export async function setRuntime(
  db: Queryable,
  name: string,
  runtime: RuntimeOptions,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE pgmigrate.migrations
        SET runtime_kind = $2, runtime_log_dir = $3, worker_warned_at = NULL, updated_at = now()
      WHERE name = $1 AND ended_on IS NULL
        AND (runtime_kind, runtime_log_dir) IS DISTINCT FROM ($2::text, $3::text)`,
    [name, runtime.kind, runtime.logDir ?? null],
  );
  return rowCount === 1;
}

export async function getMigrationRow(
  db: Queryable,
  name: string,
): Promise<MigrationRow | undefined> {
  const { rows } = await db.query<MigrationRow>(`${SELECT_ROW} WHERE name = $1`, [name]);
  return rows[0];
}

/** Newest first. */
export async function listMigrationRows(
  db: Queryable,
  activeOnly: boolean,
): Promise<MigrationRow[]> {
  const { rows } = await db.query<MigrationRow>(
    `${SELECT_ROW} WHERE NOT $1 OR ended_on IS NULL ORDER BY created_at DESC, name`,
    [activeOnly],
  );
  return rows;
}

/**
 * Moves the migration to a state, only while the fence's owner holds the lease (a worker that
 * lost it must not overwrite its successor's progress). Terminal states set ended_on and clear
 * the requested action. A lost lease throws "PGM_LEASE_LOST" (and tells the fence).
 */
export async function setState(
  db: Queryable,
  fence: LeaseFence,
  state: MigrationState,
  substate: MigrationSubstate,
  error: string | null = null,
): Promise<void> {
  await fencedWrite(
    db,
    fence,
    `UPDATE pgmigrate.migrations
        SET state = $3, substate = $4, error = coalesce($5, error), updated_at = now(),
            ended_on = CASE WHEN $6 THEN now() ELSE ended_on END,
            requested_action = CASE WHEN $6 THEN NULL ELSE requested_action END
      WHERE name = $1 AND lease_owner = $2`,
    [fence.migration, fence.owner, state, substate, error, isEnded(state)],
  );
}

export async function setValidation(
  db: Queryable,
  fence: LeaseFence,
  report: ValidationReport,
): Promise<void> {
  await fencedWrite(
    db,
    fence,
    `UPDATE pgmigrate.migrations SET validation = $3, updated_at = now()
      WHERE name = $1 AND lease_owner = $2`,
    [fence.migration, fence.owner, JSON.stringify(report)],
  );
}

export async function setVerification(
  db: Queryable,
  fence: LeaseFence,
  report: VerificationReport,
): Promise<void> {
  await fencedWrite(
    db,
    fence,
    `UPDATE pgmigrate.migrations SET verification = $3, updated_at = now()
      WHERE name = $1 AND lease_owner = $2`,
    [fence.migration, fence.owner, JSON.stringify(report)],
  );
}

/** Remembers that this migration created `database` on the target (cancel drops only those). */
export async function addCreatedDatabase(
  db: Queryable,
  fence: LeaseFence,
  database: string,
): Promise<void> {
  await fencedWrite(
    db,
    fence,
    `UPDATE pgmigrate.migrations
        SET created_databases = array_append(created_databases, $3::text)
      WHERE name = $1 AND lease_owner = $2 AND NOT ($3::text = ANY (created_databases))`,
    [fence.migration, fence.owner, database],
  );
}

/**
 * Records a requested action while the migration has not ended (and, for a cancel, while no
 * database of its cutover has drained: see markDrained); false otherwise.
 */
export async function writeRequestedAction(
  db: Queryable,
  name: string,
  action: RequestedAction,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE pgmigrate.migrations
        SET requested_action = $2, requested_at = now(), updated_at = now()
      WHERE name = $1 AND ended_on IS NULL
        AND ($2 <> 'cancel' OR cutover_drained_at IS NULL)`,
    [name, action],
  );
  return rowCount === 1;
}

/** Removes an ended migration and (by cascade) its progress and events. */
export async function deleteEndedMigration(db: Queryable, name: string): Promise<boolean> {
  const { rowCount } = await db.query(
    "DELETE FROM pgmigrate.migrations WHERE name = $1 AND ended_on IS NOT NULL",
    [name],
  );
  return rowCount === 1;
}
