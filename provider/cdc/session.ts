// One connection pair of a stream: the walsender (walsender.ts: copy-both, backpressure,
// manual acknowledgements) feeding an Applier, one frame at a time. Ends on stop() or on the
// first error; the stream above decides whether to open a new session.
import { withClient } from "../pg/connect";
import { MigrationError, SQLSTATE } from "../pg/errors";
import { parseLsn } from "../pg/lsn";
import type { Endpoint } from "../spec/types";
import { Applier, type BatchResult } from "./apply";
import { decodePgoutput, type PgoutputMessage } from "./pgoutput";
import { WalSender } from "./walsender";

export interface SessionConfig {
  readonly source: Endpoint;
  readonly target: Endpoint;
  readonly database: string;
  readonly slotName: string;
  readonly publication: string;
  /** Where to start when the target has no stored position. */
  readonly startLsn: bigint;
  /** Highest position the stream confirmed so far (survives sessions). */
  readonly confirmed: bigint;
  /**
   * The cutover LSN once the cutover began (pending while it is being read): transactions
   * committed at or after it are not applied.
   */
  readonly stopAt: () => Promise<bigint> | undefined;
}

export interface SessionEvents {
  started(): void;
  /** The target's stored applied commit LSN, read at session start. */
  resumed(storedLsn: bigint | undefined): void;
  committed(batch: BatchResult): void;
  /** Every source transaction before `position` is committed on the target. */
  confirmed(position: bigint): void;
  /** The source has sent WAL up to `position`. */
  walEnd(position: bigint): void;
}

/** The source closed the stream without being asked to: retried like a lost connection. */
export class StreamEndedError extends Error {
  override readonly name = "StreamEndedError";
}

const STATUS_INTERVAL_MS = 10_000;
const IDLE_CHECK_MS = 100;

export class ReplicationSession {
  private walsender?: WalSender;
  private applier?: Applier;
  /** Asynchronous work in progress: frames and timers wait for it, in order. */
  private busy?: Promise<void>;
  private received = 0;
  private processed = 0;
  /** Last keepalive: its WAL end is confirmed once the messages before it are applied. */
  private mark?: { walEnd: bigint; seq: number };
  private confirmed: bigint;
  private acknowledged = 0n;
  /** Source transactions received (in stream order) and not yet committed on the target. */
  private unapplied: { commitLsn: bigint; commitTime: number }[] = [];
  private unappliedHead = 0;
  private timers: NodeJS.Timeout[] = [];
  private state: "starting" | "streaming" | "stopping" | "ended" = "starting";
  private settle?: { resolve: () => void; reject: (err: unknown) => void };
  /** A target commit or an idle confirmation happened: the next failure starts a fresh retry count. */
  madeProgress = false;
  /** A transaction committed at or after the cutover LSN arrived: nothing more is applied. */
  private halted = false;

  constructor(
    private readonly config: SessionConfig,
    private readonly events: SessionEvents,
  ) {
    this.confirmed = config.confirmed;
  }

  /** Streams until stop() (resolves) or the first error (rejects). */
  async run(): Promise<void> {
    const { source, target, database, slotName, publication } = this.config;
    const opened = await Applier.open(target, database, slotName, (batch) =>
      this.onCommitted(batch),
    );
    this.applier = opened.applier;
    this.events.resumed(opened.storedLsn);
    const slotConfirmed = await readSlotPosition(source, database, slotName);
    if (this.state !== "starting") return;
    let startAt = this.config.startLsn;
    if (opened.storedLsn !== undefined && opened.storedLsn > startAt) startAt = opened.storedLsn;
    // Never acknowledge below what the slot already confirmed: the server would move back.
    // Everything committed before that position is on the target, so it is confirmed at once:
    // a successor worker on an idle source must not wait for new WAL to reach a cutover there.
    this.advance(startAt > slotConfirmed ? startAt : slotConfirmed);

    const walsender = await WalSender.connect(source, database);
    this.walsender = walsender;
    if (this.state !== "starting") return; // stopped meanwhile: close() ends the connection
    const ended = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    this.acknowledged = this.confirmed;
    walsender
      .stream(slotName, publication, startAt, this.confirmed, {
        started: () => {
          if (this.state === "starting") this.state = "streaming";
          this.events.started();
        },
        xlogData: (walEnd, payload) => this.exclusive(() => this.onXLogData(walEnd, payload)),
        keepalive: (walEnd, replyRequested) =>
          this.exclusive(() => this.onKeepalive(walEnd, replyRequested)),
      })
      .then(
        () => this.fail(new StreamEndedError("the source ended the replication stream")),
        (err: unknown) => this.fail(err),
      );
    this.timers.push(
      // Status updates keep wal_sender_timeout at bay even while the target is busy.
      setInterval(() => this.acknowledge(true), STATUS_INTERVAL_MS),
      setInterval(() => {
        void this.exclusive(async () => {
          await this.applier?.flushIfDue(false);
          await this.confirmIfIdle();
        });
        this.acknowledge();
      }, IDLE_CHECK_MS),
    );
    return ended;
  }

  /** Commits what is complete, acknowledges it, and ends run() successfully. */
  async stop(): Promise<void> {
    if (this.state === "ended" || this.state === "stopping") return;
    const wasStarting = this.state === "starting";
    this.state = "stopping";
    if (wasStarting && !this.settle) return; // run() sees the state and returns
    await this.exclusive(async () => {
      if (this.applier && !this.applier.inTransaction) await this.applier.flushIfDue(true);
    });
    this.acknowledge(true);
    this.end();
  }

  /** Asks the source for a keepalive now (it carries the current WAL end). */
  requestKeepalive(): void {
    this.acknowledge(true, true);
  }

  oldestUnappliedCommitTime(): number | undefined {
    return this.unapplied[this.unappliedHead]?.commitTime;
  }

  uncommittedChanges(): number {
    return this.applier?.uncommittedChanges ?? 0;
  }

  /** Releases both connections and timers; safe on every path and twice. */
  async close(): Promise<void> {
    if (this.state !== "ended") this.state = "ended";
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    const walsender = this.walsender;
    this.walsender = undefined;
    await walsender?.close();
    await this.applier?.close();
  }

  /**
   * Runs `work` now when nothing asynchronous is in progress, else after it: frames and timers
   * keep one order. A promise only when the work (or the wait) is asynchronous; it never
   * rejects (an error fails the session).
   */
  private exclusive(work: () => void | Promise<void>): void | Promise<void> {
    if (this.state === "ended") return;
    if (this.busy) {
      return this.track(this.busy.then(() => (this.state === "ended" ? undefined : work())));
    }
    let pending: void | Promise<void>;
    try {
      pending = work();
    } catch (err) {
      this.fail(err);
      return;
    }
    if (pending) return this.track(pending);
  }

  private track(pending: Promise<void>): Promise<void> {
    const tracked: Promise<void> = pending
      .catch((err: unknown) => this.fail(err))
      .then(() => {
        if (this.busy === tracked) this.busy = undefined;
      });
    this.busy = tracked;
    return tracked;
  }

  private onXLogData(walEnd: bigint, payload: Buffer): void | Promise<void> {
    this.events.walEnd(walEnd);
    const message = decodePgoutput(payload);
    this.received++;
    if (message.tag === "begin") {
      this.unapplied.push({ commitLsn: message.commitLsn, commitTime: message.commitTime });
    }
    return this.onMessage(message);
  }

  private onKeepalive(walEnd: bigint, replyRequested: boolean): void | Promise<void> {
    this.events.walEnd(walEnd);
    this.mark = { walEnd, seq: this.received };
    if (replyRequested) this.acknowledge(true);
    return this.confirmIfIdle();
  }

  private onMessage(message: PgoutputMessage): void | Promise<void> {
    // After stop() the rest of a half-read transaction is dropped; it is streamed again later.
    if (this.state === "stopping" || !this.applier || this.halted) return;
    if (message.tag === "begin") {
      const limit = this.config.stopAt();
      if (limit !== undefined) return this.beginBefore(limit, message);
    }
    return this.apply(this.applier, message);
  }

  // Transactions arrive in commit order: the first one at or after the cutover LSN means every
  // one before it has been received, and none after it may be applied.
  private async beginBefore(
    limit: Promise<bigint>,
    message: Extract<PgoutputMessage, { tag: "begin" }>,
  ): Promise<void> {
    const at = await limit;
    if (message.commitLsn >= at) return this.halt(at);
    if (this.applier) await this.apply(this.applier, message);
  }

  private apply(applier: Applier, message: PgoutputMessage): void | Promise<void> {
    const pending = applier.handle(message);
    if (pending) {
      return pending.then(() => {
        this.processed++;
        return this.confirmIfIdle();
      });
    }
    this.processed++;
    return this.confirmIfIdle();
  }

  /** Commits what precedes the cutover LSN and confirms the cutover LSN itself. */
  private async halt(limit: bigint): Promise<void> {
    this.halted = true;
    const applier = this.applier;
    if (!applier) return;
    await applier.flushIfDue(true);
    if (applier.idle) this.advance(limit);
  }

  private onCommitted(batch: BatchResult): void {
    if (batch.wroteTarget) this.madeProgress = true;
    this.events.committed(batch);
    this.advance(batch.endLsn);
  }

  // A keepalive sent after everything we have applied, with nothing open: the target holds
  // every transaction the source committed before its WAL end. Flush a due batch first — only a
  // due one: a walsender that keeps catching up sends a keepalive after nearly every
  // transaction, and committing each on its own would undo the batching (the timer commits the
  // batch once it is due, and confirms then).
  private confirmIfIdle(): void | Promise<void> {
    const mark = this.mark;
    const applier = this.applier;
    if (!mark || !applier || this.processed < mark.seq || applier.inTransaction) return;
    // Past the cutover LSN the keepalives speak of transactions that were not applied.
    if (this.halted) return;
    if (!applier.idle && !applier.batchDue) return;
    return applier.flushIfDue(false).then(() => {
      if (!applier.idle) return;
      if (this.mark === mark) this.mark = undefined;
      this.madeProgress = true;
      this.advance(mark.walEnd);
    });
  }

  private advance(position: bigint): void {
    if (position <= this.confirmed) return;
    this.confirmed = position;
    const unapplied = this.unapplied;
    while (
      this.unappliedHead < unapplied.length &&
      unapplied[this.unappliedHead].commitLsn < position
    )
      this.unappliedHead++;
    // Drop the consumed head now and then (an index, not shift(): a backlog holds thousands).
    if (this.unappliedHead > 1024 && this.unappliedHead * 2 > unapplied.length) {
      this.unapplied = unapplied.slice(this.unappliedHead);
      this.unappliedHead = 0;
    }
    this.events.confirmed(position);
  }

  // Unforced, only a new position is sent: busy sources commit thousands of times a second.
  private acknowledge(force = false, ping = false): void {
    if (!this.walsender || this.confirmed === 0n) return;
    if (!force && this.confirmed === this.acknowledged) return;
    this.acknowledged = this.confirmed;
    this.walsender.sendStatus(this.confirmed, ping);
  }

  /** Settles run() once: resolved after stop(), rejected with the first error. */
  private end(err?: unknown): void {
    const settle = this.settle;
    this.settle = undefined;
    this.state = "ended";
    if (err === undefined) settle?.resolve();
    else settle?.reject(err);
  }

  private fail(err: unknown): void {
    this.end(err ?? new Error("replication failed"));
  }
}

/** The slot's confirmed position; a missing slot is fatal (its WAL is gone). */
async function readSlotPosition(
  source: Endpoint,
  database: string,
  slotName: string,
): Promise<bigint> {
  const rows = await withClient(source, database, async (client) => {
    const result = await client.query<{ lsn: string | null }>(
      "SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1",
      [slotName],
    );
    return result.rows;
  });
  if (rows.length === 0) {
    throw new MigrationError(
      "replicate",
      `replication slot ${slotName} does not exist on the source; the migration must start over`,
      { code: SQLSTATE.undefinedObject },
    );
  }
  return rows[0].lsn ? parseLsn(rows[0].lsn) : 0n;
}
