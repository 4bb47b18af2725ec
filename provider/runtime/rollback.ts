// Cancel and failure: stop the streams and drop every slot and publication this migration made
// on the source (a forgotten slot retains WAL until the source's disk fills), and put back the
// target triggers disabled for apply; a cancel also drops the target databases this migration
// created and our bookkeeping in the others.
import { dropSlotAndPublication, dropTargetBookkeeping, sourceCleanupSql } from "../cdc";
import { dropTargetDatabase } from "../clone";
import { cancelSharedCopy } from "./shared-copy";
import { getMigrationRow } from "../control/migrations";
import { setDatabaseStep } from "../control/progress";
import { quoteIdent } from "../pg/ident";
import { publicationName, slotName, TARGET_BOOKKEEPING_SCHEMA } from "../pg/names";
import { sleep } from "../pg/retry";
import { dbRows, transition, type MigrationContext } from "./context";
import { errorText } from "./journal";
import { restoreReplicaIdentities } from "./replica-identity";
import { restoreTargetTriggers } from "./triggers";

const CLEANUP_ATTEMPTS = 4;

/** Retries a cleanup step with backoff: the source may be restarting. Returns the last error. */
async function attempt(step: () => Promise<void>): Promise<unknown> {
  let last: unknown;
  for (let i = 0; i < CLEANUP_ATTEMPTS; i++) {
    try {
      await step();
      return undefined;
    } catch (err) {
      last = err;
      await sleep(500 * 2 ** i);
    }
  }
  return last;
}

/** Drops every slot and publication of the migration; returns the problems (empty when clean). */
async function dropSourceObjects(ctx: MigrationContext): Promise<string[]> {
  const { spec } = ctx;
  const problems: string[] = [];
  await Promise.all(
    spec.databases.map(async (database) => {
      const slot = slotName(spec.migrationName, database);
      const publication = publicationName(spec.migrationName);
      const err = await attempt(() =>
        dropSlotAndPublication(spec.source, database, slot, publication),
      );
      if (err) {
        problems.push(
          `could not drop replication slot ${slot} and publication ${publication} in database ` +
            `"${database}" on the source; drop what is left, in that database, with ` +
            `${sourceCleanupSql(slot, publication)}: ${errorText(err, [spec.source.password, spec.target.password])}`,
        );
      }
    }),
  );
  return problems;
}

/** Restores the triggers disabled for apply in `database`; returns the problem, if any. */
async function restoreTriggers(
  ctx: MigrationContext,
  database: string,
  phase: "cancel" | "replicate",
): Promise<string | undefined> {
  const err = await attempt(async () => {
    const restored = await restoreTargetTriggers(ctx.spec.target, database, phase);
    if (restored > 0) {
      await ctx.journal.event("info", `restored ${restored} trigger(s) on the target`, database);
    }
  });
  if (!err) return undefined;
  return (
    `could not restore the triggers disabled in database "${database}" on the target (their states are in ` +
    `${TARGET_BOOKKEEPING_SCHEMA}.suspended_triggers): ${errorText(err, [ctx.spec.source.password, ctx.spec.target.password])}`
  );
}

/**
 * Restores the replica identities fixReplicaIdentity changed in `database`, once its slot and
 * publication are gone; returns the problem, if any.
 */
async function restoreIdentities(
  ctx: MigrationContext,
  database: string,
  phase: "cancel" | "replicate",
): Promise<string | undefined> {
  if (ctx.spec.fixReplicaIdentity !== "full") return undefined;
  const err = await attempt(async () => {
    const restored = await restoreReplicaIdentities(ctx.spec, database, phase);
    if (restored > 0) {
      await ctx.journal.event(
        "info",
        `restored the replica identity of ${restored} table(s)`,
        database,
      );
    }
  });
  if (!err) return undefined;
  return (
    `could not restore the replica identities of database "${database}" (recorded in ` +
    `${TARGET_BOOKKEEPING_SCHEMA}.replica_identities on the target): ${errorText(err, [ctx.spec.source.password, ctx.spec.target.password])}`
  );
}

/** Cancels: streams stopped, source cleaned, created target databases dropped → Canceled. */
export async function cancelMigration(ctx: MigrationContext): Promise<void> {
  const { spec } = ctx;
  await ctx.journal.event("info", "cancel requested: rolling back");
  await ctx.streams.stopAll();
  // No runtime of a pool may go on copying into a database about to be dropped.
  await attempt(() => cancelSharedCopy(ctx));
  const problems = await dropSourceObjects(ctx);
  const row = await getMigrationRow(ctx.db, spec.migrationName);
  const created = new Set(row?.createdDatabases ?? []);
  // Triggers are disabled only once a copy has completed, just before its stream starts.
  const copied = new Set((await dbRows(ctx)).filter((r) => r.copyCompleted).map((r) => r.name));
  for (const database of spec.databases) {
    // The record lives in the target database: restore before it may be dropped.
    const identities =
      problems.length === 0 ? await restoreIdentities(ctx, database, "cancel") : undefined;
    if (identities) problems.push(identities);
    if (created.has(database)) {
      const err = await attempt(() => dropTargetDatabase(spec, database));
      if (err) problems.push(`could not drop target database "${database}": ${errorText(err, [])}`);
    } else {
      // A database we did not create stays: its triggers go back to how they were, and only
      // then are the records of their states dropped with our bookkeeping.
      const problem = copied.has(database)
        ? await restoreTriggers(ctx, database, "cancel")
        : undefined;
      if (problem) problems.push(problem);
      else await attempt(() => dropTargetBookkeeping(spec.target, database));
    }
    await setDatabaseStep(
      ctx.db,
      ctx.lease,
      database,
      "completed",
      "Canceled",
      created.has(database) ? "Canceled; the target database was dropped" : "Canceled",
    );
  }
  if (problems.length > 0) {
    await transition(ctx, "Failed", "Failed", `cancel incomplete: ${problems.join("; ")}`);
    return;
  }
  await transition(ctx, "Canceled", "Completed");
}

/**
 * Fails: streams stopped, source cleaned, triggers and replica identities restored, our
 * bookkeeping dropped from the target databases, error recorded (redacted) with what is left on
 * the target and how to remove it → Failed/Failed.
 */
export async function failMigration(ctx: MigrationContext, error: unknown): Promise<void> {
  const { spec } = ctx;
  const message = ctx.journal.redact(errorText(error, []));
  await ctx.streams.stopAll();
  await attempt(() => cancelSharedCopy(ctx));
  const problems = await dropSourceObjects(ctx);
  const rows = await dbRows(ctx);
  // Databases whose restore failed keep the bookkeeping: it records what to restore by hand.
  const unrestored = new Set<string>();
  // Failed is final: whatever the target holds, its triggers work as on the source again.
  const restored = await Promise.all(
    rows
      .filter((r) => r.copyCompleted && r.step !== "completed")
      .map(async (r) => ({
        database: r.name,
        problem: await restoreTriggers(ctx, r.name, "replicate"),
      })),
  );
  for (const { database, problem } of restored) {
    if (!problem) continue;
    problems.push(problem);
    unrestored.add(database);
  }
  if (problems.length === 0) {
    for (const row of rows) {
      const problem = await restoreIdentities(ctx, row.name, "replicate");
      if (!problem) continue;
      problems.push(problem);
      unrestored.add(row.name);
    }
  } else if (spec.fixReplicaIdentity === "full") {
    for (const row of rows) unrestored.add(row.name);
  }
  for (const row of rows) {
    if (unrestored.has(row.name)) continue;
    const err = await attempt(() => dropTargetBookkeeping(spec.target, row.name));
    if (err) {
      problems.push(
        `could not drop schema ${TARGET_BOOKKEEPING_SCHEMA} in database "${row.name}" on the target: ${errorText(err, [spec.source.password, spec.target.password])}`,
      );
      unrestored.add(row.name);
    }
  }
  for (const row of rows) {
    if (row.step === "completed") continue;
    await setDatabaseStep(ctx.db, ctx.lease, row.name, row.step, "Failed", message);
  }
  const leftovers = await leftOnTarget(ctx, unrestored);
  if (leftovers) await ctx.journal.event("warning", leftovers);
  const text = [message, ...problems, ...(leftovers ? [leftovers] : [])].join("; ");
  await transition(ctx, "Failed", "Failed", text);
}

/**
 * What a failed migration leaves on the target, and the statements that remove it: the
 * databases it created (kept, partly filled, for inspection) and any bookkeeping schema that
 * could not be dropped. Undefined when nothing is left.
 */
async function leftOnTarget(
  ctx: MigrationContext,
  unrestored: ReadonlySet<string>,
): Promise<string | undefined> {
  const row = await getMigrationRow(ctx.db, ctx.spec.migrationName);
  const created = ctx.spec.databases.filter((d) => (row?.createdDatabases ?? []).includes(d));
  const parts: string[] = [];
  if (created.length > 0) {
    parts.push(
      `left on the target for inspection: database(s) ${created.map(quoteIdent).join(", ")}, ` +
        `created by this migration and partly filled; remove them on the target with ` +
        created.map((d) => `DROP DATABASE ${quoteIdent(d)};`).join(" "),
    );
  }
  const copied = (await dbRows(ctx))
    .filter((r) => r.copyCompleted && !created.includes(r.name))
    .map((r) => quoteIdent(r.name));
  if (copied.length > 0) {
    parts.push(
      `database(s) ${copied.join(", ")} existed before this migration and keep what was copied into them`,
    );
  }
  const kept = [...unrestored].filter((d) => !created.includes(d));
  if (kept.length > 0) {
    parts.push(
      `schema ${TARGET_BOOKKEEPING_SCHEMA} kept in database(s) ${kept.map(quoteIdent).join(", ")} ` +
        `(it records what to restore); once restored, remove it with DROP SCHEMA ${TARGET_BOOKKEEPING_SCHEMA} CASCADE;`,
    );
  }
  return parts.length > 0 ? parts.join("; ") : undefined;
}
