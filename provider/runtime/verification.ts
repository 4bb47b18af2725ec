// Verification of a migrated database (offline: after the copy; online: at cutover), kept per
// database in the control store and combined into the migration's VerificationReport.
import { setVerification } from "../control/migrations";
import { setDatabaseVerification } from "../control/progress";
import { MigrationError } from "../pg/errors";
import { summarizeVerification, verifyDatabase } from "../verify";
import { dbRows, type MigrationContext } from "./context";

/** Verifies one database (unless verify is "none") and stores the per-table result. */
export async function verifyOne(ctx: MigrationContext, database: string): Promise<void> {
  if (ctx.spec.verify === "none") return;
  const tables = (await verifyDatabase(ctx.spec, database, ctx.spec.verify)).sort((a, b) =>
    a.table < b.table ? -1 : a.table > b.table ? 1 : 0,
  );
  await setDatabaseVerification(ctx.db, ctx.lease, database, tables);
  const skipped = tables.filter((t) => t.skippedReason);
  if (skipped.length > 0) {
    await ctx.journal.event(
      "warning",
      `verification skipped for ${skipped.length} table(s): ${skipped[0].skippedReason}`,
      database,
    );
  }
}

/** Stores the combined report (skipped tables are no failure); throws a verify error naming the tables that differ. */
export async function concludeVerification(ctx: MigrationContext): Promise<void> {
  if (ctx.spec.verify === "none") return;
  const rows = await dbRows(ctx);
  const report = summarizeVerification(rows.flatMap((r) => r.verification ?? []));
  await setVerification(ctx.db, ctx.lease, report);
  if (report.status !== "Failed") return;
  const differing = report.tables
    .filter((t) => !t.skippedReason && !t.match)
    .map(
      (t) => `${t.databaseName}.${t.table} (source ${t.sourceRows} rows, target ${t.targetRows})`,
    );
  throw new MigrationError(
    "verify",
    `verification failed: source and target differ in ${differing.join(", ")}`,
    { code: "PGM_VERIFY_MISMATCH" },
  );
}
