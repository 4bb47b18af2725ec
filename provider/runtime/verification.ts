// Verification of a migrated database, kept per database in the control store and combined
// into the migration's VerificationReport: under the copy's snapshot right after the base copy
// ("snapshot", "checksum"), then counts or checksums at cutover (online) or after the copy
// (offline, "counts").
import { setVerification } from "../control/migrations";
import { databaseRows, setDatabaseVerification } from "../control/progress";
import { MigrationError } from "../pg/errors";
import type { TableVerification } from "../spec/types";
import { summarizeVerification, verifyAtSnapshot, verifyDatabase } from "../verify";
import { dbRows, type MigrationContext } from "./context";

const byTable = (a: TableVerification, b: TableVerification): number =>
  a.table < b.table ? -1 : a.table > b.table ? 1 : 0;

/** True when the base copy is compared under its snapshot before anything else touches it. */
export function verifiesAtSnapshot(ctx: MigrationContext): boolean {
  return ctx.spec.verify === "snapshot" || ctx.spec.verify === "checksum";
}

/**
 * Compares the base copy of `database` with the source as `snapshot` sees it; runs while the
 * snapshot is still held and before any replicated change is applied. Stores the result and
 * throws a verify error naming the first differing key of each differing table.
 */
export async function verifyCopy(
  ctx: MigrationContext,
  database: string,
  snapshot: string,
  signal: AbortSignal,
): Promise<void> {
  if (!verifiesAtSnapshot(ctx)) return;
  const started = Date.now();
  const tables = (await verifyAtSnapshot(ctx.spec, database, snapshot, signal)).sort(byTable);
  await setDatabaseVerification(ctx.db, ctx.lease, database, tables);
  const rows = tables.reduce((sum, t) => sum + t.sourceRows, 0);
  await ctx.journal.event(
    "info",
    `verified ${tables.length} tables (${rows} rows) under the copy's snapshot in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    database,
  );
  await concludeVerification(ctx);
}

/**
 * Verifies one database at cutover (online) or after the copy (offline) and stores the result
 * next to the snapshot verification. Online "snapshot" counts rows, "checksum" compares full
 * checksums; offline the snapshot verification already proved the copy, so only "counts" runs.
 */
export async function verifyOne(ctx: MigrationContext, database: string): Promise<void> {
  const { spec } = ctx;
  if (spec.verify === "none") return;
  if (spec.mode === "Offline" && verifiesAtSnapshot(ctx)) return;
  const mode = spec.verify === "checksum" ? "checksum" : "counts";
  const tables = (await verifyDatabase(spec, database, mode)).sort(byTable);
  const stored = (await databaseRows(ctx.db, spec.migrationName)).find((r) => r.name === database);
  const atSnapshot = (stored?.verification ?? []).filter((t) => t.method === "snapshot");
  await setDatabaseVerification(ctx.db, ctx.lease, database, [...atSnapshot, ...tables]);
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
      (t) =>
        `${t.databaseName}.${t.table} (source ${t.sourceRows} rows, target ${t.targetRows}${t.difference ? `; ${t.difference}` : ""})`,
    );
  throw new MigrationError(
    "verify",
    `verification failed: source and target differ in ${differing.join(", ")}`,
    { code: "PGM_VERIFY_MISMATCH" },
  );
}
