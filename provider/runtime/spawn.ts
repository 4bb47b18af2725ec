// The local spawner: starts the worker (`runtime/main.js runtime --server URL --migration-name N`)
// as a detached process that outlives its caller (a built environment carrying the passwords,
// never argv; output to a private log file, see log-file.ts), and tells a live worker from a dead one.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Queryable } from "../control/db";
import { addEvent } from "../control/events";
import { clearDeadLease, recordSpawn, releaseSpawn, reserveSpawn } from "../control/lease";
import { getMigrationRow, type MigrationRow } from "../control/migrations";
import { childEnv } from "../pg/child-env";
import { MigrationError } from "../pg/errors";
import { processAlive, processArgv } from "../pg/process";
import type { Endpoint, MigrationSpec } from "../spec/types";
import { parseOwnerId } from "./lease";
import { openWorkerLog } from "./log-file";

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

/**
 * The worker's environment, built rather than inherited: paths, locale, CA settings (and the
 * NODE_OPTIONS that choose the CA store), the password file's path, and the two passwords it
 * reads (PGMIGRATE_SOURCE_PASSWORD/PGMIGRATE_TARGET_PASSWORD).
 * Nothing else of the caller's (tokens, cloud credentials) reaches it.
 */
export function workerEnv(spec: MigrationSpec): NodeJS.ProcessEnv {
  return childEnv({
    PGPASSFILE: process.env.PGPASSFILE,
    NODE_OPTIONS: trustOptions(process.env.NODE_OPTIONS),
    PGMIGRATE_SOURCE_PASSWORD: spec.source.password,
    PGMIGRATE_TARGET_PASSWORD: spec.target.password,
  });
}

/** Node options that change which CAs Node trusts: the worker must trust what its caller did. */
const TRUST_OPTION =
  /^--(use-openssl-ca|use-bundled-ca|use-system-ca|openssl-config=\S+|openssl-shared-config)$/;

/** Of the caller's NODE_OPTIONS, only those deciding the trust store (nothing else is needed). */
export function trustOptions(nodeOptions: string | undefined): string | undefined {
  const kept = (nodeOptions ?? "").split(/\s+/).filter((o) => TRUST_OPTION.test(o));
  return kept.length > 0 ? kept.join(" ") : undefined;
}

function spawnError(err: unknown): MigrationError {
  const code = (err as NodeJS.ErrnoException).code;
  const why =
    code === "E2BIG"
      ? "its environment, which carries the passwords, is larger than the operating system allows (E2BIG)"
      : code === "ENOENT"
        ? `${process.execPath} does not exist (ENOENT)`
        : (err as Error).message;
  return new MigrationError("runtime", `could not start a local worker: ${why}`, {
    code: "PGM_SPAWN",
    cause: err,
  });
}

/** Starts a detached worker for the migration; returns its pid and log file once it runs. */
export async function spawnWorker(
  spec: MigrationSpec,
  options: SpawnOptions = {},
): Promise<{ pid: number; log: string }> {
  const { fd, log } = openWorkerLog(spec, options.logDir);
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
      { detached: true, stdio: ["ignore", fd, fd], env: workerEnv(spec), cwd: os.tmpdir() },
    );
    // Some exec failures (ENOENT, EACCES) are reported by an event, others (E2BIG) thrown above.
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", reject);
    });
    child.on("error", () => undefined);
    child.unref();
    if (child.pid === undefined) throw new Error(`${process.execPath} started without a pid`);
    return { pid: child.pid, log };
  } catch (err) {
    throw spawnError(err);
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
  let worker: { pid: number; log: string };
  try {
    worker = await spawnWorker(spec, options);
  } catch (err) {
    // The next call may try again at once: nothing runs, so nothing must wait for a grace period.
    await releaseSpawn(db, spec.migrationName);
    const error = MigrationError.wrap("runtime", err, "could not start a local worker");
    await addEvent(db, spec.migrationName, "error", error.message);
    throw error;
  }
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
