// Cutover of an online migration. One cutover LSN for all databases (the source's WAL insert
// position, recorded once): each stream applies every transaction committed before it and none
// at or after it, stops, and the database is recorded as drained — from then on its slot is
// never needed again and a cancel is refused. Then per database: restore the triggers disabled
// for apply, copy sequence values, refresh materialized views, verify; then drop the slot and
// the publication, restore replica identities and drop our bookkeeping on the target.
// Every step is idempotent and retries transient errors (servers restarting, connections lost)
// for the outage window; a successor worker resumes from what the control store records.
import { currentWalLsn, dropSlotAndPublication, dropTargetBookkeeping } from "../cdc";
import { missingSequences, refreshMaterializedViews, syncSequences } from "../clone";
import { markDrained, setCutoverLsn, type DatabaseRow } from "../control/progress";
import { MigrationError } from "../pg/errors";
import { publicationName, slotName } from "../pg/names";
import { retryTransient } from "../pg/retry";
import {
  checkpoint,
  dbRows,
  dbStep,
  forEachDatabase,
  transition,
  type MigrationContext,
} from "./context";
import { errorText } from "./journal";
import { restoreReplicaIdentities } from "./replica-identity";
import { recordStreamOwner } from "./shared-copy";
import { testPoint } from "./test-hooks";
import { restoreTargetTriggers } from "./triggers";
import { concludeVerification, verifyOne } from "./verification";

/** Runs the cutover to the end: Succeeded/Completed, or throws (the caller fails or cancels). */
export async function cutover(ctx: MigrationContext): Promise<void> {
  const signal = AbortSignal.any([ctx.lease.stop, ctx.lease.cancel]);
  await step(ctx, "entering the cutover", signal, () =>
    transition(ctx, "InProgress", "CompletingMigration"),
  );
  const rows = await step(ctx, "reading the progress", signal, () => dbRows(ctx));
  const pending = rows.filter((r) => r.step !== "completed");
  const undrained = pending.filter((r) => r.step !== "drained");
  if (undrained.length > 0) await drain(ctx, undrained, signal);
  await testPoint("drained");

  // Past the drain nothing can be rolled back: only a stopping worker ends the work here.
  const stop = ctx.lease.stop;
  const names = pending.map((r) => r.name);
  await forEachDatabase(names, stop, (database) => completeTarget(ctx, database, stop));
  checkpoint(ctx);
  await step(ctx, "concluding the verification", stop, () => concludeVerification(ctx));
  await forEachDatabase(names, stop, (database) => cleanUp(ctx, database, stop));
  await step(ctx, "completing the migration", stop, () =>
    transition(ctx, "Succeeded", "Completed"),
  );
}

/**
 * Stops every stream of `rows` exactly at the cutover LSN (recorded before, or read now) and
 * records each database as drained.
 */
async function drain(
  ctx: MigrationContext,
  rows: readonly DatabaseRow[],
  signal: AbortSignal,
): Promise<void> {
  const { spec } = ctx;
  // Streams hold every transaction not yet applied from now until the position is known: one
  // committed after the position is read must not slip through meanwhile.
  let settle: { resolve: (lsn: string) => void; reject: (err: unknown) => void } | undefined;
  const position = new Promise<string>((resolve, reject) => (settle = { resolve, reject }));
  position.catch(() => undefined); // the streams see a rejection; so does the code below
  for (const row of rows) ctx.streams.stopAt(row.name, position);
  let cutoverLsn: string;
  try {
    const recorded = rows.find((r) => r.cutoverLsn !== null)?.cutoverLsn;
    const read =
      recorded ??
      (await step(ctx, "reading the source's WAL position", signal, () =>
        currentWalLsn(spec.source, rows[0].name),
      ));
    cutoverLsn = await step(ctx, "recording the cutover LSN", signal, () =>
      setCutoverLsn(
        ctx.db,
        ctx.lease,
        rows.map((r) => r.name),
        read,
      ),
    );
    settle?.resolve(cutoverLsn);
  } catch (err) {
    settle?.reject(err);
    throw err;
  }
  await testPoint("cutover-lsn");

  await forEachDatabase(
    rows.map((r) => r.name),
    signal,
    async (database, dbSignal) => {
      await step(ctx, "recording the cutover", dbSignal, () =>
        dbStep(
          ctx,
          database,
          "streaming",
          "InProgress",
          `Cutover: applying every change committed before ${cutoverLsn}, none after`,
        ),
      );
      // The stream itself waits out outages (and resumes from the target's stored position).
      await ctx.streams.waitForLsn(database, cutoverLsn, dbSignal);
      const stats = await ctx.streams.stop(database);
      const applied = {
        lsn: stats?.appliedLsn ?? null,
        commitTime: stats?.appliedCommitTime ?? null,
      };
      const message =
        `Cutover: applied every change committed before ${cutoverLsn}` +
        (applied.lsn ? `; last applied commit ${applied.lsn}` : "");
      const drained = await step(ctx, "recording the drain", dbSignal, () =>
        markDrained(ctx.db, ctx.lease, database, message, applied),
      );
      // A cancel requested before the drain was recorded wins: the caller rolls back.
      if (!drained) throw new MigrationError("cancel", "cancel requested");
      await recordStreamOwner(ctx, database, "done");
      await ctx.journal.event("info", message, database);
    },
  );
}

/** Makes the drained target database work as the source did: triggers, sequences, views; then verifies it. */
async function completeTarget(
  ctx: MigrationContext,
  database: string,
  signal: AbortSignal,
): Promise<void> {
  const { spec } = ctx;
  // Nothing is applied any more: the target's triggers work as on the source from now on.
  const restored = await step(ctx, "restoring the target's triggers", signal, () =>
    restoreTargetTriggers(spec.target, database),
  );
  if (restored > 0) {
    await ctx.journal.event("info", `restored ${restored} trigger(s) on the target`, database);
  }
  const sequences = await step(ctx, "copying sequence values", signal, () =>
    syncSequences(spec, database),
  );
  await ctx.journal.event("info", `copied ${sequences.synced} sequence value(s)`, database);
  if (sequences.missing.length > 0) {
    await ctx.journal.event("warning", missingSequences(sequences.missing), database);
  }
  const matviews = await step(ctx, "refreshing materialized views", signal, () =>
    refreshMaterializedViews(spec, database),
  );
  if (matviews > 0) {
    await ctx.journal.event("info", `refreshed ${matviews} materialized view(s)`, database);
  }
  await step(ctx, "verifying", signal, () => verifyOne(ctx, database));
}

/** Drops what the migration keeps on both sides for `database` and marks it completed. */
async function cleanUp(
  ctx: MigrationContext,
  database: string,
  signal: AbortSignal,
): Promise<void> {
  const { spec } = ctx;
  await step(ctx, "dropping the replication slot and publication", signal, () =>
    dropSlotAndPublication(
      spec.source,
      database,
      slotName(spec.migrationName, database),
      publicationName(spec.migrationName),
    ),
  );
  await testPoint("source-dropped");
  // Only now: with the publication gone, an identity-less table is writable on the source.
  const identities = await step(ctx, "restoring replica identities", signal, () =>
    restoreReplicaIdentities(spec, database, "cutover"),
  );
  if (identities > 0) {
    await ctx.journal.event(
      "info",
      `restored the replica identity of ${identities} table(s)`,
      database,
    );
  }
  await step(ctx, "dropping the bookkeeping on the target", signal, () =>
    dropTargetBookkeeping(spec.target, database),
  );
  await step(ctx, "completing the database", signal, () =>
    dbStep(ctx, database, "completed", "Succeeded", "Cutover completed"),
  );
}

/** One idempotent step of the cutover, run again after transient errors within the outage window. */
function step<T>(
  ctx: MigrationContext,
  what: string,
  signal: AbortSignal,
  work: () => Promise<T>,
): Promise<T> {
  return retryTransient(work, {
    signal,
    onRetry: (attempt, delayMs, err) =>
      ctx.journal.event(
        "warning",
        `cutover: ${what} failed (${errorText(err, [])}); trying again in ${(delayMs / 1000).toFixed(1)} s (attempt ${attempt + 1})`,
      ),
  });
}
