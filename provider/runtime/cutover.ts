// Cutover of an online migration: per database, record the source's current WAL position
// (cutoverLsn), apply the backlog up to it however large, stop the stream, restore the triggers
// disabled for apply, copy sequence values, refresh materialized views, verify, then drop the
// slot and the publication, restore replica identities, and drop our bookkeeping on the target.
import { currentWalLsn, dropSlotAndPublication, dropTargetBookkeeping } from "../cdc";
import { refreshMaterializedViews, syncSequences } from "../clone";
import { setCutoverLsn } from "../control/progress";
import { publicationName, slotName } from "../pg/names";
import {
  checkpoint,
  dbRows,
  dbStep,
  forEachDatabase,
  transition,
  type MigrationContext,
} from "./context";
import { restoreReplicaIdentities } from "./replica-identity";
import { restoreTargetTriggers } from "./triggers";
import { concludeVerification, verifyOne } from "./verification";

/** Runs the cutover to the end: Succeeded/Completed, or throws (the caller fails or cancels). */
export async function cutover(ctx: MigrationContext): Promise<void> {
  const { spec } = ctx;
  await transition(ctx, "InProgress", "CompletingMigration");
  const pending = (await dbRows(ctx)).filter((r) => r.step !== "completed").map((r) => r.name);
  const signal = AbortSignal.any([ctx.lease.stop, ctx.lease.cancel]);

  await forEachDatabase(pending, signal, async (database, dbSignal) => {
    const cutoverLsn = await currentWalLsn(spec.source, database);
    await setCutoverLsn(ctx.db, ctx.lease, database, cutoverLsn);
    await dbStep(
      ctx,
      database,
      "streaming",
      "InProgress",
      `Cutover: applying changes up to ${cutoverLsn}`,
    );
    await ctx.streams.waitForLsn(database, cutoverLsn, dbSignal);
    await ctx.streams.stop(database);
    // Nothing is applied any more: the target's triggers work as on the source from now on.
    const restored = await restoreTargetTriggers(spec.target, database);
    if (restored > 0) {
      await ctx.journal.event("info", `restored ${restored} trigger(s) on the target`, database);
    }
    checkpoint(ctx);
    const sequences = await syncSequences(spec, database);
    await ctx.journal.event("info", `copied ${sequences} sequence value(s)`, database);
    const matviews = await refreshMaterializedViews(spec, database);
    if (matviews > 0) {
      await ctx.journal.event("info", `refreshed ${matviews} materialized view(s)`, database);
    }
    await verifyOne(ctx, database);
  });

  checkpoint(ctx);
  await concludeVerification(ctx);
  await forEachDatabase(pending, signal, async (database) => {
    await dropSlotAndPublication(
      spec.source,
      database,
      slotName(spec.migrationName, database),
      publicationName(spec.migrationName),
    );
    // Only now: with the publication gone, an identity-less table is writable on the source.
    const identities = await restoreReplicaIdentities(spec, database, "cutover");
    if (identities > 0) {
      await ctx.journal.event(
        "info",
        `restored the replica identity of ${identities} table(s)`,
        database,
      );
    }
    await dropTargetBookkeeping(spec.target, database);
    await dbStep(ctx, database, "completed", "Succeeded", "Cutover completed");
  });
  await transition(ctx, "Succeeded", "Completed");
}
