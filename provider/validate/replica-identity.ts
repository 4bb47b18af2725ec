// Tables whose UPDATE/DELETE the source would reject once they are in a publication: no primary
// key and no usable replica identity. Validation reports them; online setup may fix them.
import type { Client } from "pg";
import { withClient } from "../pg/connect";
import { MigrationError } from "../pg/errors";
import type { Endpoint, TableRef } from "../spec/types";
import { VALIDATION_CONNECT_TIMEOUT_MS } from "./connectivity";

// Leaf tables only: a partitioned parent holds no rows, its partitions are what gets published.
// Unlogged and temporary tables cannot be published; extension members are the extension's.
// REPLICA IDENTITY USING INDEX whose index was dropped falls back to nothing.
const WITHOUT_IDENTITY_SQL = `
SELECT n.nspname AS schema, c.relname AS name
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r'
   AND c.relpersistence = 'p'
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname !~ '^pg_(toast|temp_)'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
   AND (c.relreplident = 'n'
        OR (c.relreplident = 'd'
            AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary AND i.indimmediate))
        OR (c.relreplident = 'i'
            AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)))
 ORDER BY 1, 2`;

/** Same as {@link tablesWithoutReplicaIdentity}, on an open connection to the database. */
export async function findTablesWithoutReplicaIdentity(client: Client): Promise<TableRef[]> {
  const { rows } = await client.query<{ schema: string; name: string }>(WITHOUT_IDENTITY_SQL);
  return rows.map((r) => ({ schema: r.schema, name: r.name }));
}

/**
 * Tables in `database` on the source that have no primary key and no usable replica identity
 * (REPLICA IDENTITY DEFAULT without PK, or NOTHING).
 */
export async function tablesWithoutReplicaIdentity(
  source: Endpoint,
  database: string,
): Promise<TableRef[]> {
  try {
    return await withClient(source, database, findTablesWithoutReplicaIdentity, {
      applicationName: "pgmigrate-validate",
      connectTimeoutMs: VALIDATION_CONNECT_TIMEOUT_MS,
    });
  } catch (err) {
    throw MigrationError.wrap(
      "validate",
      err,
      `listing tables without a replica identity in database "${database}" on the source`,
    );
  }
}
