// The publication on the source database: which tables' changes the slot streams.
// Partitioned tables are published as their leaf partitions (works on PG10+, matches the clone
// copying leaves, and a TRUNCATE of a single leaf still replicates); changes arrive per leaf.
import type { Client } from "pg";
import { listReplicatedTables, tablesWithoutReplicaIdentity } from "../pg/catalog";
import { withClient } from "../pg/connect";
import { MigrationError } from "../pg/errors";
import { qualify, quoteIdent } from "../pg/ident";
import type { Endpoint, TableRef } from "../spec/types";

export interface PublicationOptions {
  /** Tables to publish (partitioned ones expand to their leaves); default every user table. */
  readonly tables?: readonly TableRef[];
  /** "full": tables without primary key or replica identity index get REPLICA IDENTITY FULL. */
  readonly fixReplicaIdentity?: "full";
}

// The given tables, partitioned ones replaced by their leaves (pg_inherits, as PG10 has no
// pg_partition_tree).
const LEAVES_SQL = `
  WITH RECURSIVE tree(oid) AS (
    SELECT t::oid FROM unnest($1::regclass[]) AS t
    UNION
    SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.oid
  )
  SELECT n.nspname AS schema, c.relname AS name
  FROM tree JOIN pg_class c ON c.oid = tree.oid JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r'
  ORDER BY 1, 2`;

async function publishedTables(client: Client, tables?: readonly TableRef[]): Promise<TableRef[]> {
  if (!tables) return listReplicatedTables(client);
  const names = tables.map((t) => qualify(t.schema, t.name));
  return (await client.query<TableRef>(LEAVES_SQL, [names])).rows;
}

/**
 * Creates or replaces the publication for `tables` (every replicated table, pg/catalog.ts,
 * when omitted). With fixReplicaIdentity "full", tables lacking a primary key or
 * identity index first get REPLICA IDENTITY FULL, so their updates and deletes replicate.
 */
export async function ensurePublication(
  source: Endpoint,
  database: string,
  publication: string,
  options: PublicationOptions = {},
): Promise<void> {
  try {
    await withClient(source, database, async (client) => {
      const tables = await publishedTables(client, options.tables);
      const names = tables.map((t) => qualify(t.schema, t.name));
      if (options.fixReplicaIdentity === "full" && names.length > 0) {
        const rows = await tablesWithoutReplicaIdentity(client, names);
        for (const t of rows) {
          await client.query(`ALTER TABLE ${qualify(t.schema, t.name)} REPLICA IDENTITY FULL`);
        }
      }
      const name = quoteIdent(publication);
      const { rows: existing } = await client.query(
        "SELECT 1 FROM pg_publication WHERE pubname = $1",
        [publication],
      );
      // An existing publication keeps its identity (a running stream keeps decoding through
      // it); only an empty table list, which SET TABLE cannot express, needs a new one.
      if (existing.length > 0 && names.length > 0) {
        await client.query(`ALTER PUBLICATION ${name} SET TABLE ${names.join(", ")}`);
        return;
      }
      const forTables = names.length > 0 ? ` FOR TABLE ${names.join(", ")}` : "";
      await client.query("BEGIN");
      try {
        await client.query(`DROP PUBLICATION IF EXISTS ${name}`);
        await client.query(`CREATE PUBLICATION ${name}${forTables}`);
        await client.query("COMMIT");
      } catch (err) {
        await client.query("ROLLBACK").catch(() => undefined);
        throw err;
      }
    });
  } catch (err) {
    throw MigrationError.wrap(
      "replicate",
      err,
      `creating publication ${publication} in ${database}`,
    );
  }
}
