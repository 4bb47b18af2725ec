// Apply bookkeeping inside each target database: the commit LSN of the last source transaction
// committed there, written in the same target transaction as the changes (exactly-once apply).
import type { Client } from "pg";
import { withClient } from "../pg/connect";
import { MigrationError, SQLSTATE, pgFields } from "../pg/errors";
import { quoteIdent } from "../pg/ident";
import { TARGET_BOOKKEEPING_SCHEMA } from "../pg/names";
import type { Endpoint } from "../spec/types";

const SCHEMA = quoteIdent(TARGET_BOOKKEEPING_SCHEMA);
const PROGRESS = `${SCHEMA}.progress`;

// One table, dropped as a whole at cutover or rollback; idempotent, so no versioned migration
// files are needed. Version 1 of the layout.
const INSTALL_SQL = `
  CREATE SCHEMA IF NOT EXISTS ${SCHEMA};
  CREATE TABLE IF NOT EXISTS ${PROGRESS} (
    slot_name text PRIMARY KEY,
    applied_lsn pg_lsn NOT NULL,
    applied_at timestamptz NOT NULL
  )`;

// Compare and set: the row must still hold the position this session read or wrote last. A
// session whose connection broke may still be committing on the server; its row lock makes us
// wait, and a position it moved means our batch repeats its work.
const UPSERT_SQL = `
  INSERT INTO ${PROGRESS} AS p (slot_name, applied_lsn, applied_at) VALUES ($1, $2::pg_lsn, now())
  ON CONFLICT (slot_name) DO UPDATE SET applied_lsn = EXCLUDED.applied_lsn, applied_at = EXCLUDED.applied_at
  WHERE p.applied_lsn IS NOT DISTINCT FROM $3::pg_lsn`;

/** Creates the bookkeeping schema and table if missing. */
export async function installBookkeeping(target: Client): Promise<void> {
  try {
    await target.query(INSTALL_SQL);
  } catch (err) {
    // Two streams into the same database may race on CREATE ... IF NOT EXISTS.
    const code = pgFields(err).code;
    if (code !== SQLSTATE.uniqueViolation && code !== SQLSTATE.duplicateSchema) throw err;
    await target.query(INSTALL_SQL);
  }
}

/** Stored applied commit LSN for `slotName` on an open client, if any. */
export async function readAppliedLsn(
  target: Client,
  slotName: string,
): Promise<string | undefined> {
  try {
    const { rows } = await target.query<{ lsn: string }>(
      `SELECT applied_lsn::text AS lsn FROM ${PROGRESS} WHERE slot_name = $1`,
      [slotName],
    );
    return rows[0]?.lsn;
  } catch (err) {
    if (pgFields(err).code === SQLSTATE.undefinedTable) return undefined;
    throw err;
  }
}

/**
 * Records `commitLsn` for `slotName` inside the target transaction that applied it, provided
 * the stored position is still `previousLsn`. False when another session moved it meanwhile.
 */
export async function recordAppliedLsn(
  target: Client,
  slotName: string,
  commitLsn: string,
  previousLsn: string | undefined,
): Promise<boolean> {
  const result = await target.query({
    name: "pgmigrate_progress",
    text: UPSERT_SQL,
    values: [slotName, commitLsn, previousLsn ?? null],
  });
  return result.rowCount === 1;
}

/** Stored applied commit LSN for slot in the target database, if any. */
export async function storedAppliedLsn(
  target: Endpoint,
  database: string,
  slotName: string,
): Promise<string | undefined> {
  try {
    return await withClient(target, database, (client) => readAppliedLsn(client, slotName));
  } catch (err) {
    throw MigrationError.wrap("replicate", err, `reading applied position of ${slotName}`);
  }
}

/** Removes the bookkeeping schema from the target database (at cutover / rollback). */
export async function dropTargetBookkeeping(target: Endpoint, database: string): Promise<void> {
  try {
    await withClient(target, database, (client) =>
      client.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`),
    );
  } catch (err) {
    if (pgFields(err).code === SQLSTATE.invalidCatalogName) return;
    throw MigrationError.wrap(
      "replicate",
      err,
      `dropping ${TARGET_BOOKKEEPING_SCHEMA} in ${database}`,
    );
  }
}
