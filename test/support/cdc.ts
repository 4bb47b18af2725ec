// Replication test pairs: a database prepared on both servers gets its publication and slot (the
// state of a finished copy), streams to the target from the slot's consistent point, and catches up.
import assert from "node:assert/strict";
import {
  createSlotWithSnapshot,
  currentWalLsn,
  dropSlotAndPublication,
  ensurePublication,
  startReplication,
  type ReplicationOptions,
  type ReplicationStream,
} from "../../provider/cdc";
import { publicationName, slotName } from "../../provider/pg/names";
import type { TableRef } from "../../provider/spec/types";
import { STABLE_SESSION_SQL } from "./checksum";
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

/** Incompressible text well above the TOAST threshold (stored out of line). */
export const TOASTED = (seed: string): string =>
  `(SELECT string_agg(md5(${seed} || ':' || i), '') FROM generate_series(1, 300) AS i)`;

let dbCounter = 0;

/**
 * `schema` on the source, `targetSchema` (default the same) on the target, created by
 * `targetOwner` when given; then publication (identity FULL where none) and slot.
 */
export interface PairOptions {
  readonly targetSchema?: string;
  readonly tables?: TableRef[];
  readonly targetOwner?: string;
}

export async function prepareSchemaPair(
  source: PgServer,
  target: PgServer,
  migration: string,
  schema: string,
  options: PairOptions = {},
): Promise<Pair> {
  const db = `${migration.replace(/\W/g, "_")}_${++dbCounter}`;
  await source.query(`CREATE DATABASE ${db}`);
  await source.query(schema, [], db);
  await target.query(`CREATE DATABASE ${db}`);
  const owner = options.targetOwner;
  if (owner) await target.query(`ALTER DATABASE ${db} OWNER TO ${owner}`);
  await target.query(
    `${owner ? `SET ROLE ${owner};` : ""}${options.targetSchema ?? schema}`,
    [],
    db,
  );
  return publishPair(source, migration, db, options.tables);
}

/** Every row of every user table, as text under fixed output settings, sorted. */
export async function snapshot(server: PgServer, db: string): Promise<Record<string, string[]>> {
  const client = await server.connect(db);
  try {
    await client.query(STABLE_SESSION_SQL);
    const { rows: tables } = await client.query<{ t: string }>(
      `SELECT format('%I.%I', n.nspname, c.relname) AS t FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
         AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pgmigrate%' ORDER BY 1`,
    );
    const out: Record<string, string[]> = {};
    for (const { t } of tables) {
      // Column by name, so a different physical order on the target compares equal.
      const { rows: cols } = await client.query<{ c: string }>(
        `SELECT quote_ident(attname) AS c FROM pg_attribute
         WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attname`,
        [t],
      );
      const list = cols.map((c) => c.c).join(", ");
      const { rows } = await client.query<{ r: string }>(
        `SELECT ROW(${list})::text AS r FROM ${t} ORDER BY 1`,
      );
      out[t] = rows.map((r) => r.r);
    }
    return out;
  } finally {
    await client.end();
  }
}

export async function assertSame(
  source: PgServer,
  target: PgServer,
  db: string,
  unpublished: string[] = [],
): Promise<void> {
  const [a, b] = await Promise.all([snapshot(source, db), snapshot(target, db)]);
  for (const table of Object.keys(a).filter((t) => !unpublished.includes(t))) {
    assert.deepEqual(b[table], a[table], `${table} differs between source and target`);
  }
}

export async function cleanUp(source: PgServer, pair: Pair): Promise<void> {
  for (const s of pair.streams) await s.stop();
  await dropSlotAndPublication(endpointOf(source), pair.db, pair.slot, pair.publication);
}
