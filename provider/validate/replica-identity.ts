// Tables whose UPDATE/DELETE the source would reject once they are in a publication: no primary
// key and no usable replica identity. Validation reports them; online setup may fix them.
import type { Client } from "pg";
import { tablesWithoutReplicaIdentity as catalogTablesWithoutReplicaIdentity } from "../pg/catalog";
import { withClient } from "../pg/connect";
import { MigrationError } from "../pg/errors";
import type { Endpoint, TableRef } from "../spec/types";
import { VALIDATION_CONNECT_TIMEOUT_MS } from "./connectivity";

/**
 * Same as {@link tablesWithoutReplicaIdentity}, on an open connection to the database: the
 * replicated tables (pg/catalog.ts decides which) the source could not replicate.
 */
export async function findTablesWithoutReplicaIdentity(client: Client): Promise<TableRef[]> {
  const tables = await catalogTablesWithoutReplicaIdentity(client);
  return tables.map(({ schema, name }) => ({ schema, name }));
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
