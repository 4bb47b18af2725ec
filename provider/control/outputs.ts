// Builds the user-visible MigrationOutputs (Pulumi outputs, `--json`) from the control rows.
import type { DbDetails, MigrationOutputs } from "../spec/types";
import type { Queryable } from "./db";
import { SELECT_ROW, type MigrationRow } from "./migrations";
import { DATABASE_ROWS_SQL, type DatabaseRow } from "./progress";

function iso(date: Date | null): string | null {
  return date ? date.toISOString() : null;
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
    message: row.message,
    startedOn: iso(row.startedOn),
    endedOn: iso(row.endedOn),
  };
}

/** The outputs of one migration from its rows. */
export function buildOutputs(
  migration: MigrationRow,
  databases: readonly DatabaseRow[],
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

type JsonDatabaseRow = Omit<DatabaseRow, "startedOn" | "endedOn"> & {
  readonly startedOn: string | null;
  readonly endedOn: string | null;
};

/**
 * The row and outputs of `name` in one query (a long wait polls this every second: one round
 * trip, one consistent snapshot); undefined when there is no such migration.
 */
export async function readSnapshot(
  db: Queryable,
  name: string,
): Promise<MigrationSnapshot | undefined> {
  const { rows } = await db.query<MigrationRow & { databases: JsonDatabaseRow[] }>(
    `SELECT m.*,
            (SELECT coalesce(json_agg(r ORDER BY r.position), '[]'::json)
               FROM (${DATABASE_ROWS_SQL}) r) AS databases
       FROM (${SELECT_ROW} WHERE name = $1) m`,
    [name],
  );
  if (rows.length === 0) return undefined;
  const { databases, ...row } = rows[0];
  const parsed = databases.map((d): DatabaseRow => ({
    ...d,
    startedOn: d.startedOn === null ? null : new Date(d.startedOn),
    endedOn: d.endedOn === null ? null : new Date(d.endedOn),
  }));
  return { row, outputs: buildOutputs(row, parsed) };
}
