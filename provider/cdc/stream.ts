// The public change stream of one database: sessions restarted with backoff after connection
// losses (resuming from the position stored on the target), counters, latency, waitForLsn.
import { settleSslMode } from "../pg/connect";
import { MigrationError, SQLSTATE, isTransient, pgFields } from "../pg/errors";
import { formatLsn, parseLsn } from "../pg/lsn";
import { backoffMs, OUTAGE_WINDOW_MS, RetryWindow } from "../pg/retry";
import type { Endpoint } from "../spec/types";
import type { ApplyPaths, BatchResult } from "./apply";
import { ReplicationSession, StreamEndedError, type SessionEvents } from "./session";

export interface ApplyStats {
  inserts: number;
  updates: number;
  deletes: number;
  truncates: number;
  /** Changes applied and committed on the target. */
  appliedChanges: number;
  /** Changes received from the source (applied or buffered). */
  incomingChanges: number;
  /** Commit LSN of the last source transaction committed on the target. */
  appliedLsn: string;
  /** Its commit time on the source (ms since the epoch); null until this stream applied one. */
  appliedCommitTime: number | null;
  /** Seconds the target is behind the source: 0 when caught up; from commit timestamps and keepalives. null before any message. */
  latencySeconds: number | null;
  /** Bytes between the source's WAL end (last keepalive/xlogdata) and the confirmed applied position. */
  lagBytes: number;
  /** Committed chunks of changes by how they were applied (set-based, in order, replayed). */
  paths: ApplyPaths;
}

export interface ReplicationStream {
  stats(): ApplyStats;
  /** Resolves when every source transaction committed at or before `lsn` is committed on the target (a keepalive/standby beyond lsn with nothing pending counts). */
  waitForLsn(lsn: string, options?: { signal?: AbortSignal; timeoutMs?: number }): Promise<void>;
  /**
   * Applies nothing committed at or after the position `lsn` resolves to (the cutover LSN);
   * while it is pending, no further transaction is applied. waitForLsn(that position) then
   * resolves once everything committed before it is on the target.
   */
  stopAt(lsn: Promise<string>): void;
  /** Stops streaming cleanly (flushes what is applied, acknowledges it, closes connections). */
  stop(): Promise<void>;
  /** Settles when the stream ends: resolves after stop(), rejects with a MigrationError on a fatal error (after retries for transient ones). */
  readonly done: Promise<void>;
}

export interface ReplicationOptions {
  source: Endpoint;
  target: Endpoint;
  database: string;
  slotName: string;
  publication: string;
  /** Where to start when the target has no stored LSN for this slot yet (the slot's consistentPoint). */
  startLsn: string;
  /** The cutover LSN when the stream is resumed during a cutover: see ReplicationStream.stopAt. */
  stopAt?: string;
  /** Called at most every ~second with fresh stats (the worker writes them to the control store). */
  onStats?: (stats: ApplyStats) => void;
  /**
   * Reconnects with backoff after transient connection loss on either side for up to
   * `retryWindowMs` of continuous failure (default 30 minutes: a source rebooted or failed
   * over by its provider comes back within that; the slot keeps the WAL meanwhile), or at
   * most `maxRetries` times in a row when given.
   */
  maxRetries?: number;
  retryWindowMs?: number;
  /** Called before each reconnection attempt (the worker shows it as an event). */
  onRetry?: (attempt: number, delayMs: number, err: unknown) => void;
}

const STATS_INTERVAL_MS = 1_000;
const KEEPALIVE_REQUEST_MS = 500;
// A WAL page starts with a header (24 bytes, 40 at a segment start) that holds no records: an
// insert position just past it is reached when the source has sent up to the page boundary.
const WAL_PAGE = 8192n;
const LONG_PAGE_HEADER = 40n;

/** Lost connections, restarts, and a slot still held by the walsender we just lost. */
function retryable(err: unknown): boolean {
  return (
    isTransient(err) ||
    err instanceof StreamEndedError ||
    pgFields(err).code === SQLSTATE.objectInUse
  );
}

interface Waiter {
  readonly target: bigint;
  resolve(): void;
  reject(err: unknown): void;
}

class Replication implements ReplicationStream {
  readonly done: Promise<void>;
  readonly started: Promise<void>;
  private markStarted?: () => void;
  private session?: ReplicationSession;
  private stopping = false;
  private wake?: () => void;
  private readonly counts = { inserts: 0, updates: 0, deletes: 0, truncates: 0 };
  private readonly paths: ApplyPaths = { setBased: 0, ordered: 0, replayed: 0 };
  private appliedLsn: bigint;
  private appliedCommitTime: number | null = null;
  private limit?: Promise<bigint>;
  private confirmed = 0n;
  private walEnd = 0n;
  private messageSeen = false;
  /** Oldest unapplied commit time of a failed session, until its successor confirms progress. */
  private carriedOldest?: number;
  private readonly waiters = new Set<Waiter>();
  /** Why waiting is pointless once the stream has ended. */
  private endedWith?: unknown;

  constructor(private readonly options: ReplicationOptions) {
    this.appliedLsn = parseLsn(options.startLsn);
    if (options.stopAt !== undefined) this.stopAt(Promise.resolve(options.stopAt));
    this.started = new Promise<void>((resolve) => (this.markStarted = resolve));
    this.done = this.run();
    this.done.catch(() => undefined); // observed through `done`; never an unhandled rejection
    const timer = options.onStats ? setInterval(() => this.report(), STATS_INTERVAL_MS) : undefined;
    timer?.unref();
    void this.done.then(
      () => this.finish(timer),
      (err: unknown) => this.finish(timer, err),
    );
  }

  stats(): ApplyStats {
    const { inserts, updates, deletes, truncates } = this.counts;
    const applied = inserts + updates + deletes + truncates;
    const oldest = this.session?.oldestUnappliedCommitTime() ?? this.carriedOldest;
    return {
      ...this.counts,
      appliedChanges: applied,
      incomingChanges: applied + (this.session?.uncommittedChanges() ?? 0),
      appliedLsn: formatLsn(this.appliedLsn),
      appliedCommitTime: this.appliedCommitTime,
      latencySeconds: !this.messageSeen
        ? null
        : oldest === undefined
          ? 0
          : Math.max(0, (Date.now() - oldest) / 1000),
      lagBytes: this.walEnd > this.confirmed ? Number(this.walEnd - this.confirmed) : 0,
      paths: { ...this.paths },
    };
  }

  waitForLsn(
    lsn: string,
    options: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<void> {
    const target = parseLsn(lsn);
    if (this.reached(target)) return Promise.resolve();
    if (this.endedWith) return Promise.reject(this.endedWith);
    return new Promise<void>((resolve, reject) => {
      const timers: NodeJS.Timeout[] = [];
      const onAbort = (): void =>
        waiter.reject(new MigrationError("replicate", `waiting for ${lsn} was aborted`));
      const cleanup = (): void => {
        timers.forEach((t) => clearTimeout(t));
        options.signal?.removeEventListener("abort", onAbort);
        this.waiters.delete(waiter);
      };
      const waiter: Waiter = {
        target,
        resolve: () => (cleanup(), resolve()),
        reject: (err) => (cleanup(), reject(err)),
      };
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener("abort", onAbort);
      this.waiters.add(waiter);
      // Keepalives carry the source's WAL end: ask for them instead of waiting for the next.
      timers.push(setInterval(() => this.session?.requestKeepalive(), KEEPALIVE_REQUEST_MS));
      this.session?.requestKeepalive();
      if (options.timeoutMs !== undefined) {
        timers.push(
          setTimeout(
            () =>
              waiter.reject(
                new MigrationError(
                  "replicate",
                  `the target did not reach ${lsn} within ${options.timeoutMs} ms`,
                ),
              ),
            options.timeoutMs,
          ),
        );
      }
    });
  }

  stopAt(lsn: Promise<string>): void {
    const limit = lsn.then(parseLsn);
    limit.catch(() => undefined); // a session waiting for it fails with the error
    this.limit = limit;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.session?.stop();
    await this.done.catch(() => undefined);
  }

  private readonly events: SessionEvents = {
    started: () => this.markStarted?.(),
    resumed: (storedLsn: bigint | undefined) => {
      if (storedLsn !== undefined && storedLsn > this.appliedLsn) this.appliedLsn = storedLsn;
    },
    committed: (batch: BatchResult) => {
      this.messageSeen = true;
      for (const k of ["inserts", "updates", "deletes", "truncates"] as const)
        this.counts[k] += batch.counts[k];
      for (const k of ["setBased", "ordered", "replayed"] as const) this.paths[k] += batch.paths[k];
      if (batch.wroteTarget) {
        this.appliedLsn = batch.commitLsn;
        this.appliedCommitTime = batch.commitTime;
      }
    },
    confirmed: (position: bigint) => {
      this.messageSeen = true;
      this.carriedOldest = undefined;
      if (position > this.confirmed) this.confirmed = position;
      for (const w of this.waiters) if (this.reached(w.target)) w.resolve();
    },
    walEnd: (position: bigint) => {
      this.messageSeen = true;
      if (position > this.walEnd) this.walEnd = position;
    },
  };

  private reached(target: bigint): boolean {
    const c = this.confirmed;
    return c >= target || (c > 0n && c % WAL_PAGE === 0n && target - c <= LONG_PAGE_HEADER);
  }

  private async run(): Promise<void> {
    // The replication library opens its own connections: settle "prefer" once beforehand.
    const source = await settleSslMode(this.options.source, this.options.database);
    const maxRetries = this.options.maxRetries ?? Number.POSITIVE_INFINITY;
    const window = new RetryWindow(this.options.retryWindowMs ?? OUTAGE_WINDOW_MS);
    let attempt = 0;
    while (!this.stopping) {
      const session = new ReplicationSession(
        {
          ...this.options,
          source,
          startLsn: parseLsn(this.options.startLsn),
          confirmed: this.confirmed,
          stopAt: () => this.limit,
        },
        this.events,
      );
      this.session = session;
      try {
        await session.run();
        return;
      } catch (err) {
        if (this.stopping) return;
        if (session.madeProgress) attempt = 0;
        const inWindow = window.failed(session.madeProgress);
        if (!retryable(err) || attempt >= maxRetries || !inWindow) {
          throw replicateError(err, this.options, attempt);
        }
        attempt++;
        this.carriedOldest = session.oldestUnappliedCommitTime() ?? this.carriedOldest;
        try {
          this.options.onRetry?.(attempt, backoffMs(attempt), err);
        } catch {
          // A failing observer must not stop replication.
        }
      } finally {
        this.session = undefined;
        await session.close();
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, backoffMs(attempt));
        this.wake = () => (clearTimeout(timer), resolve());
      });
      this.wake = undefined;
    }
  }

  private report(): void {
    try {
      this.options.onStats?.(this.stats());
    } catch {
      // A failing observer must not stop replication.
    }
  }

  private finish(timer: NodeJS.Timeout | undefined, err?: unknown): void {
    if (timer) clearInterval(timer);
    this.report();
    this.endedWith =
      err ??
      new MigrationError(
        "replicate",
        `replication of ${this.options.database} stopped before reaching the position`,
      );
    for (const w of this.waiters) w.reject(this.endedWith);
  }
}

function replicateError(
  err: unknown,
  options: ReplicationOptions,
  attempts: number,
): MigrationError {
  if (err instanceof MigrationError) return err;
  const context =
    attempts > 0
      ? `replicating ${options.database} (gave up after ${attempts} reconnection attempts)`
      : `replicating ${options.database}`;
  return MigrationError.wrap("replicate", err, context);
}

/** Starts streaming `publication` through `slotName` into the target; resolves once streaming. */
export async function startReplication(options: ReplicationOptions): Promise<ReplicationStream> {
  const stream = new Replication(options);
  await Promise.race([stream.started, stream.done]);
  return stream;
}
