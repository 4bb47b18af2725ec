// The local spawner: starts the worker (`runtime/main.js runtime --server URL --migration-name N`)
// as a detached process that outlives its caller (passwords through the environment, never argv;
// output to a log file), and tells a live worker from a dead one.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Queryable } from "../control/db";
import { addEvent } from "../control/events";
import { clearDeadLease, recordSpawn, reserveSpawn } from "../control/lease";
import { getMigrationRow, type MigrationRow } from "../control/migrations";
import { processAlive, processArgv } from "../pg/process";
import type { Endpoint, MigrationSpec } from "../spec/types";
import { parseOwnerId } from "./lease";

/** A worker whose heartbeat is older than this is presumed dead. */
export const STALE_HEARTBEAT_SECONDS = 15;
/** A worker spawned less than this ago is still starting. */
export const SPAWN_GRACE_SECONDS = 20;

export interface SpawnOptions {
  readonly logDir?: string;
}

/** The worker's one entry point, next to this module (the CLI's `runtime` runs the same code). */
const WORKER_ENTRY = path.join(__dirname, "main.js");

/** libpq URL of the control database, without the password. */
export function controlUrl(target: Endpoint, controlDatabase: string): string {
  const host = target.host.includes(":") ? `[${target.host}]` : target.host;
  const params = new URLSearchParams({ sslmode: target.sslMode });
  if (target.sslRootCert) params.set("sslrootcert", target.sslRootCert);
  return (
    `postgresql://${encodeURIComponent(target.username)}@${host}:${target.port}/` +
    `${encodeURIComponent(controlDatabase)}?${params.toString()}`
  );
}

/**
 * True when `pid` is alive and still a pgmigrate worker that may serve `migration`: a pid from
 * the control store may have been reused by an unrelated process since, which must be neither
 * trusted as a worker nor sent signals. Where argv cannot be read, being alive has to do.
 */
export function workerProcessAlive(pid: number, migration: string): boolean {
  if (pid === process.pid) return true; // a worker running inside this process
  if (!processAlive(pid)) return false;
  const argv = processArgv(pid);
  if (argv === undefined) return true;
  if (!argv.includes("runtime")) return false;
  const named = argv.indexOf("--migration-name");
  const inline = argv.find((arg) => arg.startsWith("--migration-name="));
  const serves = named >= 0 ? argv[named + 1] : inline?.slice("--migration-name=".length);
  // Without --migration-name the worker serves every migration of its control store.
  return serves === undefined || serves === migration;
}

export type WorkerStatus = "alive" | "starting" | "dead";

/** Judges the worker of an active migration from its lease, heartbeat and spawn stamp. */
export function workerStatus(row: MigrationRow): WorkerStatus {
  const here = os.hostname();
  const holder = row.leaseOwner ? parseOwnerId(row.leaseOwner) : undefined;
  if (
    row.leaseOwner &&
    row.heartbeatAgeSeconds !== null &&
    row.heartbeatAgeSeconds < STALE_HEARTBEAT_SECONDS
  ) {
    if (holder && holder.host === here && !workerProcessAlive(holder.pid, row.name)) return "dead";
    return "alive";
  }
  if (row.spawnAgeSeconds !== null && row.spawnAgeSeconds < SPAWN_GRACE_SECONDS) {
    const spawnedHere = row.workerHost === here && row.workerPid !== null;
    if (!spawnedHere || workerProcessAlive(row.workerPid as number, row.name)) return "starting";
  }
  return "dead";
}

/** Starts a detached worker for the migration; returns its pid and log file. */
export function spawnWorker(
  spec: MigrationSpec,
  options: SpawnOptions = {},
): { pid: number; log: string } {
  const logDir = options.logDir ?? path.join(os.tmpdir(), "pgmigrate");
  fs.mkdirSync(logDir, { recursive: true });
  const log = path.join(logDir, `${spec.migrationName}.log`);
  const fd = fs.openSync(log, "a", 0o600);
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (spec.source.password !== undefined) env.PGMIGRATE_SOURCE_PASSWORD = spec.source.password;
  if (spec.target.password !== undefined) env.PGMIGRATE_TARGET_PASSWORD = spec.target.password;
  try {
    const child = spawn(
      process.execPath,
      [
        WORKER_ENTRY,
        "runtime",
        "--server",
        controlUrl(spec.target, spec.controlDatabase),
        "--migration-name",
        spec.migrationName,
      ],
      { detached: true, stdio: ["ignore", fd, fd], env, cwd: os.tmpdir() },
    );
    // A failed exec is reported asynchronously; the next ensureWorker notices the dead worker.
    child.on("error", () => undefined);
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start ${process.execPath}`);
    return { pid: child.pid, log };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Spawns a worker for the active migration when its worker is dead (or `restart`, which first
 * asks a live local worker to stop). At most one spawn per grace period, whoever asks.
 */
export async function ensureLocalWorker(
  db: Queryable,
  spec: MigrationSpec,
  options: SpawnOptions & { restart?: boolean; row?: MigrationRow } = {},
): Promise<boolean> {
  const row = options.row ?? (await getMigrationRow(db, spec.migrationName));
  if (!row || row.endedOn) return false;
  const status = workerStatus(row);
  if (status !== "dead" && !options.restart) return false;
  const holder = row.leaseOwner ? parseOwnerId(row.leaseOwner) : undefined;
  if (holder && holder.host === os.hostname()) {
    if (!workerProcessAlive(holder.pid, spec.migrationName)) {
      await clearDeadLease(db, spec.migrationName, row.leaseOwner as string);
    } else if (options.restart && holder.pid !== process.pid) {
      // SIGTERM: the worker stops its streams and releases the lease for its successor.
      process.kill(holder.pid, "SIGTERM");
    }
  }
  if (!(await reserveSpawn(db, spec.migrationName, options.restart ? 0 : SPAWN_GRACE_SECONDS))) {
    return false;
  }
  const worker = spawnWorker(spec, options);
  const host = os.hostname();
  await recordSpawn(db, spec.migrationName, { ...worker, host });
  await addEvent(
    db,
    spec.migrationName,
    "info",
    `started a local worker (pid ${worker.pid} on ${host}); log: ${worker.log}`,
  );
  return true;
}
