// fixReplicaIdentity undone: before the publication gives identity-less source tables REPLICA
// IDENTITY FULL, their original identities are recorded in the target's bookkeeping schema;
// cutover, cancel, failure and a restarted copy put them back on the source and the target
// (which inherited FULL through the schema dump), after the publication is gone.
import { tablesWithoutReplicaIdentity } from "../pg/catalog";
import type { Client } from "pg";
import { withClient } from "../pg/connect";
import { MigrationError, pgFields, SQLSTATE } from "../pg/errors";
import { qualify, quoteIdent } from "../pg/ident";
import { TARGET_BOOKKEEPING_SCHEMA } from "../pg/names";
import type { MigrationSpec } from "../spec/types";

// Lives with the apply bookkeeping: dropped with it at cutover and cancel, after the restore.
const RECORDED = `${quoteIdent(TARGET_BOOKKEEPING_SCHEMA)}.replica_identities`;

const INSTALL_SQL = `
  CREATE SCHEMA IF NOT EXISTS ${quoteIdent(TARGET_BOOKKEEPING_SCHEMA)};
  CREATE TABLE IF NOT EXISTS ${RECORDED} (
    schema_name text NOT NULL,
    table_name text NOT NULL,
    identity "char" NOT NULL CHECK (identity IN ('d', 'n', 'i')),
    PRIMARY KEY (schema_name, table_name)
  )`;

// An identity index that was dropped cannot come back: such a table gets NOTHING, which is
// what an identity without its index behaved like.
const CLAUSE: Record<string, string> = { d: "DEFAULT", n: "NOTHING", i: "NOTHING" };

interface Recorded {
  readonly schema: string;
  readonly name: string;
  readonly identity: string;
}

/**
 * Records the identity of every source table of `database` the publication is about to set to
 * FULL. Idempotent: an identity recorded by an earlier attempt (the table may be FULL by now)
 * is kept. Only with fixReplicaIdentity "full".
 */
export async function recordReplicaIdentities(
  spec: MigrationSpec,
  database: string,
): Promise<number> {
  if (spec.fixReplicaIdentity !== "full") return 0;
  try {
    const tables = await withClient(spec.source, database, async (c) => {
      // The tables the publication will set to FULL (pg/catalog.ts decides which).
      return tablesWithoutReplicaIdentity(c);
    });
    await withClient(spec.target, database, async (c) => {
      await c.query(INSTALL_SQL);
      for (const t of tables) {
        await c.query(
          `INSERT INTO ${RECORDED} (schema_name, table_name, identity) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
          [t.schema, t.name, t.identity],
        );
      }
    });
    return tables.length;
  } catch (err) {
    throw MigrationError.wrap(
      "replicate",
      err,
      `recording replica identities of database "${database}"`,
    );
  }
}

async function recorded(target: Client): Promise<Recorded[]> {
  try {
    const { rows } = await target.query<Recorded>(
      `SELECT schema_name AS schema, table_name AS name, identity FROM ${RECORDED} ORDER BY 1, 2`,
    );
    return rows;
  } catch (err) {
    if (pgFields(err).code === SQLSTATE.undefinedTable) return [];
    throw err;
  }
}

/** Sets each table that still exists back to its recorded identity. */
async function apply(client: Client, tables: readonly Recorded[]): Promise<void> {
  for (const t of tables) {
    const { rows } = await client.query("SELECT to_regclass($1) IS NOT NULL AS found", [
      qualify(t.schema, t.name),
    ]);
    if (!rows[0].found) continue;
    await client.query(
      `ALTER TABLE ONLY ${qualify(t.schema, t.name)} REPLICA IDENTITY ${CLAUSE[t.identity]}`,
    );
  }
}

/**
 * Puts the recorded identities back on the source and the target and forgets them; returns how
 * many. Must run after the publication is dropped: a publication of an identity-less table
 * would make the source refuse its UPDATEs and DELETEs. No target database (dropped, never
 * created) means nothing recorded.
 */
export async function restoreReplicaIdentities(
  spec: MigrationSpec,
  database: string,
  phase: "cutover" | "cancel" | "replicate",
): Promise<number> {
  try {
    return await withClient(spec.target, database, async (target) => {
      const tables = await recorded(target);
      if (tables.length === 0) return 0;
      await withClient(spec.source, database, (source) => apply(source, tables));
      await apply(target, tables);
      await target.query(`DELETE FROM ${RECORDED}`);
      return tables.length;
    });
  } catch (err) {
    if (pgFields(err).code === SQLSTATE.invalidCatalogName) return 0;
    throw MigrationError.wrap(phase, err, `restoring replica identities of database "${database}"`);
  }
}
