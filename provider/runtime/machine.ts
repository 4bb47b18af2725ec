// The state machine of one migration, resumable from whatever state the control store holds:
// PerformingPreRequisiteSteps → ValidationInProgress → MigratingData → (online)
// WaitingForCutoverTrigger → CompletingMigration → Succeeded; cancel and failure from anywhere.
import { migrateRoles } from "../clone";
import { CRASH_LIMIT } from "../control/crashes";
import { getMigrationRow, setValidation, type MigrationRow } from "../control/migrations";
import { MigrationError } from "../pg/errors";
import { validateMigration } from "../validate";
import {
  checkpoint,
  dbRows,
  dbStep,
  forEachDatabase,
  transition,
  WorkerStopped,
  type MigrationContext,
} from "./context";
import { copyDatabase } from "./load";
import { cutover } from "./cutover";
import { errorText } from "./journal";
import { cancelMigration, failMigration } from "./rollback";
import { concludeVerification, verifyOne } from "./verification";

type Phase = "start" | "migrate" | "wait" | "cutover";

function resumePhase(row: MigrationRow): Phase {
  if (row.state === "WaitingForUserAction") return "wait";
  if (row.substate === "CompletingMigration") return "cutover";
  if (row.substate === "MigratingData") return "migrate";
  return "start";
}

/** Drives the migration until it ends or this worker must stop; never throws. */
export async function runMigration(ctx: MigrationContext): Promise<void> {
  const row = await getMigrationRow(ctx.db, ctx.spec.migrationName);
  if (!row || row.endedOn) return;
  if (row.crashCount >= CRASH_LIMIT) {
    // Starting again would crash the same way: end it, and drop the slot that retains WAL.
    await conclude(ctx, crashLoop(row));
    return;
  }
  try {
    checkpoint(ctx);
    await drive(ctx, resumePhase(row));
  } catch (err) {
    await conclude(ctx, err);
  } finally {
    await ctx.streams.stopAll();
  }
}

function crashLoop(row: MigrationRow): MigrationError {
  return new MigrationError(
    "runtime",
    `the worker crashed ${row.crashCount} times in a row at the same point of the migration ` +
      `(${row.state}/${row.substate}): ${row.crashError ?? "unknown error"}`,
    { code: "PGM_CRASH_LOOP" },
  );
}

// Stopping (lease lost, worker shutting down) leaves state, slots and streams' positions for
// the successor; a cancel rolls back; anything else fails the migration.
async function conclude(ctx: MigrationContext, err: unknown): Promise<void> {
  try {
    // Rolling back drops slots and databases: only while the lease is still ours.
    await ctx.lease.refresh();
    if (ctx.lease.stop.aborted) {
      await ctx.journal.event("info", `worker stopping: ${errorText(ctx.lease.stop.reason, [])}`);
      return;
    }
    if (ctx.lease.cancel.aborted) {
      await cancelMigration(ctx);
      return;
    }
    if (err instanceof WorkerStopped) {
      await ctx.journal.event("info", `worker stopping: ${errorText(err, [])}`);
      return;
    }
    await ctx.journal.event("error", errorText(err, []));
    await failMigration(ctx, err);
  } catch (cleanupErr) {
    // The control store itself is unreachable or the lease is gone: a successor resumes.
    await ctx.journal.event("error", `could not conclude: ${errorText(cleanupErr, [])}`);
  }
}

async function drive(ctx: MigrationContext, phase: Phase): Promise<void> {
  const online = ctx.spec.mode === "Online";
  if (phase === "start") {
    const proceed = await prerequisitesAndValidation(ctx);
    if (!proceed) return;
    phase = "migrate";
  }
  if (phase === "migrate") {
    await transition(ctx, "InProgress", "MigratingData");
    await migrateData(ctx);
    if (!online) {
      await finishOffline(ctx);
      return;
    }
  } else {
    // Resuming an online migration past its copy: streams restart from the stored positions.
    await resumeStreams(ctx);
  }
  if (phase !== "cutover") {
    await ctx.lease.refresh();
    if (ctx.lease.requestedAction !== "cutover") {
      await transition(ctx, "WaitingForUserAction", "WaitingForCutoverTrigger");
      await waitForCutoverRequest(ctx);
    }
  }
  await cutover(ctx);
}

/** False when the migration ended here (Validate only, or validation failed). */
async function prerequisitesAndValidation(ctx: MigrationContext): Promise<boolean> {
  const { spec } = ctx;
  await transition(ctx, "InProgress", "PerformingPreRequisiteSteps");
  if (spec.option === "Migrate") return true;
  await transition(ctx, "InProgress", "ValidationInProgress");
  const report = await validateMigration(spec);
  await setValidation(ctx.db, ctx.lease, report);
  checkpoint(ctx);
  const failed = report.status === "Failed";
  if (failed) {
    for (const database of spec.databases) {
      await dbStep(ctx, database, "completed", "ValidationFailed", "Validation failed");
    }
    await transition(
      ctx,
      "ValidationFailed",
      "Failed",
      "premigration validation failed; see validation",
    );
    return false;
  }
  if (spec.option === "Validate") {
    for (const database of spec.databases) {
      await dbStep(ctx, database, "completed", "Succeeded", "Validation succeeded");
    }
    await transition(ctx, "Succeeded", "Completed");
    return false;
  }
  return true;
}

async function migrateData(ctx: MigrationContext): Promise<void> {
  const { spec } = ctx;
  if (spec.migrateRoles) {
    const roles = await migrateRoles(spec);
    if (roles.created.length > 0) {
      await ctx.journal.event("info", `created roles on the target: ${roles.created.join(", ")}`);
    }
    for (const warning of roles.warnings) await ctx.journal.event("warning", warning);
  }
  const rows = new Map((await dbRows(ctx)).map((r) => [r.name, r]));
  const signal = AbortSignal.any([ctx.lease.stop, ctx.lease.cancel]);
  await forEachDatabase(spec.databases, signal, async (database, dbSignal) => {
    const row = rows.get(database);
    if (!row) throw new Error(`no progress row for database "${database}"`);
    await copyDatabase(ctx, row, dbSignal);
  });
  checkpoint(ctx);
}

async function finishOffline(ctx: MigrationContext): Promise<void> {
  const signal = AbortSignal.any([ctx.lease.stop, ctx.lease.cancel]);
  await forEachDatabase(ctx.spec.databases, signal, async (database) => {
    await verifyOne(ctx, database);
  });
  await concludeVerification(ctx);
  for (const database of ctx.spec.databases) {
    await dbStep(ctx, database, "completed", "Succeeded", "Migration completed");
  }
  await transition(ctx, "Succeeded", "Completed");
}

async function resumeStreams(ctx: MigrationContext): Promise<void> {
  for (const row of await dbRows(ctx)) {
    // A drained database needs its stream (and slot) never again.
    if (row.step === "completed" || row.step === "drained" || ctx.streams.has(row.name)) continue;
    await copyDatabase(ctx, row, AbortSignal.any([ctx.lease.stop, ctx.lease.cancel]));
  }
}

/** Waits for the cutover request; a cancel, a stop or a dead stream ends the wait by throwing. */
async function waitForCutoverRequest(ctx: MigrationContext): Promise<void> {
  const interrupted = new Promise<never>((_, reject) => {
    const stop = (): void => reject(new Error("interrupted while waiting for the cutover"));
    ctx.lease.stop.addEventListener("abort", stop, { once: true });
    ctx.lease.cancel.addEventListener("abort", stop, { once: true });
    if (ctx.lease.stop.aborted || ctx.lease.cancel.aborted) stop();
  });
  interrupted.catch(() => undefined);
  await Promise.race([ctx.lease.cutoverRequested(), interrupted, ctx.streams.failure]);
  checkpoint(ctx);
}
