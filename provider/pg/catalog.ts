// Which relations a migration covers, read from a database's catalog: written once for the clone,
// verification, the change stream, validation and the trigger handling.
import type { Client } from "pg";
import { quoteLiteral } from "./ident";
import { CONTROL_SCHEMA, TARGET_BOOKKEEPING_SCHEMA } from "./names";
import type { TableRef } from "../spec/types";

/**
 * Schemas of ours, never user data: excluded by exact name, so a user schema that merely starts
 * with "pgmigrate" (e.g. pgmigrate_archive) is migrated like any other.
 */
export const OWN_SCHEMAS: readonly string[] = [CONTROL_SCHEMA, TARGET_BOOKKEEPING_SCHEMA];

const OWN_SCHEMAS_SQL = OWN_SCHEMAS.map(quoteLiteral).join(", ");

/**
 * SQL condition on a pg_namespace alias: a schema holding user objects. Not the system schemas
 * (pg_catalog, information_schema, pg_toast*, pg_temp_*; the pg_ prefix is reserved, so no user
 * schema starts with it) and not ours.
 */
export function userSchemaSql(n = "n"): string {
  return (
    `${n}.nspname NOT IN ('pg_catalog', 'information_schema', ${OWN_SCHEMAS_SQL}) ` +
    `AND ${n}.nspname !~ '^pg_(toast|temp_)'`
  );
}

/** SQL condition on a pg_class alias: not a member of an extension (the extension fills it). */
export function notExtensionMemberSql(c = "c"): string {
  return (
    `NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass ` +
    `AND d.objid = ${c}.oid AND d.deptype = 'e')`
  );
}

/**
 * Which rows a migration carries. Unlogged tables are decided once here: their rows are copied in
 * the base copy (offline and online), but logical decoding never sees their changes, so online
 * they are not replicated (validation warns, verification at cutover skips them with that reason).
 * Temporary tables belong to a session and are never migrated.
 */
const COPIED_PERSISTENCE = "('p', 'u')";

/**
 * SQL condition on pg_class/pg_namespace aliases: a table whose rows are copied. relkind 'r' only:
 * ordinary tables, leaf partitions and inheritance children (a partitioned parent holds no rows,
 * and COPY TO of an inheritance parent never includes its children's rows).
 */
export function copiedTableSql(c = "c", n = "n"): string {
  return (
    `${c}.relkind = 'r' AND ${c}.relpersistence IN ${COPIED_PERSISTENCE} ` +
    `AND ${userSchemaSql(n)} AND ${notExtensionMemberSql(c)}`
  );
}

/** SQL condition: a table whose changes the change stream carries (copied and logged). */
export function replicatedTableSql(c = "c", n = "n"): string {
  return `${copiedTableSql(c, n)} AND ${c}.relpersistence = 'p'`;
}

/**
 * SQL condition: a relation of the migration by kind — tables ('r'), partitioned tables ('p'),
 * materialized views ('m'), sequences ('S') — in a user schema, not temporary, not an
 * extension member.
 */
export function migratedRelationSql(kinds: readonly string[], c = "c", n = "n"): string {
  const list = kinds.map(quoteLiteral).join(", ");
  return (
    `${c}.relkind IN (${list}) AND ${c}.relpersistence IN ${COPIED_PERSISTENCE} ` +
    `AND ${userSchemaSql(n)} AND ${notExtensionMemberSql(c)}`
  );
}

/** Tables whose changes the stream carries, by name. */
export async function listReplicatedTables(client: Client): Promise<TableRef[]> {
  const { rows } = await client.query<TableRef>(
    `SELECT n.nspname AS schema, c.relname AS name
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE ${replicatedTableSql()} ORDER BY 1, 2`,
  );
  return rows;
}

/** Unlogged tables: copied in the base copy, but their later changes are never replicated. */
export async function listUnloggedTables(client: Client): Promise<TableRef[]> {
  const { rows } = await client.query<TableRef>(
    `SELECT n.nspname AS schema, c.relname AS name
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE ${copiedTableSql()} AND c.relpersistence = 'u' ORDER BY 1, 2`,
  );
  return rows;
}

// Replicated tables whose UPDATE/DELETE cannot be replicated: identity NOTHING, default identity
// without a primary key (a DEFERRABLE one does not count: it cannot identify rows), or an
// identity index that was dropped. $1: the tables to consider (regclass text), or NULL for all.
const WITHOUT_IDENTITY_SQL = `
  SELECT n.nspname AS schema, c.relname AS name, c.relreplident AS identity
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
   WHERE ${replicatedTableSql()}
     AND ($1::text[] IS NULL OR c.oid = ANY ($1::text[]::pg_catalog.regclass[]))
     AND (c.relreplident = 'n'
          OR (c.relreplident = 'd'
              AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                               WHERE i.indrelid = c.oid AND i.indisprimary AND i.indimmediate))
          OR (c.relreplident = 'i'
              AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                               WHERE i.indrelid = c.oid AND i.indisreplident)))
   ORDER BY 1, 2`;

/** A table without a usable replica identity, with the identity it has ('d', 'n' or 'i'). */
export interface TableWithoutIdentity extends TableRef {
  readonly identity: string;
}

/**
 * Replicated tables without a usable replica identity; `among` (schema-qualified, quoted names)
 * limits the search to those tables.
 */
export async function tablesWithoutReplicaIdentity(
  client: Client,
  among?: readonly string[],
): Promise<TableWithoutIdentity[]> {
  const { rows } = await client.query<TableWithoutIdentity>(WITHOUT_IDENTITY_SQL, [among ?? null]);
  return rows.map((r) => ({ schema: r.schema, name: r.name, identity: r.identity }));
}
