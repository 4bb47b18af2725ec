// Offline clone of one database under one consistent snapshot: pre-data schema, parallel COPY of
// every table and the large objects, post-data (indexes, constraints, triggers, matview refresh), sequences, ANALYZE.
import fs from "node:fs/promises";
import type { Client } from "pg";
import { migratedRelationSql } from "../pg/catalog";
import { serverMajor, withClient } from "../pg/connect";
import { MigrationError } from "../pg/errors";
import type { MigrationSpec, ProgressSink, TableRef } from "../spec/types";
import { findDumpTools, type DumpTools } from "../pg/dump-tools";
import { CANCELED_CODE, copyTables, type CopiedTable, type CopyJob } from "./copy";
import { copyLargeObjects } from "./large-objects";
import { planCopyUnits, splitSummary, TID_RANGE_SCAN_MAJOR, type CopyUnit } from "./ranges";
import {
  analyzeSql,
  earlyTables,
  maintenanceOptions,
  planPostData,
  readTableOwnObjects,
  TableBuilds,
  tableKey,
  targetMaintenanceWorkMem,
  writeList,
} from "./post-data";
import { copyDatabaseProperties } from "./properties";
import { restorePrivileges } from "./privileges";
import { readDatabasePrivileges, type DatabasePrivileges } from "../pg/privileges";
import { runWorkers } from "../pg/pool";
import { dumpSchema, makeDumpDir, restoreSection } from "./schema";
import { syncSequences } from "./sequences";
import { beginAtSnapshot, openSession } from "../pg/session";
import { exportSnapshot, type HeldSnapshot } from "./snapshot";
import { listTablesToCopy, sourceNotes, withIntegerKeys, type TableToCopy } from "./tables";
import { splitThreshold } from "../spec/inputs";

export { dropTargetDatabase, prepareTargetDatabase } from "./database";
export { migrateRoles } from "./roles";
export { syncSequences, type SequenceSync } from "./sequences";

/** The warning for sequences created on the source after the schema was copied. */
export function missingSequences(missing: readonly string[]): string {
  return (
    `${missing.length} sequence(s) exist on the source but not on the target (created on the ` +
    `source after the schema was copied; their values were not copied): ${missing.join(", ")}`
  );
}
export { refreshMaterializedViews } from "./matviews";
export {
  CANCELED_CODE,
  closeCopySessions,
  CopyCounter,
  copyUnitData,
  openCopySessions,
  type CopiedTable,
  type CopyJob,
  type CopySessions,
} from "./copy";
export type { CopyUnit } from "./ranges";
export type { TableToCopy } from "./tables";

/**
 * Copies the units of one database and resolves when every one is committed (copy.ts
 * copyTables in this process; a pool migration hands them to its runtimes).
 */
export type UnitCopier = (job: CopyJob, units: readonly CopyUnit[]) => Promise<CopiedTable[]>;
export { exportSnapshot, type HeldSnapshot } from "./snapshot";

export interface CloneOptions {
  spec: MigrationSpec;
  database: string;
  /** Exported snapshot (online: from the replication slot). When absent, the clone exports and holds its own snapshot. */
  snapshot?: string;
  progress: ProgressSink;
  signal?: AbortSignal;
  /** Who copies the tables (default: copyTables, in this process). */
  copier?: UnitCopier;
}

export interface ClonedTable extends TableRef {
  rows: number;
  bytes: number;
}

export interface CloneResult {
  database: string;
  tables: ClonedTable[];
  warnings: string[];
}

/** What the clone learns from the source at the snapshot before it starts. */
interface ClonePlan {
  readonly sourceMajor: number;
  readonly encoding: string;
  readonly tables: TableToCopy[];
  readonly notes: string[];
  /** Owners and ACLs at the snapshot, applied once the schema and data are in place. */
  readonly privileges: DatabasePrivileges;
  /** Catalog OIDs of each table's own indexes and constraints (clone/post-data.ts). */
  readonly ownObjects: Map<string, Set<number>>;
}

function throwIfCanceled(
  signal: AbortSignal | undefined,
  phase: "schema" | "data" | "sequences" | "clone",
): void {
  if (signal?.aborted) {
    throw new MigrationError(phase, "the clone was canceled", { code: CANCELED_CODE });
  }
}

/** Reads tables, encoding and notes in a transaction that imported the snapshot. */
async function planClone(
  spec: MigrationSpec,
  database: string,
  snapshot: string,
): Promise<ClonePlan> {
  const client = await openSession(spec.source, database, "pgmigrate clone");
  try {
    const sourceMajor = await serverMajor(client);
    await beginAtSnapshot(client, snapshot);
    const { rows } = await client.query<{ encoding: string }>(
      "SELECT current_setting('server_encoding') AS encoding",
    );
    const listed = await listTablesToCopy(client, sourceMajor);
    // Before 14, large tables are split by their integer key (clone/ranges.ts).
    const tables =
      sourceMajor < TID_RANGE_SCAN_MAJOR
        ? await withIntegerKeys(client, listed, splitThreshold(spec.parallelism))
        : listed;
    const notes = await sourceNotes(client);
    const privileges = await readDatabasePrivileges(client);
    const ownObjects = await readTableOwnObjects(client);
    await client.query("COMMIT");
    return { sourceMajor, encoding: rows[0].encoding, tables, notes, privileges, ownObjects };
  } finally {
    await client.end().catch(() => undefined);
  }
}

function dumpTools(sourceMajor: number): DumpTools {
  const tools = findDumpTools(sourceMajor);
  if (!tools) {
    throw new MigrationError(
      "schema",
      `no pg_dump/pg_restore of major version ${sourceMajor} or newer found: install the PostgreSQL ` +
        `client tools (e.g. postgresql-client-${sourceMajor}) where the migration runs`,
      { code: "PGM_NO_PG_DUMP" },
    );
  }
  return tools;
}

/**
 * ANALYZE every table, partitioned parent and materialized view of the target database, in
 * parallel: a fresh copy has no statistics, and autovacuum never analyzes partitioned parents.
 */
async function analyzeTarget(
  spec: MigrationSpec,
  database: string,
  analyzed: ReadonlySet<string>,
  signal?: AbortSignal,
): Promise<void> {
  const relations = await withClient(spec.target, database, async (c) => {
    const { rows } = await c.query<TableRef>(
      `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE ${migratedRelationSql(["r", "p", "m"])}
        ORDER BY pg_total_relation_size(c.oid) DESC`,
    );
    return rows.filter((r) => !analyzed.has(tableKey(r)));
  });
  await runWorkers(
    relations,
    spec.parallelism.tables,
    () => openSession(spec.target, database, "pgmigrate analyze"),
    async (relation, client: Client) => {
      await client.query(analyzeSql(relation));
    },
    (client) => client.end().catch(() => undefined),
    signal,
  );
}

/**
 * pre-data schema → parallel COPY of all tables → post-data; sequences (offline); ANALYZE.
 * The target database must exist (prepareTargetDatabase). Any failure is a MigrationError with
 * the phase ("schema", "data", "sequences", "clone"), the SQLSTATE and the table when known; the
 * target is then left as is for the caller to drop.
 */
export async function cloneDatabase(options: CloneOptions): Promise<CloneResult> {
  const { spec, database, progress, signal } = options;
  const dir = await makeDumpDir();
  // Aborted by the caller's signal, or by a failed index build (which then fails the clone).
  const stop = new AbortController();
  const forward = (): void => stop.abort();
  let builds: TableBuilds | undefined;
  let held: HeldSnapshot | undefined;
  try {
    if (options.snapshot === undefined) {
      held = await exportSnapshot(spec.source, database).catch((err: unknown) => {
        throw MigrationError.wrap("clone", err, `exporting a snapshot of database "${database}"`);
      });
    }
    const snapshot = options.snapshot ?? (held as HeldSnapshot).snapshot;
    const plan = await planClone(spec, database, snapshot).catch((err: unknown) => {
      throw MigrationError.wrap("clone", err, `reading the tables of database "${database}"`);
    });
    const tools = dumpTools(plan.sourceMajor);
    const warnings = [...plan.notes];

    const archive = await dumpSchema({ tools, spec, database, snapshot, dir, signal });
    throwIfCanceled(signal, "schema");
    await restoreSection({ tools, spec, database, archive, section: "pre-data", signal });
    await progress.event(
      "info",
      `schema (pre-data) restored; copying ${plan.tables.length} tables`,
      database,
    );

    throwIfCanceled(signal, "data");
    await progress.tablesQueued(
      database,
      plan.tables.map((t) => ({
        schema: t.schema,
        name: t.name,
        estimatedBytes: t.estimatedBytes,
        estimatedRows: t.estimatedRows,
      })),
    );
    const units = planCopyUnits(spec, plan.sourceMajor, plan.tables);
    const split = splitSummary(units);
    if (split) await progress.event("info", split, database);
    // Each table's own indexes and constraints, then its ANALYZE, as soon as its data is in.
    // Only tables worth a pg_restore run of their own: thousands of small tables are built
    // faster by the final pass (pg_restore --jobs) than one process each.
    const early = earlyTables(plan.tables, splitThreshold(spec.parallelism));
    const post = planPostData(
      await fs.readFile(archive.list, "utf8"),
      new Map([...plan.ownObjects].filter(([key]) => early.has(key))),
    );
    const pgOptions = maintenanceOptions(
      spec.parallelism.indexes,
      await targetMaintenanceWorkMem(spec, database),
    );
    signal?.addEventListener("abort", forward, { once: true });
    if (signal?.aborted) stop.abort();
    const analyzed = new Set<string>();
    let listed = 0;
    builds = new TableBuilds(
      spec.parallelism.indexes,
      async (table) => {
        const lines = post.early.get(tableKey(table));
        if (lines) {
          const list = await writeList(dir, `post-data-${++listed}.list`, lines.join("\n"));
          await restoreSection({
            tools,
            spec,
            database,
            archive,
            list,
            pgOptions,
            jobs: 1,
            section: "post-data",
            what: `the indexes of table ${table.schema}.${table.name}`,
            signal: stop.signal,
          });
        }
        await withClient(spec.target, database, (c) => c.query(analyzeSql(table)));
        analyzed.add(tableKey(table));
      },
      // Stops the copies: the clone fails with this error.
      () => stop.abort(),
    );
    let copied: Awaited<ReturnType<typeof copyTables>>;
    try {
      copied = await (options.copier ?? copyTables)(
        {
          spec,
          database,
          snapshot,
          encoding: plan.encoding,
          progress,
          signal: stop.signal,
          onTableCopied: (table) => {
            if (early.has(tableKey(table))) builds?.add(table);
          },
        },
        units,
      );
    } catch (err) {
      // A failed index build stopped the copies (its error is the cause); a failed copy stops
      // the builds still running (their errors are only consequences).
      const cause: unknown = builds.failure ?? err;
      stop.abort();
      await builds.settle();
      throw cause;
    }
    const tableBuilds = builds;
    const largeObjects = await copyLargeObjects(spec, database, snapshot);
    warnings.push(...largeObjects.warnings);
    if (largeObjects.count > 0) {
      await progress.event(
        "info",
        `${largeObjects.count} large object(s) copied (${largeObjects.bytes} bytes)`,
        database,
      );
    }
    // Every worker has imported the snapshot and finished: nothing needs it any more.
    await held?.release();
    await tableBuilds.drain();

    throwIfCanceled(signal, "schema");
    // The rest of post-data: foreign keys (both tables are complete now), triggers, rules, …
    const rest = await writeList(dir, "post-data-rest.list", post.rest);
    await restoreSection({
      tools,
      spec,
      database,
      archive,
      list: rest,
      pgOptions,
      section: "post-data",
      signal,
    });
    await progress.event(
      "info",
      "indexes, constraints and triggers restored (post-data)",
      database,
    );

    if (spec.mode === "Offline") {
      throwIfCanceled(signal, "sequences");
      const sequences = await syncSequences(spec, database);
      await progress.event("info", `${sequences.synced} sequence values copied`, database);
      if (sequences.missing.length > 0) warnings.push(missingSequences(sequences.missing));
    }
    warnings.push(...(await copyDatabaseProperties(spec, database)));

    throwIfCanceled(signal, "clone");
    await analyzeTarget(spec, database, analyzed, signal).catch((err: unknown) => {
      throw MigrationError.wrap("clone", err, `analyzing database "${database}"`);
    });
    throwIfCanceled(signal, "schema");
    // Last, as pg_restore applies ACLs last: the copy, index builds, refreshes and ANALYZE ran as
    // the target user that created every object.
    const gaps = await restorePrivileges(spec, database, plan.privileges).catch((err: unknown) => {
      throw MigrationError.wrap(
        "schema",
        err,
        `restoring owners and privileges in database "${database}"`,
      );
    });
    warnings.push(...gaps);
    await progress.event(
      "info",
      `owners and privileges restored${gaps.length > 0 ? ` (${gaps.length} warning(s))` : ""}`,
      database,
    );
    throwIfCanceled(signal, "clone");

    const byName = new Map(copied.map((t) => [`${t.schema}\0${t.name}`, t]));
    const tables = plan.tables.map((t) => {
      const done = byName.get(`${t.schema}\0${t.name}`);
      return { schema: t.schema, name: t.name, rows: done?.rows ?? 0, bytes: done?.bytes ?? 0 };
    });
    return { database, tables, warnings };
  } catch (err) {
    if (signal?.aborted && !(err instanceof MigrationError && err.code === CANCELED_CODE)) {
      throw new MigrationError("clone", `clone of database "${database}" was canceled`, {
        code: CANCELED_CODE,
        cause: err,
      });
    }
    throw MigrationError.wrap("clone", err, `cloning database "${database}"`);
  } finally {
    signal?.removeEventListener("abort", forward);
    // Whatever failed, no index build outlives the clone (nor its dump directory).
    stop.abort();
    await builds?.settle();
    await held?.release();
    await fs.rm(dir, { recursive: true, force: true });
  }
}
