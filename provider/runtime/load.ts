// The base copy of one database. Online: publication, slot with exported snapshot, clone under
// that snapshot, verification under it, then the change stream from the slot's consistent
// point. Offline: clone and verification under one exported snapshot. A copy interrupted by a
// crash restarts from scratch (its snapshot died with the worker); a completed online copy
// resumes streaming.
import { createSlotWithSnapshot, dropSlotAndPublication, ensurePublication } from "../cdc";
import { cloneDatabase, exportSnapshot, prepareTargetDatabase } from "../clone";
import { addCreatedDatabase } from "../control/migrations";
import { markCopyCompleted, resetDatabase, setSlot, type DatabaseRow } from "../control/progress";
import { isTransient, MigrationError } from "../pg/errors";
import { publicationName, slotName } from "../pg/names";
import { RetryWindow, sleep } from "../pg/retry";
import { tablesWithoutReplicaIdentity } from "../validate";
import { checkpoint, dbRows, dbStep, type MigrationContext } from "./context";
import { errorText } from "./journal";
import { recordReplicaIdentities, restoreReplicaIdentities } from "./replica-identity";
import { cancelSharedCopy, onPool, recordStreamOwner, sharedCopier } from "./shared-copy";
import { suspendTargetTriggers } from "./triggers";
import { verifiesAtSnapshot, verifyCopy } from "./verification";

/**
 * How long a copy that keeps losing its connection (a server restarting, failing over) is tried
 * again: each attempt starts over from a new slot, so waiting costs nothing but time.
 */
export const COPY_RETRY_WINDOW_MS = 10 * 60_000;
const COPY_RETRY_DELAYS_MS = [2_000, 5_000, 10_000, 15_000, 30_000];
/** An attempt that lasted this long was working, not failing. */
const LONG_ATTEMPT_MS = 60_000;

/**
 * Copies `row`'s database (or resumes it) until it is copied (offline) or streaming (online).
 * A lost connection (restarted source or target) kills the copy's snapshot: the copy starts
 * over from a new slot on an emptied target, for up to COPY_RETRY_WINDOW_MS of failures.
 */
export async function copyDatabase(
  ctx: MigrationContext,
  row: DatabaseRow,
  signal: AbortSignal,
): Promise<void> {
  let current = row;
  const window = new RetryWindow(COPY_RETRY_WINDOW_MS);
  for (let attempt = 1; ; attempt++) {
    const attemptStarted = Date.now();
    try {
      if (attempt > 1) current = await currentRow(ctx, row.name);
      await copyOnce(ctx, current, signal);
      return;
    } catch (err) {
      if (signal.aborted || !isTransient(err)) throw err;
      // A long copy that lost its connection late had been working: a new window opens.
      if (!window.failed(Date.now() - attemptStarted > LONG_ATTEMPT_MS)) throw err;
      const delayMs = COPY_RETRY_DELAYS_MS[Math.min(attempt, COPY_RETRY_DELAYS_MS.length) - 1];
      await ctx.journal.event(
        "warning",
        `the copy lost a connection (${errorText(err, [])}); starting it again in ${delayMs / 1000} s (attempt ${attempt + 1}; gives up after ${COPY_RETRY_WINDOW_MS / 60_000} minutes)`,
        row.name,
      );
      await sleep(delayMs, signal);
      checkpoint(ctx);
    }
  }
}

async function currentRow(ctx: MigrationContext, database: string): Promise<DatabaseRow> {
  const found = (await dbRows(ctx)).find((r) => r.name === database);
  if (!found) throw new Error(`no progress row for database "${database}"`);
  return found;
}

async function copyOnce(
  ctx: MigrationContext,
  row: DatabaseRow,
  signal: AbortSignal,
): Promise<void> {
  const { spec } = ctx;
  const database = row.name;
  const online = spec.mode === "Online";
  if (row.copyCompleted) {
    if (online && row.consistentPoint) await startStreaming(ctx, row, row.consistentPoint);
    return;
  }
  const restart = row.step !== "pending";
  if (restart) {
    await ctx.journal.event(
      "warning",
      "the copy was interrupted; starting it again from a new snapshot on an empty target database",
      database,
    );
    if (online) {
      await dropSlotAndPublication(
        spec.source,
        database,
        slotName(spec.migrationName, database),
        publicationName(spec.migrationName),
      );
      // Recorded in the target database about to be emptied: put back while the record exists.
      await restoreReplicaIdentities(spec, database, "replicate");
    }
    // Units a pool's runtimes may still be copying under the old snapshot end first.
    await cancelSharedCopy(ctx, database);
    await resetDatabase(ctx.db, ctx.lease, database);
  }
  checkpoint(ctx);
  await dbStep(ctx, database, "preparing", "InProgress", "Preparing the target database");
  // A restart empties the target by re-creating it: it was absent or empty before our copy.
  const { created } = await prepareTargetDatabase(
    restart ? { ...spec, overwriteDbsInTarget: true } : spec,
    database,
  );
  // Interrupted while preparing, the database may be ours without being recorded yet.
  if (created && (!restart || row.step === "preparing")) {
    await addCreatedDatabase(ctx.db, ctx.lease, database);
  }
  checkpoint(ctx);

  if (!online) {
    await dbStep(ctx, database, "copying", "InProgress", "Copying schema and data");
    if (!verifiesAtSnapshot(ctx)) {
      // The clone exports its own snapshot and lets go of it as soon as the tables are copied.
      await clone(ctx, database, undefined, signal);
    } else {
      // Held here, not by the clone: the copy is verified under the same snapshot afterwards.
      const held = await exportSnapshot(spec.source, database).catch((err: unknown) => {
        throw MigrationError.wrap("clone", err, `exporting a snapshot of database "${database}"`);
      });
      try {
        await clone(ctx, database, held.snapshot, signal);
        checkpoint(ctx);
        await verifyCopy(ctx, database, held.snapshot, signal);
      } finally {
        await held.release();
      }
    }
    await markCopyCompleted(ctx.db, ctx.lease, database);
    await dbStep(ctx, database, "copied", "InProgress", "Copy completed");
    return;
  }

  await refuseUnpublishableTables(ctx, database);
  const slot = slotName(spec.migrationName, database);
  const fixed = await recordReplicaIdentities(spec, database);
  if (fixed > 0) {
    await ctx.journal.event(
      "info",
      `${fixed} source table(s) without a replica identity get REPLICA IDENTITY FULL until the migration ends`,
      database,
    );
  }
  await ensurePublication(spec.source, database, publicationName(spec.migrationName), {
    fixReplicaIdentity: spec.fixReplicaIdentity,
  });
  const snapshot = await createSlotWithSnapshot(spec.source, database, slot);
  try {
    await setSlot(ctx.db, ctx.lease, database, slot, snapshot.consistentPoint);
    await dbStep(
      ctx,
      database,
      "copying",
      "InProgress",
      `Copying schema and data under the snapshot of slot ${slot} (consistent point ${snapshot.consistentPoint})`,
    );
    await clone(ctx, database, snapshot.snapshotName, signal);
    checkpoint(ctx);
    // Before the stream starts: the target holds exactly the snapshot, nothing replicated yet.
    await verifyCopy(ctx, database, snapshot.snapshotName, signal);
  } finally {
    await snapshot.release();
  }
  await markCopyCompleted(ctx.db, ctx.lease, database);
  // Counters were reset with the copy; the fresh stream starts from zero.
  await startStreaming(ctx, { ...row, ...ZERO_COUNTERS }, snapshot.consistentPoint);
}

async function clone(
  ctx: MigrationContext,
  database: string,
  snapshot: string | undefined,
  signal: AbortSignal,
): Promise<void> {
  // A pool migration's tables are copied by every runtime of the pool (work units).
  const shared = await onPool(ctx);
  const result = await cloneDatabase({
    spec: ctx.spec,
    database,
    snapshot,
    progress: ctx.journal,
    signal,
    copier: shared ? sharedCopier(ctx, ctx.runtimeId) : undefined,
  });
  for (const warning of result.warnings) await ctx.journal.event("warning", warning, database);
  const rows = result.tables.reduce((sum, t) => sum + t.rows, 0);
  await ctx.journal.event("info", `copied ${result.tables.length} tables, ${rows} rows`, database);
}

const ZERO_COUNTERS = {
  inserts: 0,
  updates: 0,
  deletes: 0,
  truncates: 0,
  appliedChanges: 0,
  incomingChanges: 0,
};

async function startStreaming(
  ctx: MigrationContext,
  row: DatabaseRow,
  consistentPoint: string,
): Promise<void> {
  checkpoint(ctx);
  await quietTargetTriggers(ctx, row.name);
  // A cutover under way (its LSN recorded) goes on stopping exactly there.
  await ctx.streams.start(row.name, consistentPoint, row, row.cutoverLsn ?? undefined);
  await recordStreamOwner(ctx, row.name, "running");
  await dbStep(
    ctx,
    row.name,
    "streaming",
    "WaitingForCutoverTrigger",
    "Replicating changes; waiting for the cutover",
  );
}

// Before every stream start (resumes included): no target trigger may fire during apply.
async function quietTargetTriggers(ctx: MigrationContext, database: string): Promise<void> {
  const { replicaRole, disabled } = await suspendTargetTriggers(ctx.spec, database);
  if (disabled.length === 0) return;
  const names = disabled.map((t) => `${t.trigger} on ${t.schema}.${t.table}`).join(", ");
  const reason = replicaRole
    ? "they fire even under session_replication_role = replica"
    : `the target user "${ctx.spec.target.username}" may not set session_replication_role`;
  await ctx.journal.event(
    "warning",
    `disabled ${disabled.length} trigger(s) on the target while changes are applied (${reason}); they are restored at cutover: ${names}`,
    database,
  );
}

// Without `fixReplicaIdentity`, publishing such a table would make the source reject the
// application's UPDATE and DELETE on it: refuse before touching the source.
async function refuseUnpublishableTables(ctx: MigrationContext, database: string): Promise<void> {
  if (ctx.spec.fixReplicaIdentity === "full") return;
  const tables = await tablesWithoutReplicaIdentity(ctx.spec.source, database);
  if (tables.length === 0) return;
  const names = tables.map((t) => `${t.schema}.${t.name}`).join(", ");
  throw new MigrationError(
    "replicate",
    `database "${database}": tables without a primary key or replica identity cannot be replicated (${names}); add primary keys or set fixReplicaIdentity: "full"`,
  );
}
