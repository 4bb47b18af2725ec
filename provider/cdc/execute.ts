// Runs a chunk's statements in the open target transaction, pipelined (node-postgres' pipeline
// mode: each statement parsed once per session, executed with parameters, many in flight per
// round trip). Set-based steps run under a savepoint; on any error the chunk is replayed in exact
// source order, so correctness never depends on the fast path.
import type { Client, QueryResult } from "pg";
import { MigrationError, isTransient, pgFields } from "../pg/errors";
import type { ApplyRelation, Change, Statement } from "./changes";
import { compactChanges } from "./compact";
import { netStatements, type NetStatement } from "./net-statements";
import { planStatements } from "./plan";

const SAVEPOINT = "pgmigrate_chunk";
/** Chunks smaller than this go in source order. */
const SET_BASED_MIN_CHANGES = 16;

/** A set-based statement touched fewer rows than exactness requires: replay in order. */
class NotExact extends Error {
  override readonly name = "NotExact";
}

/** How the fast path fared, for the counters. */
export interface ChunkOutcome {
  /** Statements run set-based (0: the chunk went in source order). */
  readonly setBased: number;
  /** The set-based attempt failed and the chunk was replayed in source order. */
  readonly replayed: boolean;
}

/**
 * Applies `changes` (a chunk, in source order) in the open transaction. `setBased` when the
 * session runs with session_replication_role = replica: triggers and foreign keys do not fire,
 * so tables are independent and net changes per key give the same rows. Otherwise every change
 * is applied in order. Target columns of every relation must be loaded.
 */
export async function applyChanges(
  client: Client,
  changes: readonly Change[],
  setBased: boolean,
): Promise<ChunkOutcome> {
  // A few changes gain nothing from compaction and pay for its savepoint.
  const steps = setBased && changes.length >= SET_BASED_MIN_CHANGES ? compactChanges(changes) : [];
  if (!steps.some((s) => s.kind === "net")) {
    await executeStatements(client, planStatements(changes));
    return { setBased: 0, replayed: false };
  }
  const statements = steps.flatMap((step) =>
    step.kind === "net" ? netStatements(step.relation, step.net) : planStatements(step.changes),
  );
  await client.query(`SAVEPOINT ${SAVEPOINT}`);
  try {
    await executeStatements(client, statements);
  } catch (err) {
    if (isTransient(err)) throw err;
    try {
      await client.query(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`);
    } catch {
      throw err; // the session is unusable: the first error stands
    }
    await executeStatements(client, planStatements(changes));
    await client.query(`RELEASE SAVEPOINT ${SAVEPOINT}`);
    return { setBased: 0, replayed: true };
  }
  await client.query(`RELEASE SAVEPOINT ${SAVEPOINT}`);
  return { setBased: statements.length, replayed: false };
}

/**
 * Executes `statements` in order, pipelined. A statement with a fallback (`ifNoRows`) waits for
 * those before it and for its own result. The first failure in order is the error; the ones
 * after it only say that the transaction is aborted.
 */
export async function executeStatements(
  client: Client,
  statements: readonly NetStatement[],
): Promise<void> {
  let sent: [NetStatement, Promise<QueryResult>][] = [];
  const settle = async (): Promise<void> => {
    const batch = sent;
    sent = [];
    const results = await Promise.allSettled(batch.map(([, p]) => p));
    results.forEach((result, i) => {
      const s = batch[i][0];
      if (result.status === "rejected") throw applyError(result.reason, s.relation);
      if (s.expectRows !== undefined && (result.value.rowCount ?? 0) < s.expectRows)
        throw new NotExact(`${s.relation.name}: ${result.value.rowCount} of ${s.expectRows} rows`);
    });
  };
  for (const s of statements) {
    if (s.ifNoRows) {
      await settle();
      await executeOne(client, s);
      continue;
    }
    const running = client.query(query(s));
    running.catch(() => undefined); // read by settle()
    sent.push([s, running]);
  }
  await settle();
}

function query(s: Statement): { name?: string; text: string; values: Statement["values"] } {
  return s.name
    ? { name: s.name, text: s.text, values: s.values }
    : { text: s.text, values: s.values };
}

async function executeOne(client: Client, s: Statement): Promise<void> {
  let touched: number | null;
  try {
    touched = (await client.query(query(s))).rowCount;
  } catch (err) {
    throw applyError(err, s.relation);
  }
  if (s.ifNoRows && touched === 0) for (const next of s.ifNoRows) await executeOne(client, next);
}

/**
 * The columns a "value does not fit" error is about. PostgreSQL names the type, not the column
 * ("value too long for type character varying(20)"; numeric overflow gives precision and scale
 * in the detail): the relation's columns declared with that type are the candidates.
 */
export function columnsOfValueError(err: unknown, relation: ApplyRelation): string[] {
  const target = relation.target;
  if (!target) return [];
  const message = err instanceof Error ? err.message : "";
  const tooLong = /value too long for type (.+)$/.exec(message);
  const numeric = /precision (\d+), scale (\d+)/.exec(pgFields(err).detail ?? "");
  const type = tooLong ? tooLong[1] : numeric ? `numeric(${numeric[1]},${numeric[2]})` : undefined;
  if (type === undefined) return [];
  return relation.columns.filter((_, i) => target[i]?.declaredType === type);
}

/** Connection losses pass through untouched (the stream retries them); the rest name the table. */
export function applyError(err: unknown, relation: ApplyRelation): unknown {
  if (isTransient(err) || err instanceof MigrationError) return err;
  const fields = pgFields(err);
  const message = err instanceof Error ? err.message : String(err);
  const columns = columnsOfValueError(err, relation);
  const where =
    columns.length > 0
      ? ` (column ${columns.join(" or ")}: the target column cannot hold the source's value; widen it on the target)`
      : "";
  const pg = fields.table ? {} : { schema: relation.schema, table: relation.name };
  return new MigrationError(
    "replicate",
    `applying changes to ${relation.schema}.${relation.name} failed: ${message}${where}`,
    { cause: err, pg: columns.length === 1 ? { ...pg, column: columns[0] } : pg },
  );
}
