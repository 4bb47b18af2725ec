// The read side of the facade (re-exported by api/index.ts): outputs, lists, the
// stored spec and table progress. Reads work before anything was created: they find nothing.
import { withControl, type ControlLocation, type Queryable } from "../control/db";
import {
  getMigrationRow,
  listMigrationRows,
  storedRuntime,
  type StoredSpec,
} from "../control/migrations";
import { stateChanges } from "../control/events";
import { latencySamples, type LatencySample } from "../control/latency";
import { readOutputs } from "../control/outputs";
import { tableProgress, type TableProgressRow } from "../control/progress";
import { unitsOf, type UnitView } from "../control/units";
import { MigrationError, pgFields, SQLSTATE } from "../pg/errors";
import { migrationNameProblem } from "../pg/names";
import { missingWorkerWarning, workerStatus, type WorkerStatus } from "../runtime/supervise";
import type { MigrationOutputs, MigrationState, RuntimeOptions } from "../spec/types";

/** One row of `pgmigrate list` (the reference service's columns). */
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

// Reads must work before anything was ever created: no control database or schema = nothing.
const NOTHING_YET: readonly string[] = [SQLSTATE.undefinedTable, SQLSTATE.invalidCatalogName];

/** Runs a read on the control store; `empty` when it does not exist yet. */
export async function readControl<T>(
  at: ControlLocation,
  empty: T,
  fn: (db: Queryable) => Promise<T>,
): Promise<T> {
  try {
    return await withControl(at, fn);
  } catch (err) {
    if (NOTHING_YET.includes(pgFields(err).code ?? "")) return empty;
    throw MigrationError.wrap("control", err, "reading the migration records on the target server");
  }
}

/** Live outputs from the control store; undefined if no such migration. */
export async function getMigration(
  at: ControlLocation,
  name: string,
): Promise<MigrationOutputs | undefined> {
  return readControl(at, undefined, (db) => readOutputs(db, name));
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

/** Whether `name` is a valid migration name that no migration on this server uses. */
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

/** What the control store keeps about a migration for whoever looks after it later (the CLI). */
export interface StoredMigration {
  /** The resolved spec without passwords. */
  readonly spec: StoredSpec;
  readonly runtime: RuntimeOptions;
  readonly state: MigrationState;
  readonly ended: boolean;
  readonly worker: {
    readonly status: WorkerStatus;
    /** Seconds since the last heartbeat; null when no worker ever ran it. */
    readonly heartbeatAgeSeconds: number | null;
    /** External runtime whose worker is gone: what to run (nothing here will spawn it). */
    readonly warning?: string;
  };
}

/** The stored spec (without passwords), runtime and worker health; undefined if no such migration. */
export async function getStoredSpec(
  at: ControlLocation,
  name: string,
): Promise<StoredMigration | undefined> {
  const row = await readControl(at, undefined, (db) => getMigrationRow(db, name));
  if (!row) return undefined;
  const warning = missingWorkerWarning(row, at);
  return {
    spec: row.spec,
    runtime: storedRuntime(row),
    state: row.state,
    ended: row.endedOn !== null,
    worker: {
      status: workerStatus(row),
      heartbeatAgeSeconds: row.heartbeatAgeSeconds,
      ...(warning ? { warning } : {}),
    },
  };
}

/**
 * Per-table copy progress of a migration, by database (all its databases, or `databases`),
 * largest tables first. Empty when there is no such migration.
 */
export async function getTableProgress(
  at: ControlLocation,
  name: string,
  databases?: readonly string[],
): Promise<Record<string, TableProgressRow[]>> {
  return readControl(at, {}, async (db) => {
    const names = databases ?? (await getMigrationRow(db, name))?.spec.databases ?? [];
    const progress: Record<string, TableProgressRow[]> = {};
    for (const database of names) progress[database] = await tableProgress(db, name, database);
    return progress;
  });
}

/**
 * A migration's work units and who runs or ran each (the newest snapshot's copy units, and each
 * database's snapshot and stream); [] when none (not a pool migration, or no such migration).
 */
export async function getWorkUnits(at: ControlLocation, name: string): Promise<UnitView[]> {
  return readControl(at, [], (db) => unitsOf(db, name));
}

/** The latency history the worker recorded (newest `limit` samples, oldest first); [] when none. */
export async function getLatencyHistory(
  at: ControlLocation,
  name: string,
  limit?: number,
): Promise<LatencySample[]> {
  return readControl(at, [], (db) => latencySamples(db, name, limit));
}

/** A state the migration was in: when it entered it and for how long (to now when current). */
export interface StateSpan {
  readonly state: string;
  readonly substate: string;
  readonly enteredAt: string;
  readonly seconds: number;
}

/** The states a migration went through, oldest first, with the time spent in each. */
export async function getStateHistory(at: ControlLocation, name: string): Promise<StateSpan[]> {
  return readControl(at, [], async (db) => {
    const entries = await stateChanges(db, name);
    const row = await getMigrationRow(db, name);
    // The current state lasts until now; the final state of an ended migration, no time.
    const end = row?.endedOn?.getTime() ?? Date.now();
    return entries.map((entry, i) => {
      const from = entry.at.getTime();
      const until = entries[i + 1]?.at.getTime() ?? Math.max(end, from);
      return {
        state: entry.state,
        substate: entry.substate,
        enteredAt: entry.at.toISOString(),
        seconds: Math.max(0, Math.round((until - from) / 1000)),
      };
    });
  });
}
