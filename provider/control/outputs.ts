// Builds the user-visible MigrationOutputs (Pulumi outputs, `--json`) from the control rows.
import type { DbDetails, MigrationOutputs } from "../spec/types";
import type { Queryable } from "./db";
import { getMigrationRow, type MigrationRow } from "./migrations";
import { databaseRows, type DatabaseRow } from "./progress";

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
  const migration = await getMigrationRow(db, name);
  if (!migration) return undefined;
  return buildOutputs(migration, await databaseRows(db, name));
}
