// Builds the user-visible MigrationOutputs (Pulumi outputs, `--json`) from the control rows.
import { copyPercent, etaSeconds } from "../spec/progress";
import type { DbDetails, MigrationEvent, MigrationOutputs, RuntimeOutput } from "../spec/types";
import { pgFields, SQLSTATE } from "../pg/errors";
import { compareLsn } from "../pg/lsn";
import type { Queryable } from "./db";
import { SELECT_ROW, type MigrationRow } from "./migrations";
import { DATABASE_ROWS_SQL, type DatabaseRow } from "./progress";
import { runtimesOf } from "./units";

function iso(date: Date | null): string | null {
  return date ? date.toISOString() : null;
}

/** The database's tables as one: 100 % only when every table committed. */
function fullLoadPercent(row: DatabaseRow): number | null {
  const tables = row.queued + row.loading + row.completed + row.errored;
  if (tables === 0) return null;
  const state = row.completed === tables ? "completed" : "loading";
  return copyPercent(state, row.copiedBytes, row.totalBytes);
}

function dbDetails(row: DatabaseRow): DbDetails {
  return {
    databaseName: row.name,
    migrationState: row.migrationState,
    fullLoadQueuedTables: row.queued,
    fullLoadLoadingTables: row.loading,
    fullLoadCompletedTables: row.completed,
    fullLoadErroredTables: row.errored,
    cdcInsertCounter: row.inserts,
    cdcUpdateCounter: row.updates,
    cdcDeleteCounter: row.deletes,
    appliedChanges: row.appliedChanges,
    incomingChanges: row.incomingChanges,
    latencySeconds: row.latencySeconds,
    cutoverLsn: row.cutoverLsn,
    lastAppliedCommitLsn: row.appliedLsn,
    lastAppliedCommitTime: iso(row.appliedCommitTime),
    fullLoadBytesCopied: row.copiedBytes,
    fullLoadRowsCopied: row.copiedRows,
    fullLoadTotalBytes: row.totalBytes,
    fullLoadPercent: fullLoadPercent(row),
    fullLoadBytesPerSecond: row.bytesPerSecond,
    fullLoadEtaSeconds: etaSeconds(row.copiedBytes, row.totalBytes, row.bytesPerSecond),
    message: row.message,
    startedOn: iso(row.startedOn),
    endedOn: iso(row.endedOn),
  };
}

// One position for the whole cutover (every database records the same one); the lowest if a
// store written otherwise ever disagrees.
function cutoverLsnOf(databases: readonly DatabaseRow[]): string | null {
  const recorded = databases
    .map((d) => d.cutoverLsn)
    .filter((l): l is string => l !== null)
    .sort((a, b) => compareLsn(a, b));
  return recorded[0] ?? null;
}

/** How many recent events, and recent warnings, the outputs carry. */
export const RECENT_EVENTS = 20;

/** The outputs of one migration from its rows. */
export function buildOutputs(
  migration: MigrationRow,
  databases: readonly DatabaseRow[],
  events: { readonly recent: MigrationEvent[]; readonly warnings: MigrationEvent[] } = {
    recent: [],
    warnings: [],
  },
  runtimes: readonly RuntimeOutput[] = [],
): MigrationOutputs {
  const latencies = databases
    .map((d) => d.latencySeconds)
    .filter((l): l is number => typeof l === "number");
  return {
    migrationName: migration.name,
    state: migration.state,
    substate: migration.substate,
    migrationMode: migration.mode,
    migrationOption: migration.option,
    latencySeconds: latencies.length > 0 ? Math.max(...latencies) : null,
    startedOn: iso(migration.startedOn),
    endedOn: iso(migration.endedOn),
    error: migration.error,
    validation: migration.validation,
    dbDetails: Object.fromEntries(databases.map((d) => [d.name, dbDetails(d)])),
    verification: migration.verification,
    cutoverLsn: cutoverLsnOf(databases),
    events: events.recent,
    warnings: events.warnings,
    workerLog: migration.workerLog,
    runtimes,
  };
}

/** Live outputs of `name`; undefined when there is no such migration. */
export async function readOutputs(
  db: Queryable,
  name: string,
): Promise<MigrationOutputs | undefined> {
  return (await readSnapshot(db, name))?.outputs;
}

/** A migration's row (lease, heartbeat, runtime) and its outputs, read together. */
export interface MigrationSnapshot {
  readonly row: MigrationRow;
  readonly outputs: MigrationOutputs;
}

// The newest $2 events of migration $1 that meet `condition`, oldest first, as MigrationEvent JSON.
const recentEventsSql = (condition: string): string => `
  SELECT coalesce(json_agg(json_build_object(
           'at', to_char(x.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'level', x.level, 'database', x.database, 'message', x.message) ORDER BY x.id), '[]'::json)
    FROM (SELECT e.id, e.at, e.level, e.database, e.message FROM pgmigrate.events e
           WHERE e.migration = $1 AND ${condition} ORDER BY e.id DESC LIMIT $2) x`;

type JsonDatabaseRow = Omit<DatabaseRow, "startedOn" | "endedOn" | "appliedCommitTime"> & {
  readonly startedOn: string | null;
  readonly endedOn: string | null;
  readonly appliedCommitTime: string | null;
};

/**
 * The row and outputs of `name` in one query (a long wait polls this every second: one round
 * trip, one consistent snapshot); undefined when there is no such migration.
 */
export async function readSnapshot(
  db: Queryable,
  name: string,
): Promise<MigrationSnapshot | undefined> {
  const { rows } = await db.query<
    MigrationRow & {
      databases: JsonDatabaseRow[];
      recent_events: MigrationEvent[];
      recent_warnings: MigrationEvent[];
    }
  >(
    `SELECT m.*,
            (SELECT coalesce(json_agg(r ORDER BY r.position), '[]'::json)
               FROM (${DATABASE_ROWS_SQL}) r) AS databases,
            (${recentEventsSql("true")}) AS recent_events,
            (${recentEventsSql("e.level <> 'info'")}) AS recent_warnings
       FROM (${SELECT_ROW} WHERE name = $1) m`,
    [name, RECENT_EVENTS],
  );
  if (rows.length === 0) return undefined;
  const { databases, recent_events, recent_warnings, ...row } = rows[0];
  const parsed = databases.map((d): DatabaseRow => ({
    ...d,
    startedOn: d.startedOn === null ? null : new Date(d.startedOn),
    endedOn: d.endedOn === null ? null : new Date(d.endedOn),
    appliedCommitTime: d.appliedCommitTime === null ? null : new Date(d.appliedCommitTime),
  }));
  const runtimes = row.endedOn ? [] : await liveRuntimes(db, name);
  return {
    row,
    outputs: buildOutputs(
      row,
      parsed,
      { recent: recent_events, warnings: recent_warnings },
      runtimes,
    ),
  };
}

/** The runtimes serving `name`; none in a control store older than version 7 (no such table). */
async function liveRuntimes(db: Queryable, name: string): Promise<RuntimeOutput[]> {
  try {
    return await runtimesOf(db, name);
  } catch (err) {
    if (pgFields(err).code === SQLSTATE.undefinedTable) return [];
    throw err;
  }
}
