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
