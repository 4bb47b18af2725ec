// The replication slot on the source: created with an exported snapshot (the clone reads under
// it), dropped on every ending path. A forgotten slot retains WAL until the source's disk fills.
import type { Client } from "pg";
import { connect, withClient } from "../pg/connect";
import { MigrationError, SQLSTATE, pgFields } from "../pg/errors";
import { quoteIdent, quoteLiteral } from "../pg/ident";
import { sleep } from "../pg/retry";
import type { Endpoint } from "../spec/types";

export interface SlotHandle {
  readonly slotName: string;
  /** LSN from which changes not in the snapshot are streamed. */
  readonly consistentPoint: string;
  /** Exported snapshot name; valid only until release(). */
  readonly snapshotName: string;
  /** Ends the replication connection that keeps the snapshot alive. The slot stays. */
  release(): Promise<void>;
}

const SLOT_RELEASE_WAIT_MS = 10_000;

/**
 * CREATE_REPLICATION_SLOT name LOGICAL pgoutput EXPORT_SNAPSHOT on a walsender connection; the
 * connection stays idle (keeping the snapshot importable) until release(). A slot of that name
 * left by a crashed copy is dropped first: its position no longer matches any snapshot.
 */
export async function createSlotWithSnapshot(
  source: Endpoint,
  database: string,
  slotName: string,
): Promise<SlotHandle> {
  try {
    await withClient(source, database, (client) => dropSlot(client, slotName));
    const walsender = await connect(source, database, {
      replication: true,
      applicationName: "pgmigrate_snapshot",
    });
    try {
      // The pre-15 spelling; PostgreSQL 15+ still accepts it.
      const { rows } = await walsender.query<{
        consistent_point: string;
        snapshot_name: string;
      }>(`CREATE_REPLICATION_SLOT ${quoteIdent(slotName)} LOGICAL pgoutput EXPORT_SNAPSHOT`);
      let released = false;
      return {
        slotName,
        consistentPoint: rows[0].consistent_point,
        snapshotName: rows[0].snapshot_name,
        async release() {
          if (released) return;
          released = true;
          await walsender.end().catch(() => undefined);
        },
      };
    } catch (err) {
      await walsender.end().catch(() => undefined);
      throw err;
    }
  } catch (err) {
    throw MigrationError.wrap(
      "replicate",
      err,
      `creating replication slot ${slotName} in database ${database}`,
    );
  }
}

/** Terminates a walsender still streaming from the slot, waits for it to let go, drops it. */
async function dropSlot(client: Client, slotName: string): Promise<void> {
  const deadline = Date.now() + SLOT_RELEASE_WAIT_MS;
  for (;;) {
    const { rows } = await client.query<{ active_pid: number | null }>(
      "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
      [slotName],
    );
    if (rows.length === 0) return;
    const pid = rows[0].active_pid;
    if (pid === null) {
      try {
        await client.query("SELECT pg_drop_replication_slot($1)", [slotName]);
        return;
      } catch (err) {
        const code = pgFields(err).code;
        if (code === SQLSTATE.undefinedObject) return;
        // Someone picked it up between our look and the drop: terminate again.
        if (code !== SQLSTATE.objectInUse || Date.now() > deadline) throw err;
      }
    } else {
      if (Date.now() > deadline) {
        throw new MigrationError(
          "replicate",
          `replication slot ${slotName} stays in use by pid ${pid}`,
          {
            code: SQLSTATE.objectInUse,
          },
        );
      }
      await client.query("SELECT pg_terminate_backend($1)", [pid]);
    }
    await sleep(100);
  }
}

/**
 * The statements a user runs in the source database to drop what is left of a slot and a
 * publication, whichever of them is still there (each is a no-op when its object is gone).
 */
export function sourceCleanupSql(slotName: string, publication: string): string {
  return (
    `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = ${quoteLiteral(slotName)}; ` +
    `DROP PUBLICATION IF EXISTS ${quoteIdent(publication)};`
  );
}

/** Idempotent: terminates a walsender still using the slot, drops the slot, drops the publication. */
export async function dropSlotAndPublication(
  source: Endpoint,
  database: string,
  slotName: string,
  publication: string,
): Promise<void> {
  try {
    await withClient(source, database, async (client) => {
      await dropSlot(client, slotName);
      await client.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(publication)}`);
    });
  } catch (err) {
    if (pgFields(err).code !== SQLSTATE.invalidCatalogName) {
      throw MigrationError.wrap("replicate", err, `dropping slot ${slotName} and publication`);
    }
    // The database is gone, and with it the publication; a slot cannot outlive its database
    // either, but look for it from the maintenance database to be certain.
    await withClient(source, "postgres", (client) => dropSlot(client, slotName)).catch((e) => {
      throw MigrationError.wrap("replicate", e, `dropping slot ${slotName}`);
    });
  }
}

/**
 * The source's current WAL insert position. Everything committed before the call lies before
 * it, also transactions committed with synchronous_commit = off whose WAL is not yet written
 * (pg_current_wal_lsn() would miss those).
 */
export async function currentWalLsn(source: Endpoint, database: string): Promise<string> {
  try {
    return await withClient(source, database, async (client) => {
      const { rows } = await client.query<{ lsn: string }>(
        "SELECT pg_current_wal_insert_lsn()::text AS lsn",
      );
      return rows[0].lsn;
    });
  } catch (err) {
    throw MigrationError.wrap("replicate", err, "reading the source's WAL position");
  }
}
