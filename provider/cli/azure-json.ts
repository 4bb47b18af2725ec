// `pgmigrate show --output azure`: a migration in the shape `az postgres flexible-server
// migration show` prints (Microsoft.DBforPostgreSQL/flexibleServers/migrations), so scripts
// written for the reference service read `properties.currentStatus.state` and the rest unchanged.
import type { CheckResult, DbDetails, MigrationOutputs } from "../spec/types";

/** The reference service's resource type. */
export const AZURE_MIGRATION_TYPE = "Microsoft.DBforPostgreSQL/flexibleServers/migrations";

/** One database as the reference service's DatabaseMigrationState. */
function databaseState(d: DbDetails) {
  return {
    databaseName: d.databaseName,
    migrationState: d.migrationState,
    migrationOperation: null,
    startedOn: d.startedOn,
    endedOn: d.endedOn,
    fullLoadQueuedTables: d.fullLoadQueuedTables,
    fullLoadErroredTables: d.fullLoadErroredTables,
    fullLoadLoadingTables: d.fullLoadLoadingTables,
    fullLoadCompletedTables: d.fullLoadCompletedTables,
    cdcUpdateCounter: d.cdcUpdateCounter,
    cdcDeleteCounter: d.cdcDeleteCounter,
    cdcInsertCounter: d.cdcInsertCounter,
    appliedChanges: d.appliedChanges,
    incomingChanges: d.incomingChanges,
    latency: d.latencySeconds,
    message: d.message,
  };
}

/** A check as the reference service's ValidationSummaryItem (messages are objects there). */
function summaryItem(check: CheckResult) {
  return {
    type: check.type,
    state: check.state,
    messages: check.messages.map((message) => ({ state: check.state, message })),
  };
}

/** `outputs` of the migration on `server` ("host:port") in the reference service's shape. */
export function azureMigration(outputs: MigrationOutputs, server: string) {
  const v = outputs.validation;
  return {
    id: `/servers/${server}/migrations/${outputs.migrationName}`,
    name: outputs.migrationName,
    type: AZURE_MIGRATION_TYPE,
    properties: {
      currentStatus: {
        state: outputs.state,
        error: outputs.error ?? "",
        currentSubStateDetails: {
          currentSubState: outputs.substate,
          dbDetails: Object.fromEntries(
            Object.entries(outputs.dbDetails).map(([db, d]) => [db, databaseState(d)]),
          ),
          validationDetails: v
            ? {
                status: v.status,
                serverLevelValidationDetails: v.serverLevel.map(summaryItem),
                dbLevelValidationDetails: v.databaseLevel.map((db) => ({
                  databaseName: db.databaseName,
                  summary: db.summary.map(summaryItem),
                })),
              }
            : null,
        },
      },
      migrationMode: outputs.migrationMode,
      migrationOption: outputs.migrationOption,
      dbsToMigrate: Object.keys(outputs.dbDetails),
      migrationWindowStartTimeInUtc: outputs.startedOn,
      migrationWindowEndTimeInUtc: outputs.endedOn,
    },
  };
}
