// Table data: `parallelism.tables` workers, each with its own source connection (inside the
// clone's snapshot) and target connection, streaming COPY TO → COPY FROM, largest tables first.
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Client } from "pg";
import { from as copyFrom, to as copyTo } from "pg-copy-streams";
import { MigrationError } from "../pg/errors";
import { qualify, quoteIdent } from "../pg/ident";
import { RateWindow } from "../spec/progress";
import type { MigrationSpec, ProgressSink, TableRef } from "../spec/types";
import { runWorkers } from "../pg/pool";
import { beginAtSnapshot, hardClose, openSession } from "../pg/session";
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

interface Worker {
  readonly source: Client;
  readonly target: Client;
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

/**
 * Copies every table; resolves only when all are committed on the target. The first failure
 * cancels the copies in flight (their connections are closed, the target rolls them back) and is
 * rethrown as a MigrationError in phase "data" naming the table; the tables it interrupted are
 * reported errored as canceled. An aborted `signal` does the same with a PGM_CANCELED error.
 */
export async function copyTables(
  job: CopyJob,
  tables: readonly TableToCopy[],
): Promise<CopiedTable[]> {
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

  const open = async (): Promise<Worker> => {
    const source = await openSession(spec.source, database, "pgmigrate copy");
    let target: Client | undefined;
    try {
      await source.query("SELECT set_config('client_encoding', $1, false)", [job.encoding]);
      await beginAtSnapshot(source, job.snapshot);
      target = await openSession(spec.target, database, "pgmigrate copy");
      await target.query("SELECT set_config('client_encoding', $1, false)", [job.encoding]);
      // Safe: the post-data restore that follows commits synchronously on the same server, which
      // flushes the WAL of these commits too; a crash before that fails the clone anyway.
      await target.query("SET synchronous_commit = off");
    } catch (err) {
      await hardClose(source);
      if (target) await hardClose(target);
      throw err;
    }
    const worker = { source, target };
    // Opened after a cancel: the pool hands it nothing and close() drops it.
    live.add(worker);
    return worker;
  };

  const close = async (worker: Worker, failed: boolean): Promise<void> => {
    live.delete(worker);
    if (failed || cancel.signal.aborted) {
      await Promise.all([hardClose(worker.source), hardClose(worker.target)]);
      return;
    }
    await worker.source.query("COMMIT").catch(() => undefined);
    await Promise.all(
      [worker.source.end(), worker.target.end()].map((p) => p.catch(() => undefined)),
    );
  };

  const work = async (table: TableToCopy, worker: Worker): Promise<void> => {
    const ref: TableRef = { schema: table.schema, name: table.name };
    // Reports of one table go out in order, so a late count never follows "completed".
    let reports = progress.tableState(database, ref, "loading", { rows: 0, bytes: 0 });
    try {
      const result = await copyOne(worker, table, (count) => {
        reports = reports.then(() => progress.tableState(database, ref, "loading", count));
      });
      await reports;
      await progress.tableState(database, ref, "completed", result);
      copied.push({ ...ref, ...result });
    } catch (err) {
      const pg = { schema: ref.schema, table: ref.name };
      let error: MigrationError;
      let reason: string;
      if (cancel.signal.aborted) {
        error = new MigrationError("data", `copy of table ${display(ref)} was canceled`, {
          code: CANCELED_CODE,
          pg,
        });
        reason = firstFailure ? `canceled: ${firstFailure.message}` : error.message;
      } else {
        const why = err instanceof Error ? err.message : String(err);
        error = new MigrationError("data", `copying table ${display(ref)} failed: ${why}`, {
          cause: err,
          pg,
        });
        reason = error.message;
        firstFailure ??= error;
        cancel.abort();
      }
      await reports.catch(() => undefined);
      await progress.tableState(database, ref, "errored", { error: reason }).catch(() => undefined);
      throw error;
    }
  };

  try {
    await runWorkers(tables, spec.parallelism.tables, open, work, close, cancel.signal);
  } catch (err) {
    if (firstFailure) throw firstFailure;
    if (job.signal?.aborted) throw canceledError(database);
    throw MigrationError.wrap("data", err, `copying the tables of database "${database}"`);
  } finally {
    job.signal?.removeEventListener("abort", onAbort);
  }
  if (cancel.signal.aborted) throw canceledError(database);
  return copied;
}

/**
 * One table in one target transaction: TRUNCATE makes a restarted copy start clean and lets
 * COPY FREEZE write rows already frozen (no later anti-wraparound rewrite of the whole table).
 * Text format: binary COPY is not guaranteed to be readable by another major version.
 */
async function copyOne(
  worker: Worker,
  table: TableToCopy,
  onProgress: (count: CopyCount) => void,
): Promise<{ rows: number; bytes: number }> {
  const name = qualify(table.schema, table.name);
  // No column list when every column is generated or there are none: COPY then skips
  // generated columns itself, and a zero-column table still has rows.
  const columns = table.columns.length > 0 ? ` (${table.columns.map(quoteIdent).join(", ")})` : "";
  const { source, target } = worker;
  // On failure the caller closes both connections: the target rolls back, and a ROLLBACK sent
  // behind a broken COPY could wait forever.
  await target.query("BEGIN");
  await target.query(`TRUNCATE ONLY ${name}`);
  const into = target.query(copyFrom(`COPY ${name}${columns} FROM STDIN WITH (FREEZE)`));
  const out = source.query(copyTo(`COPY ${name}${columns} TO STDOUT`));
  const counter = new CopyCounter();
  // On a timer, not per chunk: a stalled copy reports its rate falling to 0.
  const timer = setInterval(() => onProgress(counter.sample()), PROGRESS_INTERVAL_MS);
  try {
    await pipeline(out, counter, into);
  } finally {
    clearInterval(timer);
  }
  await target.query("COMMIT");
  return { rows: into.rowCount, bytes: counter.bytes };
}
