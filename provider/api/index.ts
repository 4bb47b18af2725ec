// The facade: everything the CLI and the Pulumi provider do with a migration goes through these
// functions (control store reads and writes, the local worker). No engine internals leak.
import { withControl, type ControlLocation, type Queryable } from "../control/db";
import { addEvent } from "../control/events";
import {
  deleteEndedMigration,
  getMigrationRow,
  insertMigration,
  writeRequestedAction,
} from "../control/migrations";
import { insertDatabases } from "../control/progress";
import { installControlSchema } from "../control/schema";
import { MigrationError, pgFields, SQLSTATE } from "../pg/errors";
import { migrationNameProblem } from "../pg/names";
import { publicSpec } from "../pg/redact";
import { superviseWorker, type WorkerCheck } from "../runtime/supervise";
import { specHash } from "../spec/rules";
import { actionProblem } from "../spec/states";
import type { MigrationOutputs, MigrationSpec, RuntimeOptions } from "../spec/types";
import { getMigration, readControl } from "./reads";

export type { ControlLocation } from "../control/db";
export type { StoredSpec } from "../control/migrations";
export type { RuntimeOptions } from "../spec/types";
export { isEnded, isSettled } from "../spec/states";
export { runRuntime, type RuntimeProcessOptions } from "../runtime/supervise";
export { waitForMigration } from "./wait";
export {
  previewValidation,
  PREVIEW_VALIDATION_TIMEOUT_MS,
  type PreviewValidation,
} from "./preview";
export {
  cancelAnnouncement,
  databasesDroppedByCancel,
  overwriteAnnouncement,
  targetDatabasesToOverwrite,
} from "./destructive";
export type { TableProgressRow } from "../control/progress";
export type { LatencySample } from "../control/latency";
export type { UnitView } from "../control/units";
export { CONNECTION_TEST_TIMEOUT_MS, testConnection, type ConnectionProbe } from "./connections";
export {
  checkNameAvailability,
  getLatencyHistory,
  getMigration,
  getStateHistory,
  getStoredSpec,
  getTableProgress,
  getWorkUnits,
  listMigrations,
  type MigrationListItem,
  type StateSpan,
  type StoredMigration,
} from "./reads";
export type { WorkerStatus } from "../runtime/supervise";
export { specHash } from "../spec/rules";

/** Where the control store of `spec` lives. */
export function controlLocation(spec: MigrationSpec): ControlLocation {
  return { target: spec.target, controlDatabase: spec.controlDatabase };
}

function duplicate(message: string): MigrationError {
  return new MigrationError("control", message, { code: "PGM_DUPLICATE_NAME" });
}

async function insertNew(
  db: Queryable,
  spec: MigrationSpec,
  hash: string,
  runtime: RuntimeOptions,
): Promise<boolean> {
  await db.query("BEGIN");
  try {
    const inserted = await insertMigration(db, {
      name: spec.migrationName,
      spec: publicSpec(spec),
      specHash: hash,
      mode: spec.mode,
      option: spec.option,
      runtime,
    });
    if (inserted) {
      await insertDatabases(db, spec.migrationName, spec.databases);
      await addEvent(
        db,
        spec.migrationName,
        "info",
        `migration created: ${spec.mode}, ${spec.option}, databases ${spec.databases.join(", ")}`,
      );
    }
    await db.query("COMMIT");
    return inserted;
  } catch (err) {
    await db.query("ROLLBACK").catch(() => undefined);
    throw err;
  }
}

/**
 * Installs/upgrades the control schema; starts the migration, or attaches to an existing one
 * with the same spec (ignoring passwords and `cutover`) that has not ended (attached=true).
 * Same name with a different spec, or an ended one → MigrationError "PGM_DUPLICATE_NAME".
 * The runtime is stored with the migration (an attach records the new one). Local runtime:
 * spawns the detached worker (credentials via environment).
 */
export async function createMigration(
  spec: MigrationSpec,
  runtime: RuntimeOptions,
): Promise<{ outputs: MigrationOutputs; attached: boolean }> {
  const problem = migrationNameProblem(spec.migrationName);
  if (problem) throw new MigrationError("input", problem, { code: "PGM_INPUT" });
  const at = controlLocation(spec);
  await installControlSchema(at);
  const hash = specHash(spec);
  const attached = await withControl(at, async (db) => {
    if (await insertNew(db, spec, hash, runtime)) return false;
    const row = await getMigrationRow(db, spec.migrationName);
    if (!row)
      throw duplicate(
        `migration "${spec.migrationName}" was removed while being created; try again`,
      );
    if (row.endedOn) {
      throw duplicate(
        `a migration named "${spec.migrationName}" already exists on this server and ended (${row.state}); choose another name`,
      );
    }
    if (row.specHash !== hash) {
      throw duplicate(
        `a migration named "${spec.migrationName}" is already running on this server with different settings; choose another name or cancel it first`,
      );
    }
    return true;
  });
  await ensureWorker(spec, runtime);
  const outputs = await getMigration(at, spec.migrationName);
  if (!outputs) throw duplicate(`migration "${spec.migrationName}" disappeared after creation`);
  return { outputs, attached };
}

/**
 * If the migration is active (not ended) and its worker's heartbeat is stale (or `restart`),
 * spawns a new local worker with the spec's credentials. Returns true if it started one.
 * `runtime` is the caller's configuration: when it differs from the runtime stored with the
 * migration it is recorded and wins; omitted, the stored runtime decides. A migration on an
 * external runtime never gets a local worker: a stale one is reported as an event instead.
 */
export async function ensureWorker(
  spec: MigrationSpec,
  runtime?: RuntimeOptions,
  options: { restart?: boolean } = {},
): Promise<boolean> {
  return (await checkWorker(spec, runtime, options)).started;
}

/** ensureWorker that also returns the warning for a gone external worker. */
async function checkWorker(
  spec: MigrationSpec,
  declared: RuntimeOptions | undefined,
  options: { restart?: boolean },
): Promise<WorkerCheck> {
  const at = controlLocation(spec);
  return readControl(at, { started: false }, (db) =>
    superviseWorker(db, at, spec.migrationName, { spec, declared, restart: options.restart }),
  );
}

function invalid(message: string): MigrationError {
  return new MigrationError("control", message, { code: "PGM_INVALID_ACTION" });
}

/** Records a requested action; invalid → MigrationError "PGM_INVALID_ACTION" saying why. */
export async function requestAction(
  at: ControlLocation,
  name: string,
  action: "cutover" | "cancel",
): Promise<void> {
  await withControl(at, async (db) => {
    const row = await getMigrationRow(db, name).catch((err: unknown) => {
      if (pgFields(err).code === SQLSTATE.undefinedTable) return undefined;
      throw err;
    });
    if (!row) {
      throw new MigrationError("control", `no migration named "${name}" on this server`, {
        code: "PGM_NOT_FOUND",
      });
    }
    const problem = actionProblem(row, action);
    if (problem) throw invalid(problem);
    if (row.requestedAction === action) return;
    if (!(await writeRequestedAction(db, name, action))) {
      // The migration ended, or (cancel) its cutover drained meanwhile: say which.
      const now = await getMigrationRow(db, name);
      throw invalid(
        (now && actionProblem(now, action)) ??
          `migration "${name}" ended while the ${action} was being requested`,
      );
    }
    await addEvent(db, name, "info", `${action} requested`);
  });
}

/** Removes an ended migration's control rows (Pulumi delete of a Succeeded migration). Never touches migrated data. */
export async function forgetMigration(at: ControlLocation, name: string): Promise<void> {
  await readControl(at, undefined, async (db) => {
    const row = await getMigrationRow(db, name);
    if (!row) return;
    if (!row.endedOn) {
      throw invalid(`migration "${name}" is still ${row.state}; cancel it before forgetting it`);
    }
    await deleteEndedMigration(db, name);
  });
}
