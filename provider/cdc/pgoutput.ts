// Decoder for the pgoutput logical replication protocol, version 1 (PostgreSQL 10+). Column
// values stay the exact text PostgreSQL sent; an unchanged TOAST value is its own marker; LSNs
// stay 64-bit integers (formatted only where they leave cdc/).
import { constants } from "node:buffer";

/** A column whose TOASTed value did not change: the source did not send it. */
export const UNCHANGED_TOAST: unique symbol = Symbol("unchanged TOAST value");

/** Text as sent by the source's output function, NULL, or "unchanged TOAST value". */
export type ColumnValue = string | null | typeof UNCHANGED_TOAST;

export interface RelationColumn {
  readonly name: string;
  /** Part of the replica identity (every column when the identity is FULL). */
  readonly isKey: boolean;
  readonly typeOid: number;
  /** atttypmod: length of char(n), precision of numeric(p,s); -1 when none. */
  readonly typeMod: number;
}

/** 'd' default (primary key), 'n' nothing, 'f' full, 'i' index. */
export type ReplicaIdentity = "d" | "n" | "f" | "i";

export interface RelationMessage {
  readonly tag: "relation";
  readonly relationOid: number;
  readonly schema: string;
  readonly name: string;
  readonly replicaIdentity: ReplicaIdentity;
  readonly columns: readonly RelationColumn[];
}

export interface BeginMessage {
  readonly tag: "begin";
  /** LSN of the transaction's commit record. */
  readonly commitLsn: bigint;
  /** Milliseconds since the Unix epoch, source clock. */
  readonly commitTime: number;
  readonly xid: number;
}

export interface CommitMessage {
  readonly tag: "commit";
  readonly commitLsn: bigint;
  /** End of the commit record: where streaming resumes after this transaction. */
  readonly endLsn: bigint;
  readonly commitTime: number;
}

export interface InsertMessage {
  readonly tag: "insert";
  readonly relationOid: number;
  readonly newTuple: readonly ColumnValue[];
}

export interface UpdateMessage {
  readonly tag: "update";
  readonly relationOid: number;
  /** Old replica identity ('K': key columns, others null) or whole old row ('O', identity FULL). */
  readonly oldTuple?: readonly ColumnValue[];
  readonly oldKind?: "key" | "full";
  readonly newTuple: readonly ColumnValue[];
}

export interface DeleteMessage {
  readonly tag: "delete";
  readonly relationOid: number;
  readonly oldTuple: readonly ColumnValue[];
  readonly oldKind: "key" | "full";
}

export interface TruncateMessage {
  readonly tag: "truncate";
  readonly relationOids: readonly number[];
  readonly cascade: boolean;
  readonly restartIdentity: boolean;
}

/** Messages we do not act on: origin, type, logical decoding messages. */
export interface IgnoredMessage {
  readonly tag: "ignored";
  readonly kind: string;
}

/**
 * A row change holding a value too large to become one JavaScript string (V8's limit, ~512 MiB
 * of text): decoding stops there and the applier fails the migration naming table and column,
 * instead of crashing the worker on the same position again and again.
 */
export interface OversizedMessage {
  readonly tag: "oversized";
  readonly relationOid: number;
  /** Position of the column in the relation. */
  readonly column: number;
  readonly bytes: number;
}

export type PgoutputMessage =
  | OversizedMessage
  | RelationMessage
  | BeginMessage
  | CommitMessage
  | InsertMessage
  | UpdateMessage
  | DeleteMessage
  | TruncateMessage
  | IgnoredMessage;

const TRUNCATE_CASCADE = 1;
const TRUNCATE_RESTART_SEQS = 2;
// PostgreSQL timestamps count microseconds from 2000-01-01 00:00:00 UTC.
const PG_EPOCH_MS = 946_684_800_000;

/** The longest text a value may have in bytes: every UTF-8 string of this size fits in V8. */
export const MAX_VALUE_BYTES = constants.MAX_STRING_LENGTH;

/** Thrown by the reader for a value over the limit; decodePgoutput turns it into a message. */
class ValueTooLarge extends Error {
  constructor(
    readonly column: number,
    readonly bytes: number,
  ) {
    super(`value of ${bytes} bytes`);
  }
}

/** A cursor over one message; one instance serves every message (reset per message). */
class Reader {
  private offset = 0;
  private buf: Buffer = Buffer.alloc(0);
  private maxValueBytes = 0;

  reset(buf: Buffer, maxValueBytes: number): this {
    this.buf = buf;
    this.offset = 0;
    this.maxValueBytes = maxValueBytes;
    return this;
  }

  byte(): number {
    return this.buf.readUInt8(this.offset++);
  }
  char(): string {
    return String.fromCharCode(this.byte());
  }
  int16(): number {
    const v = this.buf.readInt16BE(this.offset);
    this.offset += 2;
    return v;
  }
  int32(): number {
    const v = this.buf.readInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  uint32(): number {
    const v = this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  lsn(): bigint {
    const v = this.buf.readBigUInt64BE(this.offset);
    this.offset += 8;
    return v;
  }
  timestampMs(): number {
    const micros = this.buf.readBigInt64BE(this.offset);
    this.offset += 8;
    return Number(micros / 1000n) + PG_EPOCH_MS;
  }
  /** NUL-terminated string (names in Relation messages). */
  cstring(): string {
    const end = this.buf.indexOf(0, this.offset);
    if (end < 0) throw new Error("pgoutput: unterminated string");
    const s = this.buf.toString("utf8", this.offset, end);
    this.offset = end + 1;
    return s;
  }
  /** Length-prefixed bytes as UTF-8 text: the connection's client_encoding is UTF8. */
  text(column: number): string {
    const len = this.int32();
    if (len > this.maxValueBytes) throw new ValueTooLarge(column, len);
    const s = this.buf.toString("utf8", this.offset, this.offset + len);
    this.offset += len;
    return s;
  }
  tuple(): ColumnValue[] {
    const count = this.int16();
    const values: ColumnValue[] = new Array<ColumnValue>(count);
    for (let i = 0; i < count; i++) {
      const kind = this.char();
      if (kind === "n") values[i] = null;
      else if (kind === "u") values[i] = UNCHANGED_TOAST;
      else if (kind === "t") values[i] = this.text(i);
      else throw new Error(`pgoutput: unexpected column kind '${kind}' (binary mode is not used)`);
    }
    return values;
  }
}

const reader = new Reader();

/**
 * Decodes one pgoutput message (the payload of an XLogData frame). A value longer than
 * `maxValueBytes` (default: what V8 can hold) yields an "oversized" message for its row.
 */
export function decodePgoutput(buf: Buffer, maxValueBytes = MAX_VALUE_BYTES): PgoutputMessage {
  try {
    return decode(reader.reset(buf, maxValueBytes));
  } catch (err) {
    if (!(err instanceof ValueTooLarge)) throw err;
    // Row messages start with their kind byte and the relation's OID.
    return {
      tag: "oversized",
      relationOid: buf.readUInt32BE(1),
      column: err.column,
      bytes: err.bytes,
    };
  }
}

function decode(r: Reader): PgoutputMessage {
  const kind = r.char();
  switch (kind) {
    case "B": {
      const commitLsn = r.lsn();
      const commitTime = r.timestampMs();
      return { tag: "begin", commitLsn, commitTime, xid: r.uint32() };
    }
    case "C": {
      r.byte(); // flags, unused
      const commitLsn = r.lsn();
      const endLsn = r.lsn();
      return { tag: "commit", commitLsn, endLsn, commitTime: r.timestampMs() };
    }
    case "R": {
      const relationOid = r.uint32();
      const schema = r.cstring() || "pg_catalog";
      const name = r.cstring();
      const replicaIdentity = r.char() as ReplicaIdentity;
      const count = r.int16();
      const columns: RelationColumn[] = [];
      for (let i = 0; i < count; i++) {
        const flags = r.byte();
        const columnName = r.cstring();
        const typeOid = r.uint32();
        const typeMod = r.int32();
        columns.push({ name: columnName, isKey: (flags & 1) === 1, typeOid, typeMod });
      }
      return { tag: "relation", relationOid, schema, name, replicaIdentity, columns };
    }
    case "I": {
      const relationOid = r.uint32();
      r.char(); // 'N'
      return { tag: "insert", relationOid, newTuple: r.tuple() };
    }
    case "U": {
      const relationOid = r.uint32();
      let marker = r.char();
      let oldTuple: ColumnValue[] | undefined;
      let oldKind: "key" | "full" | undefined;
      if (marker === "K" || marker === "O") {
        oldKind = marker === "K" ? "key" : "full";
        oldTuple = r.tuple();
        marker = r.char();
      }
      if (marker !== "N") throw new Error(`pgoutput: update without new tuple ('${marker}')`);
      return { tag: "update", relationOid, oldTuple, oldKind, newTuple: r.tuple() };
    }
    case "D": {
      const relationOid = r.uint32();
      const oldKind = r.char() === "O" ? "full" : "key";
      return { tag: "delete", relationOid, oldKind, oldTuple: r.tuple() };
    }
    case "T": {
      const count = r.int32();
      const options = r.byte();
      const relationOids: number[] = [];
      for (let i = 0; i < count; i++) relationOids.push(r.uint32());
      return {
        tag: "truncate",
        relationOids,
        cascade: (options & TRUNCATE_CASCADE) !== 0,
        restartIdentity: (options & TRUNCATE_RESTART_SEQS) !== 0,
      };
    }
    default:
      // 'O' origin, 'Y' type, 'M' message: nothing to apply.
      return { tag: "ignored", kind };
  }
}
