// The coordinator's side of a pool migration's copy: instead of copying the tables itself, it
// publishes them as work units under the snapshot it holds, and follows them while the pool's
// runtimes (itself included) claim and copy them. It reports each table's progress, hands a
// completed table to the early index builds, and fails the copy on the first failed unit (a
// lost connection stays transient: the database's copy then restarts from a new snapshot).
import {
  CANCELED_CODE,
  type CopiedTable,
  type CopyJob,
  type CopyUnit,
  type TableToCopy,
  type UnitCopier,
} from "../clone";
import {
  cancelCopyUnits,
  changedCopyUnits,
  endBackends,
  publishCopyUnits,
  setHeldUnit,
  type CopyUnitStatus,
} from "../control/units";
import { getMigrationRow } from "../control/migrations";
import { MigrationError } from "../pg/errors";
import { sleep } from "../pg/retry";
import type { TableRef } from "../spec/types";
import type { MigrationContext } from "./context";

/** How often the coordinator reads its units' states. */
const FOLLOW_MS = 100;
/** How often a table being copied reports its rows and bytes. */
const REPORT_MS = 3_000;
/** Units left pending this long with none running: the pool is told it is not taking them. */
const STALLED_MS = 30_000;
/** …and told again this often while it lasts. */
const STALLED_REPEAT_MS = 300_000;

/** Whether the migration runs on a pool of runtimes (its runtime kind may change on attach). */
export async function onPool(ctx: MigrationContext): Promise<boolean> {
  const row = await getMigrationRow(ctx.db, ctx.spec.migrationName);
  return row?.runtimeKind === "pool";
}

/** Records which runtime applies `database`'s change stream (pool migrations, for `show`). */
export async function recordStreamOwner(
  ctx: MigrationContext,
  database: string,
  state: "running" | "done",
): Promise<void> {
  if (!(await onPool(ctx))) return;
  await setHeldUnit(ctx.db, ctx.lease, database, "stream", ctx.runtimeId, state);
}

/** Cancels `database`'s unfinished units and ends their target backends (rolled back). */
export async function cancelSharedCopy(ctx: MigrationContext, database?: string): Promise<void> {
  const backends = await cancelCopyUnits(ctx.db, ctx.spec.migrationName, database);
  await endBackends(ctx.db, backends);
}

/** A UnitCopier that shares the copy with the pool's runtimes through the control store. */
export function sharedCopier(ctx: MigrationContext, runtimeId: string): UnitCopier {
  return async (job, units) => {
    const { database, snapshot } = job;
    // Units of an earlier snapshot of this database are never mixed with this one.
    await cancelSharedCopy(ctx, database);
    await setHeldUnit(ctx.db, ctx.lease, database, "snapshot", runtimeId, "running", snapshot);
    await publishCopyUnits(
      ctx.db,
      ctx.lease,
      database,
      snapshot,
      units.map((unit) => ({ encoding: job.encoding, unit })),
    );
    await ctx.journal.event(
      "info",
      `${units.length} copy unit(s) published under snapshot ${snapshot} for the runtimes of the pool`,
      database,
    );
    try {
      const copied = await follow(ctx, job, units);
      await setHeldUnit(ctx.db, ctx.lease, database, "snapshot", runtimeId, "done", snapshot);
      return copied;
    } catch (err) {
      await cancelSharedCopy(ctx, database).catch(() => undefined);
      throw err;
    }
  };
}

interface TableFollow {
  readonly table: TableToCopy;
  readonly seqs: number[];
  done: boolean;
  reportedAt: number;
  reportedBytes: number;
}

async function follow(
  ctx: MigrationContext,
  job: CopyJob,
  units: readonly CopyUnit[],
): Promise<CopiedTable[]> {
  const { database, snapshot, progress } = job;
  const tables = new Map<TableToCopy, TableFollow>();
  units.forEach((unit, seq) => {
    const t = tables.get(unit.table) ?? {
      table: unit.table,
      seqs: [],
      done: false,
      reportedAt: 0,
      reportedBytes: -1,
    };
    t.seqs.push(seq);
    tables.set(unit.table, t);
  });
  const copied: CopiedTable[] = [];
  const bySeq = new Map<number, CopyUnitStatus>();
  let version = "0";
  let busySince = Date.now();
  let warnedAt = 0;
  for (;;) {
    if (job.signal?.aborted) {
      throw new MigrationError("data", `copy of database "${database}" was canceled`, {
        code: CANCELED_CODE,
      });
    }
    const changed = await changedCopyUnits(
      ctx.db,
      ctx.spec.migrationName,
      database,
      snapshot,
      version,
    );
    version = changed.version;
    for (const unit of changed.units) bySeq.set(unit.seq, unit);
    const states = [...bySeq.values()];
    const failed = states.find((s) => s.state === "failed");
    if (failed) {
      const error = unitFailure(units[failed.seq], failed);
      const table = units[failed.seq]?.table;
      if (table) {
        const ref = { schema: table.schema, name: table.name };
        await progress.tableState(database, ref, "errored", { error: error.message });
      }
      throw error;
    }
    if (states.some((s) => s.state === "canceled")) {
      throw new MigrationError(
        "data",
        `the copy units of database "${database}" were canceled by another runtime`,
      );
    }
    const pending = states.filter((s) => s.state === "pending").length;
    if (pending === 0 || states.some((s) => s.state === "running")) busySince = Date.now();
    else if (Date.now() - busySince > STALLED_MS && Date.now() - warnedAt > STALLED_REPEAT_MS) {
      warnedAt = Date.now();
      await ctx.journal.event(
        "warning",
        `${pending} copy unit(s) wait for a runtime: none of the pool is taking them; run ` +
          "`pgmigrate runtime --server <target server URL>` (no --migration-name, with " +
          "PGMIGRATE_SOURCE_PASSWORD and PGMIGRATE_TARGET_PASSWORD) on hosts that reach both " +
          "servers, or read the runtimes' logs",
        database,
      );
    }
    for (const t of tables.values()) {
      if (t.done) continue;
      const mine = t.seqs.map((seq) => bySeq.get(seq));
      const rows = mine.reduce((sum, s) => sum + (s?.rows ?? 0), 0);
      const bytes = mine.reduce((sum, s) => sum + (s?.bytes ?? 0), 0);
      const ref: TableRef = { schema: t.table.schema, name: t.table.name };
      if (mine.every((s) => s?.state === "done")) {
        t.done = true;
        await progress.tableState(database, ref, "completed", { rows, bytes });
        copied.push({ ...ref, rows, bytes });
        job.onTableCopied?.(t.table);
        continue;
      }
      const started = mine.some((s) => s && s.state !== "pending");
      const due = Date.now() - t.reportedAt >= REPORT_MS && bytes !== t.reportedBytes;
      if (started && (t.reportedAt === 0 || due)) {
        t.reportedAt = Date.now();
        t.reportedBytes = bytes;
        await progress.tableState(database, ref, "loading", { rows, bytes, bytesPerSecond: null });
      }
    }
    if (copied.length === tables.size) return copied;
    await sleep(FOLLOW_MS, job.signal);
  }
}

/** The coordinator's error for a unit a runtime failed; its code keeps a lost connection transient. */
function unitFailure(unit: CopyUnit | undefined, status: CopyUnitStatus): MigrationError {
  const table = unit ? `${unit.table.schema}.${unit.table.name}` : `unit ${status.seq}`;
  const what = unit?.range
    ? `range ${unit.range.index + 1} of ${unit.range.count} of table ${table}`
    : `table ${table}`;
  const cause = Object.assign(new Error(status.error ?? "unknown error"), {
    code: status.errorCode ?? undefined,
  });
  return new MigrationError("data", `copying ${what} failed: ${status.error ?? "unknown error"}`, {
    cause,
    pg: unit ? { schema: unit.table.schema, table: unit.table.name } : undefined,
  });
}
