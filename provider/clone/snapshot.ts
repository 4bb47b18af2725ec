// The one consistent snapshot of an offline clone: exported by a transaction that stays open
// until pg_dump and every copy worker have imported it.
import type { Client } from "pg";
import type { Endpoint } from "../spec/types";
import { openSession } from "../pg/session";

/** An exported snapshot and the transaction keeping it importable. */
export interface HeldSnapshot {
  readonly snapshot: string;
  /** Ends the exporting transaction; idempotent. */
  release(): Promise<void>;
}

/** Exports a snapshot of `database` from a REPEATABLE READ, READ ONLY transaction held open. */
export async function exportSnapshot(endpoint: Endpoint, database: string): Promise<HeldSnapshot> {
  const client: Client = await openSession(endpoint, database, "pgmigrate snapshot");
  try {
    await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    const { rows } = await client.query<{ snapshot: string }>(
      "SELECT pg_export_snapshot() AS snapshot",
    );
    let released = false;
    return {
      snapshot: rows[0].snapshot,
      async release(): Promise<void> {
        if (released) return;
        released = true;
        await client.query("ROLLBACK").catch(() => undefined);
        await client.end().catch(() => undefined);
      },
    };
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
}
