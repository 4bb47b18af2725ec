// Target side of a stream: applies decoded transactions in source order, many per target
// transaction, and records the last applied commit LSN in that same transaction.
import type { Client } from "pg";
import { connect } from "../pg/connect";
import { MigrationError, SQLSTATE, pgFields } from "../pg/errors";
import { quoteIdent } from "../pg/ident";
import { formatLsn, parseLsn } from "../pg/lsn";
import type { Endpoint } from "../spec/types";
import { installBookkeeping, readAppliedLsn, recordAppliedLsn } from "./bookkeeping";
import {
  MAX_VALUE_BYTES,
  type CommitMessage,
  type PgoutputMessage,
  type RelationMessage,
} from "./pgoutput";
import type { ApplyRelation, Change } from "./changes";
import { applyChanges, applyError } from "./execute";
import { targetTable } from "./target-columns";

export interface ChangeCounts {
  inserts: number;
  updates: number;
  deletes: number;
  truncates: number;
}

/** Source transactions just committed on the target (or found to need nothing there). */
export interface BatchResult {
  /** Commit LSN and end of the last source transaction in the batch. */
  readonly commitLsn: bigint;
  readonly endLsn: bigint;
  readonly commitTime: number;
  /** False when the batch held no statements (empty or skipped transactions). */
  readonly wroteTarget: boolean;
  readonly counts: ChangeCounts;
  /** How the batch's chunks were applied. */
  readonly paths: ApplyPaths;
}

/** Chunks (up to CHUNK_CHANGES changes) by how they were applied. */
export interface ApplyPaths {
  /** Compacted and applied set-based (possibly with some changes in order between). */
  setBased: number;
  /** Applied change by change in source order (no replica role, or nothing to compact). */
  ordered: number;
  /** Set-based attempt failed (a transient collision, a missing row): replayed in order. */
  replayed: number;
}

/**
 * Changes sent to the target inside the open transaction at a time: the unit of compaction,
 * and a bound on memory (one chunk buffered while the one before it is in flight).
 */
const CHUNK_CHANGES = 5000;
const CHUNK_BYTES = 16 * 1024 * 1024;
/**
 * A target transaction commits once it holds this many changes or is this old. Several chunks
 * per transaction: decoding the next chunk overlaps executing the last; a commit waits for both.
 */
const BATCH_CHANGES = 20000;
const BATCH_AGE_MS = 200;

// Session settings: inputs parse as the walsender printed them (both connections pin the same
// settings, pg/connect.ts); no timeouts end a long batch; replica role keeps target triggers and
// FK actions from firing a second time.
const SESSION_SQL =
  "SET statement_timeout = 0; SET lock_timeout = 0; " +
  "SET idle_in_transaction_session_timeout = 0";

const zeroCounts = (): ChangeCounts => ({ inserts: 0, updates: 0, deletes: 0, truncates: 0 });
const zeroPaths = (): ApplyPaths => ({ setBased: 0, ordered: 0, replayed: 0 });

export class Applier {
  private readonly relations = new Map<number, ApplyRelation>();
  /** What each relation was announced as: names, key flags, types with modifiers. */
  private readonly announced = new Map<number, string>();
  private nextRelationId = 1;
  private pending: Change[] = [];
  private pendingBytes = 0;
  private targetTxnOpen = false;
  private batchCounts = zeroCounts();
  private batchPaths = zeroPaths();
  private batchChanges = 0;
  private batchStartedAt = 0;
  private lastCommit?: CommitMessage;
  private inSourceTxn = false;
  private skipping = false;
  /** Statements sent and not yet confirmed: the next changes are decoded meanwhile. */
  private inflight?: Promise<void>;

  private constructor(
    private readonly client: Client,
    /** session_replication_role = replica: changes may be compacted and applied set-based. */
    private readonly setBased: boolean,
    private readonly slotName: string,
    /** Stored applied commit LSN as this session last read or wrote it; at or below: skip. */
    private storedLsn: bigint | undefined,
    private readonly onCommitted: (batch: BatchResult) => void,
  ) {}

  /** Connects to the target database, installs the bookkeeping, reads the stored position. */
  static async open(
    target: Endpoint,
    database: string,
    slotName: string,
    onCommitted: (batch: BatchResult) => void,
  ): Promise<{ applier: Applier; storedLsn?: bigint }> {
    const client = await connect(target, database, {
      applicationName: "pgmigrate_apply",
      pipeline: true,
    });
    try {
      await client.query(SESSION_SQL);
      const replicaRole = await client.query("SET session_replication_role = replica").then(
        () => true,
        (err: unknown) => {
          // Not superuser (and not granted SET on it, PG15+): triggers and foreign keys fire,
          // so every change is applied in source order.
          if (pgFields(err).code !== SQLSTATE.insufficientPrivilege) throw err;
          return false;
        },
      );
      await installBookkeeping(client);
      const stored = await readAppliedLsn(client, slotName);
      const storedLsn = stored === undefined ? undefined : parseLsn(stored);
      const applier = new Applier(client, replicaRole, slotName, storedLsn, onCommitted);
      return { applier, storedLsn };
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
  }

  /** Changes received since the last target commit (buffered or inside the open transaction). */
  get uncommittedChanges(): number {
    return this.batchChanges;
  }

  /** Between source transactions with everything received committed on the target. */
  get idle(): boolean {
    return !this.inSourceTxn && this.batchChanges === 0 && this.lastCommit === undefined;
  }

  get inTransaction(): boolean {
    return this.inSourceTxn;
  }

  /** Takes one message in stream order; a promise only when the target must be waited for. */
  handle(message: PgoutputMessage): void | Promise<void> {
    switch (message.tag) {
      case "relation":
        this.relations.set(message.relationOid, this.toRelation(message));
        return;
      case "begin":
        this.inSourceTxn = true;
        // Applied before a restart: the stored position covers it.
        this.skipping = this.storedLsn !== undefined && message.commitLsn <= this.storedLsn;
        if (this.batchChanges === 0 && this.lastCommit === undefined)
          this.batchStartedAt = Date.now();
        return;
      case "commit":
        this.inSourceTxn = false;
        this.skipping = false;
        this.lastCommit = message;
        if (this.batchChanges === 0 || this.batchDue) return this.commitBatch();
        return;
      case "ignored":
        return;
      case "oversized":
        if (this.skipping) return;
        throw oversizedValue(this.relation(message.relationOid), message.column, message.bytes);
      default:
        if (this.skipping) return;
        return this.add(this.toChange(message));
    }
  }

  /** The batch holds enough changes, or is old enough, to be committed. */
  get batchDue(): boolean {
    return this.batchChanges >= BATCH_CHANGES || Date.now() - this.batchStartedAt >= BATCH_AGE_MS;
  }

  /** Commits the batch if it is due (or `force`), provided no source transaction is half read. */
  async flushIfDue(force: boolean): Promise<void> {
    if (this.inSourceTxn || this.lastCommit === undefined) return;
    if (force || this.batchDue) await this.commitBatch();
  }

  /** Ends the target connection; an open target transaction rolls back with it. */
  async close(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }

  // The source re-announces a relation after any cache invalidation (ANALYZE, an index):
  // keep the known one, with its target columns and prepared statements, unless it changed.
  // A changed type or modifier counts: casts to a stale char(3) would cut values short.
  private toRelation(message: RelationMessage): ApplyRelation {
    const columns = message.columns.map((c) => c.name);
    const keyColumns = message.columns.flatMap((c, i) => (c.isKey ? [i] : []));
    const full = message.replicaIdentity === "f";
    const known = this.relations.get(message.relationOid);
    const announced = JSON.stringify([message.schema, message.name, full, message.columns]);
    if (known && this.announced.get(message.relationOid) === announced) return known;
    this.announced.set(message.relationOid, announced);
    const id = this.nextRelationId++;
    return { id, schema: message.schema, name: message.name, columns, keyColumns, full };
  }

  private relation(oid: number): ApplyRelation {
    const relation = this.relations.get(oid);
    if (!relation)
      throw new MigrationError(
        "replicate",
        `change for unknown relation ${oid} (no Relation message)`,
      );
    return relation;
  }

  private toChange(
    message: Exclude<
      PgoutputMessage,
      { tag: "relation" | "begin" | "commit" | "ignored" | "oversized" }
    >,
  ): Change {
    switch (message.tag) {
      case "insert":
        return {
          kind: "insert",
          relation: this.relation(message.relationOid),
          values: message.newTuple,
        };
      case "update":
        return {
          kind: "update",
          relation: this.relation(message.relationOid),
          old: message.oldTuple,
          values: message.newTuple,
        };
      case "delete":
        return {
          kind: "delete",
          relation: this.relation(message.relationOid),
          old: message.oldTuple,
        };
      case "truncate":
        return {
          kind: "truncate",
          relations: message.relationOids.map((oid) => this.relation(oid)),
          cascade: message.cascade,
          restartIdentity: message.restartIdentity,
        };
    }
  }

  private add(change: Change): void | Promise<void> {
    this.pending.push(change);
    this.batchChanges++;
    if (change.kind === "truncate") this.batchCounts.truncates++;
    else {
      this.batchCounts[`${change.kind}s`]++;
      for (const v of change.kind === "delete" ? change.old : change.values) {
        if (typeof v === "string") this.pendingBytes += v.length;
      }
    }
    if (this.pending.length >= CHUNK_CHANGES || this.pendingBytes >= CHUNK_BYTES)
      return this.flushPending();
  }

  /** Sends buffered changes into the open target transaction (opening it if needed). */
  private async flushPending(): Promise<void> {
    if (this.pending.length === 0) return;
    const changes = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    for (const change of changes) {
      for (const relation of change.kind === "truncate" ? change.relations : [change.relation]) {
        if (!relation.target) {
          await this.settle();
          const table = await targetTable(this.client, relation).catch((err: unknown) => {
            throw applyError(err, relation);
          });
          relation.target = table.columns;
          relation.firesOnApply = table.firesOnApply;
        }
      }
    }
    await this.settle();
    if (!this.targetTxnOpen) {
      // Deferrable constraints are checked at the target commit, as the source checked them at
      // its commit: changes of one source statement arrive as several target statements.
      await this.client.query("BEGIN; SET CONSTRAINTS ALL DEFERRED");
      this.targetTxnOpen = true;
    }
    const running = applyChanges(this.client, changes, this.setBased).then((outcome) => {
      if (outcome.replayed) this.batchPaths.replayed++;
      else if (outcome.setBased > 0) this.batchPaths.setBased++;
      else this.batchPaths.ordered++;
    });
    running.catch(() => undefined); // reported by the next settle(), or lost with the session
    this.inflight = running;
  }

  /** Waits for the statements in flight: their failure is this call's failure. */
  private async settle(): Promise<void> {
    const inflight = this.inflight;
    this.inflight = undefined;
    await inflight;
  }

  private async commitBatch(): Promise<void> {
    const last = this.lastCommit;
    if (!last) return;
    await this.flushPending();
    await this.settle();
    const wroteTarget = this.targetTxnOpen;
    if (wroteTarget) {
      const previous = this.storedLsn === undefined ? undefined : formatLsn(this.storedLsn);
      if (
        !(await recordAppliedLsn(this.client, this.slotName, formatLsn(last.commitLsn), previous))
      ) {
        // Retried like a lost connection: the next session reads the position and skips.
        throw new MigrationError(
          "replicate",
          `another apply session moved the position of ${this.slotName} on the target; resuming from there`,
          { code: SQLSTATE.objectInUse },
        );
      }
      await this.client.query("COMMIT");
      this.storedLsn = last.commitLsn;
      this.targetTxnOpen = false;
    }
    const counts = this.batchCounts;
    const paths = this.batchPaths;
    this.batchCounts = zeroCounts();
    this.batchPaths = zeroPaths();
    this.batchChanges = 0;
    this.lastCommit = undefined;
    this.onCommitted({
      commitLsn: last.commitLsn,
      endLsn: last.endLsn,
      commitTime: last.commitTime,
      wroteTarget,
      counts,
      paths,
    });
  }
}

/** A change whose value cannot be held as text: fatal, named, and never retried. */
function oversizedValue(relation: ApplyRelation, column: number, bytes: number): MigrationError {
  const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return new MigrationError(
    "replicate",
    `a value of ${mib(bytes)} in column ${quoteIdent(relation.columns[column] ?? `#${column + 1}`)} ` +
      `of ${quoteIdent(relation.schema)}.${quoteIdent(relation.name)} is larger than the ` +
      `${mib(MAX_VALUE_BYTES)} a change can carry here; shorten it on the source and start the migration again`,
    { code: "PGM_VALUE_TOO_LARGE" },
  );
}
