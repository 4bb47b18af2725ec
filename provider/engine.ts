// The engine facade: everything the CLI and the Pulumi provider do with a migration goes through
// these functions (control store reads and writes, the local worker). No engine internals leak.
import { withControl, type ControlLocation, type Queryable } from "./control/db";
import { addEvent } from "./control/events";
import {
  deleteEndedMigration,
  getMigrationRow,
  insertMigration,
  listMigrationRows,
  writeRequestedAction,
} from "./control/migrations";
import { readOutputs } from "./control/outputs";
import { actionProblem, specHash } from "./control/rules";
import { publicSpec } from "./pg/redact";
import { insertDatabases } from "./control/progress";
import { installControlSchema } from "./control/schema";
import { MigrationError, pgFields, SQLSTATE } from "./pg/errors";
import { migrationNameProblem } from "./pg/names";
import { ensureLocalWorker } from "./runtime/spawn";
import type { MigrationOutputs, MigrationSpec, MigrationState } from "./types";
import { TERMINAL_STATES } from "./types";

export type { ControlLocation } from "./control/db";
export { specHash } from "./control/rules";

export interface RuntimeOptions {
  kind: "local" | "external";
  logDir?: string;
}

export interface MigrationListItem {
  name: string;
  state: MigrationState;
  substate: string;
  migrationMode: string;
  migrationOption: string;
  sourceServer: string;
  sourceServerType: string;
  databases: string[];
  startedOn: string | null;
  endedOn: string | null;
  durationSeconds: number | null;
}

/** Where the control store of `spec` lives. */
export function controlLocation(spec: MigrationSpec): ControlLocation {
  return { target: spec.target, controlDatabase: spec.controlDatabase };
}

export function isEnded(state: MigrationState): boolean {
  return TERMINAL_STATES.includes(state);
}

/** States after which `--wait` / provider create return: WaitingForUserAction or ended. */
export function isSettled(o: MigrationOutputs): boolean {
  return o.state === "WaitingForUserAction" || isEnded(o.state);
}

function duplicate(message: string): MigrationError {
  return new MigrationError("control", message, { code: "PGM_DUPLICATE_NAME" });
}

async function insertNew(db: Queryable, spec: MigrationSpec, hash: string): Promise<boolean> {
  await db.query("BEGIN");
  try {
    const inserted = await insertMigration(db, {
      name: spec.migrationName,
      spec: publicSpec(spec),
      specHash: hash,
      mode: spec.mode,
      option: spec.option,
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
 * Local runtime: spawns the detached worker (credentials via environment).
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
    if (await insertNew(db, spec, hash)) return false;
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
  if (runtime.kind === "local") await ensureWorker(spec, runtime);
  const outputs = await getMigration(at, spec.migrationName);
  if (!outputs) throw duplicate(`migration "${spec.migrationName}" disappeared after creation`);
  return { outputs, attached };
}

// Reads must work before anything was ever created: no control database or schema = nothing.
const NOTHING_YET: readonly string[] = [SQLSTATE.undefinedTable, SQLSTATE.invalidCatalogName];

async function readControl<T>(
  at: ControlLocation,
  empty: T,
  fn: (db: Queryable) => Promise<T>,
): Promise<T> {
  try {
    return await withControl(at, fn);
  } catch (err) {
    if (NOTHING_YET.includes(pgFields(err).code ?? "")) return empty;
    throw MigrationError.wrap("control", err, "reading the pgmigrate control store");
  }
}

/** Live outputs from the control store; undefined if no such migration. */
export async function getMigration(
  at: ControlLocation,
  name: string,
): Promise<MigrationOutputs | undefined> {
  return readControl(at, undefined, (db) => readOutputs(db, name));
}

/**
 * If the migration is active (not ended) and its worker's heartbeat is stale (or `restart`),
 * spawns a new local worker with the spec's credentials. Returns true if it started one.
 */
export async function ensureWorker(
  spec: MigrationSpec,
  runtime: RuntimeOptions,
  options: { restart?: boolean } = {},
): Promise<boolean> {
  if (runtime.kind !== "local") return false;
  return readControl(controlLocation(spec), false, (db) =>
    ensureLocalWorker(db, spec, { logDir: runtime.logDir, restart: options.restart }),
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
    // A cancel overrides a pending cutover; a repeated request is harmless.
    if (!isEnded(row.state) && row.requestedAction === "cancel" && action === "cutover") {
      throw invalid(`migration "${name}" is being canceled; a cutover is no longer possible`);
    }
    const problem = actionProblem(row, action);
    if (problem) throw invalid(problem);
    if (row.requestedAction === action) return;
    if (!(await writeRequestedAction(db, name, action))) {
      throw invalid(`migration "${name}" ended while the ${action} was being requested`);
    }
    await addEvent(db, name, "info", `${action} requested`);
  });
}

/**
 * Polls (every ~1 s) until `until(outputs)` is true; calls onProgress with each new outputs;
 * rejects on timeout. Restarts a dead local worker when `spec` is given.
 */
export async function waitForMigration(
  at: ControlLocation,
  name: string,
  until: (o: MigrationOutputs) => boolean,
  options: {
    onProgress?: (o: MigrationOutputs) => void;
    timeoutMs?: number;
    spec?: MigrationSpec;
    runtime?: RuntimeOptions;
  } = {},
): Promise<MigrationOutputs> {
  const deadline = Date.now() + (options.timeoutMs ?? Number.POSITIVE_INFINITY);
  let last = "";
  for (;;) {
    const outputs = await getMigration(at, name);
    if (!outputs) {
      throw new MigrationError("control", `no migration named "${name}" on this server`, {
        code: "PGM_NOT_FOUND",
      });
    }
    const seen = JSON.stringify(outputs);
    if (seen !== last) {
      last = seen;
      options.onProgress?.(outputs);
    }
    if (until(outputs)) return outputs;
    if (options.spec && !isEnded(outputs.state)) {
      await ensureWorker(options.spec, options.runtime ?? { kind: "local" });
    }
    if (Date.now() >= deadline) {
      throw new MigrationError(
        "control",
        `timed out waiting for migration "${name}" (now ${outputs.state}/${outputs.substate})`,
        { code: "PGM_TIMEOUT" },
      );
    }
    await new Promise((resolve) =>
      setTimeout(resolve, Math.min(1000, Math.max(0, deadline - Date.now()))),
    );
  }
}

/** Newest first. Active = not ended. */
export async function listMigrations(
  at: ControlLocation,
  filter: "Active" | "All",
): Promise<MigrationListItem[]> {
  const rows = await readControl(at, [], (db) => listMigrationRows(db, filter === "Active"));
  return rows.map((row) => {
    const source = row.spec.source;
    const started = row.startedOn?.getTime() ?? null;
    const ended = row.endedOn?.getTime() ?? null;
    return {
      name: row.name,
      state: row.state,
      substate: row.substate,
      migrationMode: row.mode,
      migrationOption: row.option,
      sourceServer: `${source.host}:${source.port}`,
      sourceServerType: source.serverType ?? "OnPremises",
      databases: [...row.spec.databases],
      startedOn: row.startedOn?.toISOString() ?? null,
      endedOn: row.endedOn?.toISOString() ?? null,
      durationSeconds:
        started === null ? null : Math.round(((ended ?? Date.now()) - started) / 1000),
    };
  });
}

export async function checkNameAvailability(
  at: ControlLocation,
  name: string,
): Promise<{ available: boolean; reason?: string }> {
  const problem = migrationNameProblem(name);
  if (problem) return { available: false, reason: problem };
  const row = await readControl(at, undefined, (db) => getMigrationRow(db, name));
  if (!row) return { available: true };
  return {
    available: false,
    reason: `a migration named "${name}" already exists on this server (${row.state})`,
  };
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
