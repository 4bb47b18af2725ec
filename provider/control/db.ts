// Connections to the control database: short-lived clients for the facade, a pool for the
// long-running worker (it reconnects by itself when the target restarts).
import { Pool, type QueryResultRow } from "pg";
import { clientConfig, connect, plaintextAfter } from "../pg/connect";
import type { Endpoint } from "../spec/types";
import { MigrationError, pgFields, SQLSTATE } from "../pg/errors";
import { checkSchemaVersion, controlPrivilegeError } from "./schema";

/** Anything that runs a parameterised query: a Client, a Pool, a PoolClient. */
export interface Queryable {
  query<R extends QueryResultRow = QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<{ rows: R[]; rowCount: number | null }>;
}

/** Where the control store lives: the target server (with password) and a database on it. */
export interface ControlLocation {
  readonly target: Endpoint;
  readonly controlDatabase: string;
}

/** A pool on the control database; `prefer` falls back to plaintext like libpq does. */
export async function openControlPool(at: ControlLocation, max = 4): Promise<Pool> {
  const open = (endpoint: Endpoint): Pool => {
    const pool = new Pool({
      ...clientConfig(endpoint, at.controlDatabase, { applicationName: "pgmigrate-runtime" }),
      max,
      idleTimeoutMillis: 30_000,
    });
    // An idle pooled client whose server went away emits 'error'; the next query reconnects.
    pool.on("error", () => undefined);
    return pool;
  };
  const pool = open(at.target);
  try {
    await pool.query("SELECT 1");
    return pool;
  } catch (err) {
    await pool.end().catch(() => undefined);
    const plaintext = plaintextAfter(at.target, err);
    if (!plaintext) throw err;
    const plain = open(plaintext);
    await plain.query("SELECT 1");
    return plain;
  }
}

/**
 * Runs `fn` on a short-lived client of the control database, after making sure its control
 * schema is not newer than this code ("PGM_SCHEMA_TOO_NEW").
 */
export async function withControl<T>(
  at: ControlLocation,
  fn: (db: Queryable) => Promise<T>,
): Promise<T> {
  const client = await connect(at.target, at.controlDatabase, {
    applicationName: "pgmigrate",
  });
  try {
    await checkSchemaVersion(client);
    return await fn(client);
  } catch (err) {
    // Not ours to use (installed by another user): the same advice as when it cannot be created.
    if (!(err instanceof MigrationError) && pgFields(err).code === SQLSTATE.insufficientPrivilege) {
      throw controlPrivilegeError(at, err, "use");
    }
    throw err;
  } finally {
    await client.end().catch(() => undefined);
  }
}
