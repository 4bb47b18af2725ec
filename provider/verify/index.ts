// Verification after a clone or at cutover: per-table row counts (or row counts plus an
// order-independent checksum) on source and target, telling real mismatches from tables the
// source was still writing to.
import type { Client } from "pg";
import { withClient } from "../pg/connect";
import { MigrationError } from "../pg/errors";
import { runWorkers } from "../pg/pool";
import { sleep } from "../pg/retry";
import type { MigrationSpec, TableVerification, VerificationReport } from "../spec/types";
import { closePair, keyOf, listTables, measure, openPair, same, type Measure } from "./measure";

export { verifyAtSnapshot } from "./snapshot";

/**
 * Writes to each table since statistics were reset: inserted + updated + deleted tuples (HOT
 * updates are part of n_tup_upd). Counted at statement level, rolled-back writes included.
 */
async function writeCounters(source: Client): Promise<Map<string, bigint>> {
  const { rows } = await source.query<{ schema: string; name: string; writes: string }>(
    `SELECT schemaname AS schema, relname AS name, (n_tup_ins + n_tup_upd + n_tup_del)::text AS writes
       FROM pg_stat_user_tables`,
  );
  return new Map(rows.map((r) => [`${r.schema}.${r.name}`, BigInt(r.writes)]));
}

/**
 * How long a differing table is watched before it is called a mismatch. Long enough for a
 * running writer to commit again and for its statistics to be flushed (PostgreSQL 15+ flushes a
 * busy backend's table counters at most once a second).
 */
const WATCH_MS = 1_500;

/**
 * Compares every table of `database` the clone copies (pg/catalog.ts) on source and target.
 *
 * A table that differs is not called a mismatch at once: the source may still be written. It is
 * measured on the source again at least WATCH_MS after the first pass began, and reported with
 * `skippedReason` (and `match: false`) instead of as a mismatch when (1) its count or checksum
 * changed between the two source measurements, or (2) its write counters in pg_stat_user_tables
 * (n_tup_ins + n_tup_upd + n_tup_del, HOT updates included) grew during verification, which also
 * catches writes that cancel out. The target does not change during verification, so a table
 * whose source stayed the same over that window and still differs is a real mismatch. A table
 * that matches is reported as matching even if written later: it was equal at that moment.
 */
export async function verifyDatabase(
  spec: MigrationSpec,
  database: string,
  mode: "counts" | "checksum",
): Promise<TableVerification[]> {
  try {
    const started = Date.now();
    const [tables, before] = await withClient(
      spec.source,
      database,
      async (c) => [await listTables(c), await writeCounters(c)] as const,
    );
    const first = new Map<string, { source: Measure; target: Measure }>();
    await runWorkers(
      tables,
      spec.parallelism.tables,
      () => openPair(spec, database),
      async (table, { source, target }) => {
        const [onSource, onTarget] = await Promise.all([
          measure(source, table, mode),
          measure(target, table, mode),
        ]);
        first.set(keyOf(table), { source: onSource, target: onTarget });
      },
      closePair,
    );

    const differing = tables.filter((t) => {
      const m = first.get(keyOf(t));
      return m !== undefined && !same(m.source, m.target);
    });
    const second = new Map<string, Measure>();
    let after = before;
    if (differing.length > 0) {
      const wait = started + WATCH_MS - Date.now();
      if (wait > 0) await sleep(wait);
      await runWorkers(
        differing,
        spec.parallelism.tables,
        () => openPair(spec, database),
        async (table, { source }) => {
          second.set(keyOf(table), await measure(source, table, mode));
        },
        closePair,
      );
      after = await withClient(spec.source, database, writeCounters);
    }

    return tables.map((table): TableVerification => {
      const key = keyOf(table);
      const m = first.get(key) as { source: Measure; target: Measure };
      const result = {
        databaseName: database,
        table: key,
        method: mode,
        sourceRows: m.source.rows,
        targetRows: m.target.rows,
        match: same(m.source, m.target),
      };
      if (result.match) return result;
      if (table.unlogged && spec.mode === "Online") {
        return {
          ...result,
          skippedReason:
            "unlogged table: copied in the base copy, but its later changes are not replicated (logical replication does not see them)",
        };
      }
      const again = second.get(key) as Measure;
      const writes = (after.get(key) ?? 0n) - (before.get(key) ?? 0n);
      if (!same(m.source, again)) {
        return {
          ...result,
          skippedReason: `the source table was written during verification (${m.source.rows} → ${again.rows} rows); verify again once writes have stopped`,
        };
      }
      if (writes > 0n) {
        return {
          ...result,
          skippedReason: `the source table was written during verification (${writes} rows inserted, updated or deleted); verify again once writes have stopped`,
        };
      }
      return result;
    });
  } catch (err) {
    throw MigrationError.wrap("verify", err, `verifying database "${database}"`);
  }
}

/** Overall status: Failed on any real mismatch, Skipped when some tables could not be compared. */
export function summarizeVerification(tables: readonly TableVerification[]): VerificationReport {
  const failed = tables.some((t) => !t.match && !t.skippedReason);
  const skipped = tables.some((t) => t.skippedReason !== undefined);
  return { status: failed ? "Failed" : skipped ? "Skipped" : "Succeeded", tables };
}
