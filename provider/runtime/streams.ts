// The change streams of one online migration (one per database): started after the copy or on
// resume, their counters written to the control store every few seconds, stopped at cutover,
// cancel or failure. A stream that dies makes `failure` reject.
import { startReplication, type ApplyStats, type ReplicationStream } from "../cdc";
import type { Queryable } from "../control/db";
import { recordLatencySample } from "../control/latency";
import { writeStreamStats, type StreamStats } from "../control/progress";
import { publicationName, slotName } from "../pg/names";
import { sleep } from "../pg/retry";
import type { MigrationSpec } from "../spec/types";
import type { Journal } from "./journal";

export const STATS_INTERVAL_MS = 3_000;
const FIRST_MEASUREMENT_MS = 5_000;

/**
 * The cumulative part of the stats, carried over from earlier workers. Not incomingChanges: it
 * is the backlog (received, not yet applied), and what a stopped worker had buffered but not
 * applied is streamed again to its successor.
 */
export type Counters = Pick<
  StreamStats,
  "inserts" | "updates" | "deletes" | "truncates" | "appliedChanges"
>;

const NO_COUNTS: Counters = {
  inserts: 0,
  updates: 0,
  deletes: 0,
  truncates: 0,
  appliedChanges: 0,
};

export class StreamSet {
  private readonly streams = new Map<string, ReplicationStream>();
  /** Counters of earlier workers: a resumed stream's counters continue from them. */
  private readonly base = new Map<string, Counters>();
  private readonly stopping = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  /** When the last latency sample was recorded (ms): at most one per STATS_INTERVAL_MS. */
  private lastSampleAt = 0;
  private rejectFailure: (err: unknown) => void = () => undefined;
  /** Rejects with the first stream error that was not caused by our own stop(). */
  readonly failure: Promise<never>;

  constructor(
    private readonly db: Queryable,
    private readonly spec: MigrationSpec,
    private readonly journal: Journal,
  ) {
    this.failure = new Promise<never>((_, reject) => (this.rejectFailure = reject));
    this.failure.catch(() => undefined); // observed by whoever races it
  }

  has(database: string): boolean {
    return this.streams.has(database);
  }

  /**
   * Starts streaming `database` from `startLsn` (the target's stored LSN wins when later);
   * `previous` are the counters recorded before a restart; `stopAt`, the cutover LSN of a
   * cutover under way (nothing committed at or after it is applied).
   */
  async start(
    database: string,
    startLsn: string,
    previous: Counters = NO_COUNTS,
    stopAt?: string,
  ): Promise<void> {
    const stream = await startReplication({
      stopAt,
      source: this.spec.source,
      target: this.spec.target,
      database,
      slotName: slotName(this.spec.migrationName, database),
      publication: publicationName(this.spec.migrationName),
      startLsn,
      // An outage is waited out (the slot keeps the WAL); the user sees that it is.
      onRetry: (attempt, delayMs, err) => {
        const reason = err instanceof Error ? err.message : String(err);
        void this.journal.event(
          "warning",
          `replication interrupted (${reason}); reconnecting in ${Math.round(delayMs / 1000)} s, attempt ${attempt}`,
          database,
        );
      },
    });
    this.streams.set(database, stream);
    this.base.set(database, previous);
    // The first latency comes with the source's first keepalive, within milliseconds: wait for
    // it (briefly) and record it, so outputs carry a latency as soon as replication is announced.
    const deadline = Date.now() + FIRST_MEASUREMENT_MS;
    while (stream.stats().latencySeconds === null && Date.now() < deadline) {
      await sleep(50);
    }
    await this.writeStats();
    stream.done.catch((err: unknown) => {
      if (!this.stopping.has(database)) this.rejectFailure(err);
    });
    if (!this.timer) {
      this.timer = setInterval(() => void this.writeStats(), STATS_INTERVAL_MS);
    }
  }

  /** From now on `database`'s stream applies nothing committed at or after `lsn` (see ReplicationStream.stopAt). */
  stopAt(database: string, lsn: Promise<string>): void {
    const stream = this.streams.get(database);
    if (!stream) throw new Error(`no change stream for database "${database}"`);
    stream.stopAt(lsn);
  }

  /** Applies everything up to `lsn` on `database`'s stream. */
  async waitForLsn(database: string, lsn: string, signal?: AbortSignal): Promise<void> {
    const stream = this.streams.get(database);
    if (!stream) throw new Error(`no change stream for database "${database}"`);
    await Promise.race([stream.waitForLsn(lsn, { signal }), this.failure]);
  }

  /** Writes every stream's counters and latency to the control store, and a latency sample. */
  async writeStats(): Promise<void> {
    await Promise.all([this.writeCounters(), this.writeLatencySample()]);
  }

  /** One sample of the migration's latency (its slowest stream) for the history. */
  private async writeLatencySample(): Promise<void> {
    // The timer's ticks qualify (a little early is fine); extra writes at start/stop do not.
    if (Date.now() - this.lastSampleAt < STATS_INTERVAL_MS - 500) return;
    const stats = [...this.streams.values()].map((stream) => stream.stats());
    const latencies = stats
      .map((s) => s.latencySeconds)
      .filter((l): l is number => typeof l === "number");
    if (latencies.length === 0) return;
    const lags = stats.map((s) => s.lagBytes);
    const lagBytes = lags.every((l) => typeof l === "number")
      ? lags.reduce<number>((sum, l) => sum + (l ?? 0), 0)
      : null;
    this.lastSampleAt = Date.now();
    await recordLatencySample(this.db, this.journal.fence, Math.max(...latencies), lagBytes).catch(
      (err: unknown) =>
        this.journal.event("warning", `could not record a latency sample: ${String(err)}`),
    );
  }

  private async writeCounters(): Promise<void> {
    await Promise.all(
      [...this.streams].map(async ([database, stream]) => {
        const s = stream.stats();
        const b = this.base.get(database) ?? NO_COUNTS;
        await writeStreamStats(this.db, this.journal.fence, database, {
          inserts: b.inserts + s.inserts,
          updates: b.updates + s.updates,
          deletes: b.deletes + s.deletes,
          truncates: b.truncates + s.truncates,
          appliedChanges: b.appliedChanges + s.appliedChanges,
          // The stream counts what it received and what it applied; users read the difference.
          incomingChanges: Math.max(0, s.incomingChanges - s.appliedChanges),
          appliedLsn: s.appliedLsn ?? null,
          appliedCommitTime: s.appliedCommitTime,
          latencySeconds: s.latencySeconds ?? null,
          lagBytes: s.lagBytes ?? null,
        }).catch((err: unknown) =>
          this.journal.event("warning", `could not record replication stats: ${String(err)}`),
        );
      }),
    );
  }

  /** Stops one stream (after writing its final counters); returns its final stats. */
  async stop(database: string): Promise<ApplyStats | undefined> {
    const stream = this.streams.get(database);
    if (!stream) return undefined;
    this.stopping.add(database);
    await this.writeStats();
    this.streams.delete(database);
    await stream.stop();
    await stream.done.catch(() => undefined);
    return stream.stats();
  }

  /** Stops every stream; never throws (used on every exit path). */
  async stopAll(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await Promise.all(
      [...this.streams.keys()].map((database) =>
        this.stop(database).catch((err: unknown) =>
          this.journal.event("warning", `stopping the change stream: ${String(err)}`, database),
        ),
      ),
    );
  }
}
