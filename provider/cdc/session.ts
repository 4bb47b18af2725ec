// One connection pair of a stream: the walsender (pg-logical-replication, flow control on,
// manual acknowledgements) feeding an Applier. Ends on stop() or on the first error; the
// stream above decides whether to open a new session.
import type { Socket } from "node:net";
import { LogicalReplicationService } from "pg-logical-replication";
import { clientConfig, withClient } from "../pg/connect";
import { MigrationError, SQLSTATE } from "../pg/errors";
import { formatLsn, parseLsn } from "../pg/lsn";
import type { Endpoint } from "../spec/types";
import { Applier, type BatchResult } from "./apply";
import { PgoutputTextPlugin } from "./plugin";
import type { PgoutputMessage } from "./pgoutput";

export interface SessionConfig {
  readonly source: Endpoint;
  readonly target: Endpoint;
  readonly database: string;
  readonly slotName: string;
  readonly publication: string;
  /** Where to start when the target has no stored position. */
  readonly startLsn: string;
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
  resumed(storedLsn: string | undefined): void;
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
const DESTROY_TIMEOUT_MS = 5_000;

export class ReplicationSession {
  private service?: LogicalReplicationService;
  private applier?: Applier;
  private readonly plugin: PgoutputTextPlugin;
  private lock: Promise<void> = Promise.resolve();
  private processed = 0;
  /** Last keepalive: its WAL end is confirmed once the messages before it are applied. */
  private mark?: { walEnd: bigint; seq: number };
  private confirmed: bigint;
  private acknowledged = 0n;
  /** Source transactions received (in stream order) and not yet committed on the target. */
  private unapplied: { commitLsn: bigint; commitTime: number }[] = [];
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
    this.plugin = new PgoutputTextPlugin(config.publication, (m) => this.received(m));
  }

  /** Streams until stop() (resolves) or the first error (rejects). */
  async run(): Promise<void> {
    const { source, target, database, slotName } = this.config;
    const opened = await Applier.open(target, database, slotName, (batch) =>
      this.onCommitted(batch),
    );
    this.applier = opened.applier;
    this.events.resumed(opened.storedLsn);
    const slotConfirmed = await readSlotPosition(source, database, slotName);
    if (this.state !== "starting") return;
    let startAt = parseLsn(this.config.startLsn);
    if (opened.storedLsn !== undefined && parseLsn(opened.storedLsn) > startAt)
      startAt = parseLsn(opened.storedLsn);
    // Never acknowledge below what the slot already confirmed: the server would move back.
    // Everything committed before that position is on the target, so it is confirmed at once:
    // a successor worker on an idle source must not wait for new WAL to reach a cutover there.
    this.advance(startAt > slotConfirmed ? startAt : slotConfirmed);

    const service = new LogicalReplicationService(
      clientConfig(source, database, { replication: true, applicationName: "pgmigrate_stream" }),
      { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: true } },
    );
    this.service = service;
    const ended = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    service.on("start", () => {
      if (this.state === "starting") this.state = "streaming";
      this.events.started();
    });
    service.on("data", (lsn: string, message: PgoutputMessage) => {
      this.events.walEnd(parseLsn(lsn));
      return this.serialize(() => this.onMessage(message));
    });
    service.on("heartbeat", (lsn: string, _time: number, shouldRespond: boolean) => {
      const walEnd = parseLsn(lsn);
      this.events.walEnd(walEnd);
      this.mark = { walEnd, seq: this.plugin.received };
      if (shouldRespond) this.acknowledge(true);
      void this.serialize(() => this.confirmIfIdle());
    });
    service.on("error", (err: unknown) => this.fail(err));
    service.subscribe(this.plugin, slotName, formatLsn(startAt)).then(
      () => this.fail(new StreamEndedError("the source ended the replication stream")),
      (err: unknown) => this.fail(err),
    );
    this.timers.push(
      // Status updates keep wal_sender_timeout at bay even while the target is busy.
      setInterval(() => this.acknowledge(true), STATUS_INTERVAL_MS),
      setInterval(() => {
        void this.serialize(async () => {
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
    await this.serialize(async () => {
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
    return this.unapplied[0]?.commitTime;
  }

  uncommittedChanges(): number {
    return this.applier?.uncommittedChanges ?? 0;
  }

  /** Releases both connections and timers; safe on every path and twice. */
  async close(): Promise<void> {
    if (this.state !== "ended") this.state = "ended";
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    const service = this.service;
    this.service = undefined;
    if (service) await endService(service);
    await this.applier?.close();
  }

  private received(message: PgoutputMessage): void {
    if (message.tag === "begin") {
      this.unapplied.push({
        commitLsn: parseLsn(message.commitLsn),
        commitTime: message.commitTime,
      });
    }
  }

  private serialize(work: () => Promise<void>): Promise<void> {
    const next = this.lock.then(async () => {
      if (this.state === "ended") return;
      try {
        await work();
      } catch (err) {
        this.fail(err);
      }
    });
    this.lock = next;
    return next;
  }

  private async onMessage(message: PgoutputMessage): Promise<void> {
    // After stop() the rest of a half-read transaction is dropped; it is streamed again later.
    if (this.state === "stopping" || !this.applier || this.halted) return;
    if (message.tag === "begin") {
      const limit = this.config.stopAt();
      // Transactions arrive in commit order: the first one at or after the cutover LSN means
      // every one before it has been received, and none after it may be applied.
      if (limit !== undefined && parseLsn(message.commitLsn) >= (await limit)) {
        await this.halt(await limit);
        return;
      }
    }
    await this.applier.handle(message);
    this.processed++;
    await this.confirmIfIdle();
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
    this.advance(parseLsn(batch.endLsn));
  }

  // A keepalive sent after everything we have applied, with nothing open: the target holds
  // every transaction the source committed before its WAL end. Flush a due batch first.
  private async confirmIfIdle(): Promise<void> {
    const mark = this.mark;
    const applier = this.applier;
    if (!mark || !applier || this.processed < mark.seq || applier.inTransaction) return;
    // Past the cutover LSN the keepalives speak of transactions that were not applied.
    if (this.halted) return;
    await applier.flushIfDue(true);
    if (!applier.idle) return;
    if (this.mark === mark) this.mark = undefined;
    this.madeProgress = true;
    this.advance(mark.walEnd);
  }

  private advance(position: bigint): void {
    if (position <= this.confirmed) return;
    this.confirmed = position;
    while (this.unapplied.length > 0 && this.unapplied[0].commitLsn < position)
      this.unapplied.shift();
    this.events.confirmed(position);
  }

  // The library reports `lsn + 1` as written/flushed/applied; we report the position itself,
  // as PostgreSQL's subscriber does (a commit record may start exactly at the previous end).
  // Unforced, only a new position is sent: busy sources commit thousands of times a second.
  private acknowledge(force = false, ping = false): void {
    if (!this.service || this.confirmed === 0n) return;
    if (!force && this.confirmed === this.acknowledged) return;
    this.acknowledged = this.confirmed;
    this.service.acknowledge(formatLsn(this.confirmed - 1n), ping).catch(() => undefined);
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

/**
 * Ends the walsender connection. Flow control may have left the socket paused, and a paused
 * socket never reports its end: resume it, and destroy it if ending still hangs. (The library
 * keeps the client private; we reach for it only here.)
 */
async function endService(service: LogicalReplicationService): Promise<void> {
  const internals = service as unknown as { _connection?: { stream?: Socket } | null };
  const socket = internals._connection?.stream;
  socket?.resume();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, DESTROY_TIMEOUT_MS)));
  await Promise.race([service.destroy().catch(() => undefined), timeout]);
  clearTimeout(timer);
  socket?.destroy();
}
