// What every phase of a running migration shares: the spec (with passwords), the control store,
// the lease and its signals, the journal and the change streams.
import type { Queryable } from "../control/db";
import { setState } from "../control/migrations";
import {
  databaseRows,
  setDatabaseStep,
  type DatabaseRow,
  type DatabaseStep,
} from "../control/progress";
import { MigrationError } from "../pg/errors";
import type { MigrationSpec, MigrationState, MigrationSubstate } from "../spec/types";
import type { Journal } from "./journal";
import type { LeaseKeeper } from "./lease";
import type { StreamSet } from "./streams";

export interface MigrationContext {
  readonly spec: MigrationSpec;
  readonly db: Queryable;
  readonly lease: LeaseKeeper;
  readonly journal: Journal;
  readonly streams: StreamSet;
  /** This process's id among the runtimes (pgmigrate.runtimes): owner of the units it holds. */
  readonly runtimeId: string;
}

/** Thrown when work stops because the lease was lost or the worker is stopping. */
export class WorkerStopped extends Error {
  override readonly name = "WorkerStopped";
}

/** Moves the migration to a state and logs it; a lost lease throws (and stops the worker). */
export async function transition(
  ctx: MigrationContext,
  state: MigrationState,
  substate: MigrationSubstate,
  error: string | null = null,
): Promise<void> {
  await setState(
    ctx.db,
    ctx.lease,
    state,
    substate,
    error === null ? null : ctx.journal.redact(error),
  );
  await ctx.journal.event(
    error ? "error" : "info",
    `state ${state}/${substate}${error ? ": " + error : ""}`,
  );
}

/** Updates one database's step, user-visible state and message. */
export async function dbStep(
  ctx: MigrationContext,
  database: string,
  step: DatabaseStep,
  migrationState: string,
  message: string,
): Promise<void> {
  await setDatabaseStep(ctx.db, ctx.lease, database, step, migrationState, message);
  await ctx.journal.event("info", message, database);
}

export async function dbRows(ctx: MigrationContext): Promise<DatabaseRow[]> {
  return databaseRows(ctx.db, ctx.spec.migrationName);
}

/** Throws if the work must stop now (lease lost, worker stopping, cancel requested). */
export function checkpoint(ctx: MigrationContext): void {
  if (ctx.lease.stop.aborted) throw new WorkerStopped(String(ctx.lease.stop.reason));
  if (ctx.lease.cancel.aborted) throw new MigrationError("cancel", "cancel requested");
}

/**
 * Runs `work` for every database at once. The first failure aborts the others (through the
 * signal they receive) and is rethrown once all have settled, so nothing runs behind our back.
 */
export async function forEachDatabase(
  databases: readonly string[],
  outer: AbortSignal,
  work: (database: string, signal: AbortSignal) => Promise<void>,
): Promise<void> {
  const failed = new AbortController();
  const signal = AbortSignal.any([outer, failed.signal]);
  let first: { err: unknown } | undefined;
  await Promise.all(
    databases.map(async (database) => {
      try {
        await work(database, signal);
      } catch (err) {
        if (!first) first = { err };
        failed.abort(err);
      }
    }),
  );
  if (first) throw first.err;
}
