// The source side of a session: a walsender connection streaming one slot through
// pg-copy-streams' copy-both duplex (one CopyData frame per chunk, node stream backpressure),
// standby status updates written back on the same duplex. Only public APIs of pg and
// pg-copy-streams; the socket is ours (pg's `stream` option), so a stuck close can end it.
import { Socket } from "node:net";
import type { Duplex, DuplexOptions } from "node:stream";
import { Client, type Connection, type Submittable } from "pg";
import { both as copyBoth } from "pg-copy-streams";
import { clientConfig } from "../pg/connect";
import { quoteIdent, quoteLiteral } from "../pg/ident";
import { formatLsn } from "../pg/lsn";
import type { Endpoint } from "../spec/types";

// copy-both ships with pg-copy-streams (since 4.0); @types/pg-copy-streams does not declare it.
declare module "pg-copy-streams" {
  export function both(
    txt: string,
    options?: DuplexOptions & { alignOnCopyDataFrame?: boolean },
  ): CopyBothQueryStream;
  export interface CopyBothQueryStream extends Duplex, Submittable {
    submit(connection: Connection): void;
  }
}

/** What the walsender sends: a pgoutput message, or a keepalive. */
export interface WalHandlers {
  /** The source accepted START_REPLICATION (its CopyBothResponse arrived). */
  started(): void;
  /** XLogData: `payload` is one pgoutput message; the source's WAL ends at `walEnd`. */
  xlogData(walEnd: bigint, payload: Buffer): void | Promise<void>;
  /** Primary keepalive: everything the source has up to `walEnd` has been sent. */
  keepalive(walEnd: bigint, replyRequested: boolean): void | Promise<void>;
}

const XLOG_DATA = 0x77; // 'w'
const KEEPALIVE = 0x6b; // 'k'
const STANDBY_STATUS = 0x72; // 'r'
const CLOSE_TIMEOUT_MS = 5_000;
// PostgreSQL timestamps count microseconds from 2000-01-01 00:00:00 UTC.
const PG_EPOCH_MS = 946_684_800_000n;

export class WalSender {
  private duplex?: ReturnType<typeof copyBoth>;
  private closed = false;

  private constructor(
    private readonly client: Client,
    private readonly socket: Socket,
  ) {}

  /** A replication connection (`replication=database`) to `database`, session settings pinned. */
  static async connect(source: Endpoint, database: string): Promise<WalSender> {
    let socket: Socket | undefined;
    const config = clientConfig(source, database, {
      replication: true,
      applicationName: "pgmigrate_stream",
    });
    const client = new Client({
      ...config,
      // A TLS connection wraps this socket: destroying it ends either kind.
      stream: () => (socket = new Socket()),
    });
    client.on("error", () => undefined); // reported through the stream or the next call
    try {
      await client.connect();
    } catch (err) {
      socket?.destroy();
      throw err;
    }
    if (!socket) throw new Error("the replication connection has no socket");
    return new WalSender(client, socket);
  }

  /**
   * Streams `slotName` from `startLsn` with protocol 1 of pgoutput for `publication`. Resolves
   * when the source ends the stream, rejects on an error. A handler that returns a promise
   * holds the stream (the source's sending blocks on TCP) until it settles; its rejection ends
   * the stream with that error.
   */
  stream(
    slotName: string,
    publication: string,
    startLsn: bigint,
    /** Reported as applied at once (never below what the slot confirmed: it would move back). */
    confirmed: bigint,
    handlers: WalHandlers,
  ): Promise<void> {
    // publication_names is a list of identifiers inside a string literal.
    const options = [
      "proto_version '1'",
      `publication_names ${quoteLiteral(quoteIdent(publication))}`,
    ];
    const duplex = this.client.query(
      copyBoth(
        `START_REPLICATION SLOT ${quoteIdent(slotName)} LOGICAL ${formatLsn(startLsn)} (${options.join(", ")})`,
        { alignOnCopyDataFrame: true },
      ),
    );
    this.duplex = duplex;
    // Writes wait for the CopyBothResponse: this one's callback says streaming has begun.
    duplex.write(statusFrame(confirmed, false), (err) => {
      if (!err && !this.closed) handlers.started();
    });
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (err: unknown): void => {
        if (settled) return;
        settled = true;
        reject(err);
      };
      duplex.on("error", fail);
      duplex.on("end", () => {
        if (settled) return;
        settled = true;
        resolve();
      });
      duplex.on("data", (frame: Buffer) => {
        if (settled || this.closed) return;
        let pending: void | Promise<void>;
        try {
          pending = this.dispatch(frame, handlers);
        } catch (err) {
          return fail(err);
        }
        if (!pending) return;
        duplex.pause();
        pending.then(
          () => {
            if (!settled && !this.closed) duplex.resume();
          },
          (err: unknown) => fail(err),
        );
      });
    });
  }

  /**
   * Standby status update: every source transaction before `position` is on the target
   * (written, flushed and applied alike). `replyRequested` asks for a keepalive now.
   */
  sendStatus(position: bigint, replyRequested: boolean): void {
    const duplex = this.duplex;
    if (!duplex || this.closed || duplex.writableEnded) return;
    duplex.write(statusFrame(position, replyRequested));
  }

  /** Ends the connection; destroys the socket when the server does not answer in time. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // A paused stream never reads the end of the connection: let it flow out.
    this.duplex?.resume();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_TIMEOUT_MS)));
    await Promise.race([this.client.end().catch(() => undefined), timeout]);
    clearTimeout(timer);
    this.socket.destroy();
  }

  private dispatch(frame: Buffer, handlers: WalHandlers): void | Promise<void> {
    switch (frame[0]) {
      case XLOG_DATA:
        // walStart (8), walEnd (8), sendTime (8), then the message.
        return handlers.xlogData(frame.readBigUInt64BE(9), frame.subarray(25));
      case KEEPALIVE:
        // walEnd (8), sendTime (8), replyRequested (1).
        return handlers.keepalive(frame.readBigUInt64BE(1), frame[17] === 1);
      default:
        throw new Error(
          `replication stream: unexpected message '${String.fromCharCode(frame[0])}'`,
        );
    }
  }
}

function statusFrame(position: bigint, replyRequested: boolean): Buffer {
  const frame = Buffer.alloc(34);
  frame.writeUInt8(STANDBY_STATUS, 0);
  frame.writeBigUInt64BE(position, 1); // written
  frame.writeBigUInt64BE(position, 9); // flushed
  frame.writeBigUInt64BE(position, 17); // applied
  frame.writeBigInt64BE((BigInt(Date.now()) - PG_EPOCH_MS) * 1000n, 25);
  frame.writeUInt8(replyRequested ? 1 : 0, 33);
  return frame;
}
