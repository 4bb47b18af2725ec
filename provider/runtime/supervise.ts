// Looks after the worker of an active migration as its stored runtime says: a dead local worker
// is spawned again (with the same log directory); an external one is never spawned from here,
// so when it goes quiet the user is told which command to run.
import type { ControlLocation, Queryable } from "../control/db";
import { addEvent } from "../control/events";
import { reserveWorkerWarning } from "../control/lease";
import {
  getMigrationRow,
  setRuntime,
  storedRuntime,
  type MigrationRow,
} from "../control/migrations";
import type {
  ConnectionProbe,
  Endpoint,
  MigrationSpec,
  RuntimeOptions,
  ValidationReport,
} from "../spec/types";
import type { RuntimeProcessOptions } from "./main";
import { controlUrl, ensureLocalWorker, STALE_HEARTBEAT_SECONDS, workerStatus } from "./spawn";

// What api/ needs of the worker's processes goes through this module only.
export { workerStatus, type WorkerStatus } from "./spawn";
export type { RuntimeProcessOptions } from "./main";

/**
 * The premigration checks run in this process, without a migration (Pulumi's preview); the
 * worker runs them again when the migration starts. Loaded on demand like the worker.
 */
export async function validateInProcess(spec: MigrationSpec): Promise<ValidationReport> {
  const validate = require("../validate/index") as typeof import("../validate/index");
  return validate.validateMigration(spec);
}

/** One server's connectivity check in this process (the console's Test connection). */
export async function probeConnectionInProcess(
  endpoint: Endpoint,
  role: "source" | "target",
): Promise<ConnectionProbe> {
  const validate = require("../validate/index") as typeof import("../validate/index");
  return validate.probeConnection(endpoint, role);
}

/**
 * Runs the worker in this process (`pgmigrate runtime`) as the spawned worker does; returns its
 * exit code. Loaded on demand: the other commands need none of the worker's machinery.
 */
export async function runRuntime(options: RuntimeProcessOptions): Promise<number> {
  const { runRuntime: run } = await import("./main");
  return run(options);
}

/** The "no worker is running" event is written at most this often (the warning itself is returned every time). */
export const WORKER_WARNING_EVERY_SECONDS = 300;

/** What looking after the worker did, and what the user should know. */
export interface WorkerCheck {
  readonly started: boolean;
  /** Set when the worker is gone and nothing here will bring it back. */
  readonly warning?: string;
}

function sameRuntime(a: RuntimeOptions, b: RuntimeOptions): boolean {
  return a.kind === b.kind && (a.logDir ?? null) === (b.logDir ?? null);
}

/**
 * For an external runtime whose worker is gone: what to run, and where. Quiet during the first
 * seconds after creation (the user is still starting it) and while a worker heartbeats.
 */
export function missingWorkerWarning(row: MigrationRow, at: ControlLocation): string | undefined {
  if (row.endedOn || row.runtimeKind === "local" || workerStatus(row) !== "dead") return;
  const silent = row.heartbeatAgeSeconds ?? row.ageSeconds;
  if (row.heartbeatAgeSeconds === null && silent < STALE_HEARTBEAT_SECONDS) return;
  const seconds = Math.round(silent);
  const what =
    row.heartbeatAgeSeconds === null
      ? `no worker has picked it up in ${seconds} s`
      : `no worker has a heartbeat for ${seconds} s`;
  const passwords = "passwords in PGMIGRATE_SOURCE_PASSWORD and PGMIGRATE_TARGET_PASSWORD";
  if (row.runtimeKind === "pool") {
    return (
      `migration ${row.name} runs on a pool of runtimes and ${what}: waiting for a runtime; run ` +
      `\`pgmigrate runtime --server ${controlUrl(at.target, at.controlDatabase)}\` (no --migration-name) ` +
      `on hosts that reach both servers, or declare a MigrationRuntime (${passwords})`
    );
  }
  return (
    `migration ${row.name} runs on an external runtime and ${what}; run ` +
    `\`pgmigrate runtime --server ${controlUrl(at.target, at.controlDatabase)} --migration-name ${row.name}\` ` +
    `on a host that reaches both servers (${passwords})`
  );
}

/**
 * Checks the worker of migration `name`. `declared` is the runtime the caller was configured
 * with (a Pulumi program's `runtime` input): when it differs from the stored one it is recorded
 * and wins; without it the stored runtime decides. A local worker is spawned only with `spec`
 * (it carries the passwords the worker needs). `row`: the migration's row just read by the
 * caller (a wait polling every second), so a healthy worker costs no further query.
 */
export async function superviseWorker(
  db: Queryable,
  at: ControlLocation,
  name: string,
  options: {
    spec?: MigrationSpec;
    declared?: RuntimeOptions;
    restart?: boolean;
    row?: MigrationRow;
  } = {},
): Promise<WorkerCheck> {
  let row = options.row ?? (await getMigrationRow(db, name));
  if (!row || row.endedOn) return { started: false };
  let runtime = storedRuntime(row);
  if (options.declared && !sameRuntime(options.declared, runtime)) {
    if (await setRuntime(db, name, options.declared)) {
      const { kind, logDir } = options.declared;
      await addEvent(
        db,
        name,
        "info",
        `runtime set to ${kind}${logDir ? `, logs in ${logDir}` : ""}`,
      );
    }
    row = (await getMigrationRow(db, name)) ?? row;
    runtime = storedRuntime(row);
  }
  if (runtime.kind !== "local") {
    const warning = missingWorkerWarning(row, at);
    if (warning && (await reserveWorkerWarning(db, name, WORKER_WARNING_EVERY_SECONDS))) {
      await addEvent(db, name, "warning", warning);
    }
    return { started: false, warning };
  }
  if (!options.spec) return { started: false };
  const started = await ensureLocalWorker(db, options.spec, {
    logDir: runtime.logDir,
    restart: options.restart,
    row,
  });
  return { started };
}
