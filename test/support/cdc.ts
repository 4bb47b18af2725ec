// Replication test pairs: a database prepared on both servers gets its publication and slot (the
// state of a finished copy), streams to the target from the slot's consistent point, and catches up.
import {
  createSlotWithSnapshot,
  currentWalLsn,
  ensurePublication,
  startReplication,
  type ReplicationOptions,
  type ReplicationStream,
} from "../../provider/cdc";
import { publicationName, slotName } from "../../provider/pg/names";
import type { TableRef } from "../../provider/spec/types";
import type { PgServer } from "./postgres";
import { endpointOf } from "./spec";
import { until } from "./wait";

/** One database replicated from source to target, and the streams started for it. */
export interface Pair {
  readonly db: string;
  readonly slot: string;
  readonly publication: string;
  readonly consistentPoint: string;
  readonly streams: ReplicationStream[];
}

/**
 * Publication (identity FULL where none; `tables` or every user table) and slot for `db`, named
 * for `migration`. The publication must exist before the slot: decoding looks it up as of each
 * change.
 */
export async function publishPair(
  source: PgServer,
  migration: string,
  db: string,
  tables?: TableRef[],
): Promise<Pair> {
  const publication = publicationName(migration);
  const slot = slotName(migration, db);
  await ensurePublication(endpointOf(source), db, publication, {
    tables,
    fixReplicaIdentity: "full",
  });
  const handle = await createSlotWithSnapshot(endpointOf(source), db, slot);
  await handle.release();
  return { db, slot, publication, consistentPoint: handle.consistentPoint, streams: [] };
}

/** Starts streaming `pair` from its consistent point; the stream is kept on the pair to stop. */
export async function stream(
  source: PgServer,
  target: PgServer,
  pair: Pair,
  extra: Partial<ReplicationOptions> = {},
): Promise<ReplicationStream> {
  const s = await startReplication({
    source: endpointOf(source),
    target: endpointOf(target),
    database: pair.db,
    slotName: pair.slot,
    publication: pair.publication,
    startLsn: pair.consistentPoint,
    ...extra,
  });
  pair.streams.push(s);
  return s;
}

/** Waits until `s` has applied everything the source has written so far. */
export async function catchUp(
  source: PgServer,
  pair: Pair,
  s: ReplicationStream,
  timeoutMs: number,
): Promise<void> {
  await s.waitForLsn(await currentWalLsn(endpointOf(source), pair.db), { timeoutMs });
}

/**
 * Terminates the backends `sql` finds (rows with a `pid`), polling up to 10 s for one to appear;
 * returns how many it terminated (0 when none appeared).
 */
async function terminateBackends(
  server: PgServer,
  sql: string,
  params: unknown[],
): Promise<number> {
  const deadline = Date.now() + 10_000;
  const rows = await until(
    async () => {
      const found = await server.query<{ pid: number }>(sql, params);
      return found.length > 0 || Date.now() > deadline ? found : undefined;
    },
    { what: "a backend to terminate", timeoutMs: 15_000, intervalMs: 50 },
  );
  for (const { pid } of rows) await server.query("SELECT pg_terminate_backend($1)", [pid]);
  return rows.length;
}

/** Terminates the walsender streaming `pair`'s slot; how many (0 or 1). */
export const killWalsender = (source: PgServer, pair: Pair): Promise<number> =>
  terminateBackends(
    source,
    "SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL",
    [pair.slot],
  );

/** Terminates the apply sessions in `pair`'s target database; how many. */
export const killApplier = (target: PgServer, pair: Pair): Promise<number> =>
  terminateBackends(
    target,
    "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgmigrate_apply' AND datname = $1",
    [pair.db],
  );

/** Resolves once a backend `condition` picks out (in pg_stat_activity) waits for a lock. */
async function untilLockWait(
  server: PgServer,
  condition: string,
  params: unknown[],
  what: string,
): Promise<void> {
  await until(
    async () =>
      (
        await server.query(
          `SELECT 1 FROM pg_stat_activity WHERE ${condition} AND wait_event_type = 'Lock'`,
          params,
        )
      ).length > 0,
    { what, intervalMs: 20 },
  );
}

/** Resolves once backend `pid` waits for a lock another session holds. */
export const waitingForLock = (server: PgServer, pid: number): Promise<void> =>
  untilLockWait(server, "pid = $1", [pid], `backend ${pid} to wait for a lock`);

/** Resolves once the apply session in target database `db` waits for a lock. */
export const applyWaitingForLock = (target: PgServer, db: string): Promise<void> =>
  untilLockWait(
    target,
    "application_name = 'pgmigrate_apply' AND datname = $1",
    [db],
    `the apply session in ${db} to wait for a lock`,
  );
