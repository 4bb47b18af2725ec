// Sessions the clone and verification open: no timeouts that would kill a long COPY or an idle
// snapshot holder, snapshot import, and a hard close for connections stuck mid-COPY.
import type { Client } from "pg";
import { connect } from "./connect";
import { quoteLiteral } from "./ident";
import type { Endpoint } from "../spec/types";

/**
 * Settings a managed server may set low by default (statement or idle timeouts) that would abort
 * a long copy or the transaction holding the exported snapshot. Set only where the server knows
 * them, so old sources (no idle_in_transaction_session_timeout before 9.6) are fine.
 */
const NO_TIMEOUTS = ["statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"];

/** A connection with the timeouts above turned off; closed again if that fails. */
export async function openSession(
  endpoint: Endpoint,
  database: string,
  applicationName: string,
): Promise<Client> {
  const client = await connect(endpoint, database, { applicationName });
  try {
    await client.query(
      `SELECT set_config(s.name, '0', false) FROM pg_catalog.pg_settings s WHERE s.name = ANY($1)`,
      [NO_TIMEOUTS],
    );
    return client;
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
}

/** pg_export_snapshot() ids look like `00000003-0000001B-1`; anything else is refused. */
const SNAPSHOT_ID = /^[0-9A-Fa-f]+-[0-9A-Fa-f]+(-[0-9]+)?$/;

/** Starts a read-only REPEATABLE READ transaction that sees exactly `snapshot`. */
export async function beginAtSnapshot(client: Client, snapshot: string): Promise<void> {
  if (!SNAPSHOT_ID.test(snapshot)) throw new Error(`not a snapshot id: "${snapshot}"`);
  await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
  await client.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(snapshot)}`);
}

/**
 * Closes at once, whatever the connection is doing. A client in the middle of COPY TO STDOUT
 * cannot be ended politely (the server keeps sending rows), so the socket is destroyed; the
 * server then rolls back what that session had open.
 */
export async function hardClose(client: Client): Promise<void> {
  // end() first so the client treats the closed socket as expected, not as an 'error'.
  const ended = client.end().catch(() => undefined);
  client.connection.stream.destroy();
  await ended;
}
