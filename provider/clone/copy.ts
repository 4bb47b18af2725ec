// Table data: `parallelism.tables` workers, each with its own source connection (inside the
// clone's snapshot) and target connection, streaming COPY TO → COPY FROM, largest tables first;
// tables over the split threshold go as ranges in the same queue (clone/ranges.ts).
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Client } from "pg";
import { from as copyFrom, to as copyTo } from "pg-copy-streams";
import { isTransient, MigrationError } from "../pg/errors";
import { qualify, quoteIdent } from "../pg/ident";
import { RateWindow } from "../spec/progress";
import type { MigrationSpec, ProgressSink, TableRef } from "../spec/types";
import { runWorkers } from "../pg/pool";
import { beginAtSnapshot, hardClose, openSession } from "../pg/session";
import { rangePredicate, type CopyUnit } from "./ranges";
import type { TableToCopy } from "./tables";

/** A copied table and what went through the pipe. */
export interface CopiedTable extends TableRef {
  readonly rows: number;
  readonly bytes: number;
}

export interface CopyJob {
  readonly spec: MigrationSpec;
  readonly database: string;
  readonly snapshot: string;
  /** Database encoding of the source: both sessions speak it, so rows pass through unconverted. */
  readonly encoding: string;
  readonly progress: ProgressSink;
  readonly signal?: AbortSignal;
  /** Called once a table's last range committed (e.g. to build its indexes meanwhile). */
  readonly onTableCopied?: (table: TableToCopy) => void;
}

/** How often a table being loaded reports its bytes, rows and rate. */
const PROGRESS_INTERVAL_MS = 5_000;

/** The window the reported rate is measured over. */
const RATE_WINDOW_MS = 30_000;

/** What a loading table reports: counts so far and the recent rate. */
export interface CopyCount {
  readonly bytes: number;
  readonly rows: number;
  readonly bytesPerSecond: number | null;
}

export const CANCELED_CODE = "PGM_CANCELED";

function canceledError(database: string): MigrationError {
  return new MigrationError("data", `copy of database "${database}" was canceled`, {
    code: CANCELED_CODE,
  });
}

/** One copy worker's sessions: the source inside the snapshot, the target. */
export interface CopySessions {
  readonly source: Client;
  readonly target: Client;
}
type Worker = CopySessions;

/**
 * Opens a source session inside `snapshot` and a target session, both speaking the source's
 * `encoding` (rows pass through unconverted). Fails when the snapshot is no longer importable.
 */
export async function openCopySessions(
  spec: MigrationSpec,
  database: string,
  snapshot: string,
  encoding: string,
): Promise<CopySessions> {
  const source = await openSession(spec.source, database, "pgmigrate copy");
  let target: Client | undefined;
  try {
    await source.query("SELECT set_config('client_encoding', $1, false)", [encoding]);
    await beginAtSnapshot(source, snapshot);
    target = await openSession(spec.target, database, "pgmigrate copy");
    await target.query("SELECT set_config('client_encoding', $1, false)", [encoding]);
    // Safe: the post-data restore that follows commits synchronously on the same server, which
    // flushes the WAL of these commits too; a crash before that fails the clone anyway.
    await target.query("SET synchronous_commit = off");
  } catch (err) {
    await hardClose(source);
    if (target) await hardClose(target);
    throw err;
  }
  return { source, target };
}

/** Ends both sessions: cleanly after a success, at once (the target rolls back) otherwise. */
export async function closeCopySessions(sessions: CopySessions, failed: boolean): Promise<void> {
  if (failed) {
    await Promise.all([hardClose(sessions.source), hardClose(sessions.target)]);
    return;
  }
  await sessions.source.query("COMMIT").catch(() => undefined);
  await Promise.all(
    [sessions.source.end(), sessions.target.end()].map((p) => p.catch(() => undefined)),
  );
}

/**
 * Copies one unit (a whole table or a range) in one target transaction; `beforeCommit` runs
 * inside it just before COMMIT (a distributed unit records the transaction there, and a unit
 * that is no longer ours throws, rolling it back). Returns the rows copied.
 */
export async function copyUnitData(
  sessions: CopySessions,
  unit: CopyUnit,
  counter: CopyCounter,
  beforeCommit?: (target: Client, rows: number) => Promise<void>,
): Promise<number> {
  return unit.range
    ? copyRange(sessions, unit, counter, beforeCommit)
    : copyWhole(sessions, unit.table, counter, beforeCommit);
}

const NEWLINE = 0x0a;

/**
 * Counts the bytes and rows of COPY text data passing through. Text format escapes a newline
 * inside a value as `\n`, so every raw newline byte ends exactly one row.
 */
export class CopyCounter extends Transform {
  bytes = 0;
  rows = 0;
  private readonly rate = new RateWindow(RATE_WINDOW_MS);
  constructor(now = Date.now()) {
    super();
    this.rate.add(now, 0);
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    for (let at = chunk.indexOf(NEWLINE); at !== -1; at = chunk.indexOf(NEWLINE, at + 1)) {
      this.rows++;
    }
    done(null, chunk);
  }
  /** The counts now, recording them in the rate window. */
  sample(now = Date.now()): CopyCount {
    this.rate.add(now, this.bytes);
    return { bytes: this.bytes, rows: this.rows, bytesPerSecond: this.rate.rate() };
  }
}

function display(table: TableRef): string {
  return `${table.schema}.${table.name}`;
}

/** A table's progress summed over its ranges; one table has one range unless it was split. */
class TableLoad {
  rows = 0;
  bytes = 0;
  private left: number;
  private readonly live = new Set<CopyCounter>();
  private readonly rate = new RateWindow(RATE_WINDOW_MS);
  private timer: NodeJS.Timeout | undefined;
  /** Reports of one table go out in order, so a late count never follows "completed". */
  reports: Promise<void> = Promise.resolve();

  constructor(
    readonly table: TableToCopy,
    ranges: number,
    private readonly report: (count: CopyCount) => Promise<void>,
  ) {
    this.left = ranges;
  }

  /** A range starts streaming through `counter`; the first one starts the table's reports. */
  begin(counter: CopyCounter): void {
    this.live.add(counter);
    if (this.timer) return;
    this.rate.add(Date.now(), 0);
    this.push({ rows: 0, bytes: 0, bytesPerSecond: null });
    // On a timer, not per chunk: a stalled copy reports its rate falling to 0.
    this.timer = setInterval(() => this.push(this.sample()), PROGRESS_INTERVAL_MS);
  }

  /** A range committed; true when it was the table's last. */
  end(counter: CopyCounter, rows: number): boolean {
    this.live.delete(counter);
    this.rows += rows;
    this.bytes += counter.bytes;
    this.left--;
    if (this.left > 0) return false;
    this.stop();
    return true;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private sample(): CopyCount {
    let bytes = this.bytes;
    let rows = this.rows;
    for (const c of this.live) {
      bytes += c.bytes;
      rows += c.rows;
    }
    this.rate.add(Date.now(), bytes);
    return { bytes, rows, bytesPerSecond: this.rate.rate() };
  }

  private push(count: CopyCount): void {
    this.reports = this.reports.then(() => this.report(count));
  }
}

/**
 * Copies every unit (whole tables and ranges of tables, clone/ranges.ts); resolves only when all are
 * committed on the target. A table is "completed" once its last range committed. The first
 * failure cancels the copies in flight (their connections are closed, the target rolls them
 * back) and is rethrown as a MigrationError in phase "data" naming the table; the tables it
 * interrupted are reported errored as canceled. An aborted `signal` does the same with a
 * PGM_CANCELED error.
 *
 * Retry: every range is one target transaction of its own (a single COPY statement), so a
 * failed or interrupted range leaves none of its rows behind, and the ranges already committed
 * are exactly their share of the snapshot. What is retried is the database's copy: the caller
 * (runtime/load.ts) starts it over from a NEW snapshot on a re-created target database. Retrying
 * only the failed range would need the old snapshot, which dies with the connection that
 * exported it (the usual cause of the failure), and mixing ranges copied under two snapshots
 * would silently diverge from the source; deleting a ctid range's rows on the target is
 * impossible anyway (target ctids are not the source's).
 */
export async function copyTables(job: CopyJob, units: readonly CopyUnit[]): Promise<CopiedTable[]> {
  const { spec, database, progress } = job;
  const cancel = new AbortController();
  const onAbort = (): void => cancel.abort();
  job.signal?.addEventListener("abort", onAbort, { once: true });
  if (job.signal?.aborted) cancel.abort();

  const live = new Set<Worker>();
  cancel.signal.addEventListener("abort", () => {
    for (const w of live) void Promise.all([hardClose(w.source), hardClose(w.target)]);
  });
  let firstFailure: MigrationError | undefined;
  const copied: CopiedTable[] = [];

  const ranges = new Map<TableToCopy, number>();
  for (const unit of units) ranges.set(unit.table, (ranges.get(unit.table) ?? 0) + 1);
  const loads = new Map<TableToCopy, TableLoad>();
  const loadOf = (table: TableToCopy): TableLoad => {
    let load = loads.get(table);
    if (!load) {
      const ref: TableRef = { schema: table.schema, name: table.name };
      load = new TableLoad(table, ranges.get(table) ?? 1, (count) =>
        progress.tableState(database, ref, "loading", count),
      );
      loads.set(table, load);
    }
    return load;
  };

  const open = async (): Promise<Worker> => {
    const worker = await openCopySessions(spec, database, job.snapshot, job.encoding);
    // Opened after a cancel: the pool hands it nothing and close() drops it.
    live.add(worker);
    return worker;
  };

  const close = async (worker: Worker, failed: boolean): Promise<void> => {
    live.delete(worker);
    await closeCopySessions(worker, failed || cancel.signal.aborted);
  };

  const work = async (unit: CopyUnit, worker: Worker): Promise<void> => {
    const { table } = unit;
    const ref: TableRef = { schema: table.schema, name: table.name };
    const load = loadOf(table);
    const counter = new CopyCounter();
    try {
      load.begin(counter);
      const rows = await copyUnitData(worker, unit, counter);
      if (!load.end(counter, rows)) return;
      await load.reports;
      const result = { rows: load.rows, bytes: load.bytes };
      await progress.tableState(database, ref, "completed", result);
      copied.push({ ...ref, ...result });
      job.onTableCopied?.(table);
    } catch (err) {
      load.stop();
      const pg = { schema: ref.schema, table: ref.name };
      const what = unit.range
        ? `range ${unit.range.index + 1} of ${unit.range.count} of table ${display(ref)}`
        : `table ${display(ref)}`;
      let error: MigrationError;
      let reason: string;
      if (cancel.signal.aborted) {
        error = new MigrationError("data", `copy of ${what} was canceled`, {
          code: CANCELED_CODE,
          pg,
        });
        reason = firstFailure ? `canceled: ${firstFailure.message}` : error.message;
      } else {
        const why = err instanceof Error ? err.message : String(err);
        error = new MigrationError("data", `copying ${what} failed: ${why}`, { cause: err, pg });
        reason = error.message;
        firstFailure ??= error;
        cancel.abort();
      }
      await load.reports.catch(() => undefined);
      await progress.tableState(database, ref, "errored", { error: reason }).catch(() => undefined);
      throw error;
    }
  };

  try {
    await runWorkers(units, spec.parallelism.tables, open, work, close, cancel.signal);
  } catch (err) {
    if (firstFailure) throw firstFailure;
    if (job.signal?.aborted) throw canceledError(database);
    throw MigrationError.wrap("data", err, `copying the tables of database "${database}"`);
  } finally {
    job.signal?.removeEventListener("abort", onAbort);
    for (const load of loads.values()) load.stop();
  }
  if (cancel.signal.aborted) throw canceledError(database);
  return copied;
}

/** ` (a, b)` for COPY; none when every column is generated or there are none. */
function columnList(table: TableToCopy): string {
  // COPY then skips generated columns itself, and a zero-column table still has rows.
  return table.columns.length > 0 ? ` (${table.columns.map(quoteIdent).join(", ")})` : "";
}

/** Streams `out` (source COPY TO) through `counter` into `into` (target COPY FROM). */
async function stream(
  worker: Worker,
  sourceSql: string,
  targetSql: string,
  counter: CopyCounter,
): Promise<number> {
  const into = worker.target.query(copyFrom(targetSql));
  const out = worker.source.query(copyTo(sourceSql));
  await pipeline(out, counter, into);
  return into.rowCount;
}

const TRUNCATE_SAVEPOINT = "pgmigrate_truncate";

/**
 * A whole table in one target transaction, with COPY FREEZE when the table could be truncated
 * in it: rows are written frozen and all-visible (no later rewrite of every page for hint bits
 * and anti-wraparound vacuum). FREEZE needs the table created or truncated in the current
 * subtransaction; the TRUNCATE runs inside a savepoint whose RELEASE hands it to the transaction,
 * so a refused TRUNCATE (e.g. a table referenced by a foreign key) is rolled back alone and the
 * COPY goes without FREEZE instead of failing: FREEZE is never attempted where it cannot work.
 * The target table is empty either way: the target database is new or was checked empty, and
 * a restarted copy re-creates it (runtime/load.ts). Text format: binary COPY is not guaranteed
 * to be readable by another major version.
 */
async function copyWhole(
  worker: Worker,
  table: TableToCopy,
  counter: CopyCounter,
  beforeCommit?: (target: Client, rows: number) => Promise<void>,
): Promise<number> {
  const name = qualify(table.schema, table.name);
  const columns = columnList(table);
  const { target } = worker;
  // On failure the caller closes both connections: the target rolls back, and a ROLLBACK sent
  // behind a broken COPY could wait forever.
  await target.query("BEGIN");
  await target.query(`SAVEPOINT ${TRUNCATE_SAVEPOINT}`);
  let freeze = true;
  try {
    await target.query(`TRUNCATE ONLY ${name}`);
    await target.query(`RELEASE SAVEPOINT ${TRUNCATE_SAVEPOINT}`);
  } catch (err) {
    if (!isServerError(err)) throw err;
    await target.query(`ROLLBACK TO SAVEPOINT ${TRUNCATE_SAVEPOINT}`);
    freeze = false;
  }
  const rows = await stream(
    worker,
    `COPY ${name}${columns} TO STDOUT`,
    `COPY ${name}${columns} FROM STDIN${freeze ? " WITH (FREEZE)" : ""}`,
    counter,
  );
  await beforeCommit?.(target, rows);
  await target.query("COMMIT");
  return rows;
}

/**
 * One range of a split table: a single COPY statement, hence its own target transaction
 * (see copyTables on retry). No FREEZE: the ranges of a table are loaded concurrently, and a
 * TRUNCATE in one of them would lock out the others and drop what they committed.
 */
async function copyRange(
  worker: Worker,
  unit: CopyUnit,
  counter: CopyCounter,
  beforeCommit?: (target: Client, rows: number) => Promise<void>,
): Promise<number> {
  const { table, range } = unit;
  if (!range) throw new Error("copyRange needs a range");
  const name = qualify(table.schema, table.name);
  const select = table.columns.map(quoteIdent).join(", ");
  const sourceSql = `COPY (SELECT ${select} FROM ONLY ${name} WHERE ${rangePredicate(range)}) TO STDOUT`;
  const targetSql = `COPY ${name}${columnList(table)} FROM STDIN`;
  if (!beforeCommit) return stream(worker, sourceSql, targetSql, counter);
  await worker.target.query("BEGIN");
  const rows = await stream(worker, sourceSql, targetSql, counter);
  await beforeCommit(worker.target, rows);
  await worker.target.query("COMMIT");
  return rows;
}

/** A statement the server refused (a SQLSTATE), not a lost connection or a server going away. */
function isServerError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) && !isTransient(err);
}
