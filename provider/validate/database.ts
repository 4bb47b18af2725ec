// Database-level checks on the source: extensions, collations and locale the target must offer,
// replica identities, publication privileges and triggers (online), and objects the migration
// does not carry over.
import type { Client } from "pg";
import { listUnloggedTables, userSchemaSql } from "../pg/catalog";
import { quoteIdent } from "../pg/ident";
import type { CheckResult, MigrationSpec } from "../spec/types";
import { CHECK, displayName, failed, guarded, listSome, succeeded, warning } from "./checks";
import type {
  CollationProvider,
  DatabaseLocale,
  InstalledExtension,
  UsedCollation,
} from "./compat";
import { collationProblems, databaseLocaleProblems, extensionProblems } from "./compat";
import { privilegesCheck } from "./grants";
import { publicationPrivilegeCheck } from "./publication-privilege";
import { findTablesWithoutReplicaIdentity } from "./replica-identity";
import type { TargetCatalog } from "./target";
import { targetTriggersCheck } from "./triggers";

const USER_SCHEMAS = userSchemaSql();

function collationsSql(versionNum: number): string {
  const provider = versionNum >= 100_000 ? "co.collprovider" : "'c'::\"char\"";
  return `
WITH used AS (
  SELECT a.attcollation AS coll, format('%I.%I.%I', n.nspname, c.relname, a.attname) AS used_by
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attcollation <> 0
     AND c.relkind IN ('r', 'p', 'm', 'v', 'f', 'c') AND ${USER_SCHEMAS}
  UNION ALL
  SELECT x.coll, format('index %I.%I', n.nspname, c.relname)
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    CROSS JOIN LATERAL unnest(i.indcollation::oid[]) AS x(coll)
   WHERE x.coll <> 0 AND ${USER_SCHEMAS}
  UNION ALL
  SELECT t.typcollation, format('domain %I.%I', n.nspname, t.typname)
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
   WHERE t.typtype = 'd' AND t.typcollation <> 0 AND ${USER_SCHEMAS}
)
SELECT n.nspname AS schema, co.collname AS name, ${provider} AS provider,
       co.collcollate AS collate, co.collctype AS ctype,
       (array_agg(DISTINCT u.used_by ORDER BY u.used_by))[1:3] AS used_by
  FROM used u
  JOIN pg_collation co ON co.oid = u.coll
  JOIN pg_namespace n ON n.oid = co.collnamespace
 WHERE co.collname <> 'default'
 GROUP BY 1, 2, 3, 4, 5
 ORDER BY 1, 2`;
}

function localeSql(versionNum: number): string {
  const provider = versionNum >= 150_000 ? "d.datlocprovider" : "'c'::\"char\"";
  const icu =
    versionNum >= 170_000 ? "d.datlocale" : versionNum >= 150_000 ? "d.daticulocale" : "NULL::text";
  return `
SELECT pg_encoding_to_char(d.encoding) AS encoding, d.datcollate AS collate, d.datctype AS ctype,
       ${provider} AS provider, ${icu} AS icu_locale
  FROM pg_database d WHERE d.datname = current_database()`;
}

const UNSUPPORTED_SQL = `
SELECT (SELECT count(*) FROM pg_largeobject_metadata) AS large_objects,
       ARRAY(SELECT format('%s AS %s', c.castsource::regtype, c.casttarget::regtype)
               FROM pg_cast c
              WHERE c.oid >= 16384
                AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_cast'::regclass
                                   AND d.objid = c.oid AND d.deptype = 'e')
              ORDER BY 1) AS casts,
       ARRAY(SELECT format('%I.%I', n.nspname, t.typname)
               FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
              WHERE t.typtype = 'b' AND ${USER_SCHEMAS}
                AND NOT (t.typelem <> 0 AND t.typlen = -1)
                AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                                   AND d.objid = t.oid AND d.deptype = 'e')
              ORDER BY 1) AS base_types`;

async function extensionsCheck(client: Client, catalog: TargetCatalog): Promise<CheckResult> {
  const { rows } = await client.query<InstalledExtension>(
    "SELECT extname AS name, extversion AS version FROM pg_extension ORDER BY 1",
  );
  const problems = extensionProblems(rows, catalog.extensionDefaults, catalog.extensionAllowList);
  if (problems.length > 0) return failed(CHECK.extensions, ...problems);
  return succeeded(
    CHECK.extensions,
    `all ${rows.length} installed extension(s) are available on the target: ${rows.map((e) => `${e.name} ${e.version}`).join(", ")}`,
  );
}

async function collationsCheck(
  client: Client,
  versionNum: number,
  catalog: TargetCatalog,
): Promise<CheckResult> {
  const { rows } = await client.query<{
    schema: string;
    name: string;
    provider: CollationProvider;
    collate: string | null;
    ctype: string | null;
    used_by: string[];
  }>(collationsSql(versionNum));
  const used: UsedCollation[] = rows.map((r) => ({ ...r, usedBy: r.used_by }));
  const problems = collationProblems(used, catalog.locales);
  if (problems.length > 0) return failed(CHECK.collations, ...problems);
  return succeeded(
    CHECK.collations,
    used.length === 0
      ? "no column or index uses a non-default collation"
      : `collations used by columns and indexes are available on the target: ${used.map((c) => c.name).join(", ")}`,
  );
}

async function encodingCheck(
  client: Client,
  versionNum: number,
  catalog: TargetCatalog,
): Promise<CheckResult> {
  const { rows } = await client.query<{
    encoding: string;
    collate: string;
    ctype: string;
    provider: CollationProvider;
    icu_locale: string | null;
  }>(localeSql(versionNum));
  const r = rows[0];
  const locale: DatabaseLocale = { ...r, icuLocale: r.icu_locale };
  const problems = databaseLocaleProblems(locale, catalog.locales);
  if (locale.encoding === "SQL_ASCII") {
    // SQL_ASCII stores bytes unchecked: the base copy could pass them through, but the change
    // stream converts to UTF8 and the target rejects invalid bytes mid-migration.
    problems.push(
      `the source database uses encoding SQL_ASCII, which stores bytes without checking them: values cannot be migrated reliably (the change stream would fail on the first non-UTF8 byte). ` +
        `Convert it first (e.g. pg_dump --encoding=<the data's real encoding> and restore into a UTF8 database), then migrate that database`,
    );
  }
  if (problems.length > 0) return failed(CHECK.encoding, ...problems);
  const icu = locale.provider === "i" ? `, ICU locale ${locale.icuLocale ?? ""}` : "";
  return succeeded(
    CHECK.encoding,
    `encoding ${locale.encoding}, LC_COLLATE ${locale.collate}, LC_CTYPE ${locale.ctype}${icu}: can be created on the target`,
  );
}

async function replicaIdentityCheck(client: Client, spec: MigrationSpec): Promise<CheckResult> {
  const tables = (await findTablesWithoutReplicaIdentity(client)).map((t) =>
    displayName(t.schema, t.name),
  );
  if (tables.length === 0) {
    return succeeded(CHECK.replicaIdentity, "every table has a primary key or a replica identity");
  }
  if (spec.fixReplicaIdentity === "full") {
    return warning(
      CHECK.replicaIdentity,
      `REPLICA IDENTITY FULL will be applied to: ${listSome(tables, 50)} (no primary key); their UPDATE and DELETE replicate by whole-row comparison, which is slower on large tables`,
    );
  }
  return failed(
    CHECK.replicaIdentity,
    `tables without a primary key or replica identity: ${listSome(tables, 50)}. Adding them to the publication would make the source reject their UPDATE and DELETE: ` +
      `add a primary key, set REPLICA IDENTITY USING INDEX or FULL, or set fixReplicaIdentity: "full"`,
  );
}

async function unsupportedObjectsCheck(client: Client, spec: MigrationSpec): Promise<CheckResult> {
  const { rows } = await client.query<{
    large_objects: string;
    casts: string[];
    base_types: string[];
  }>(UNSUPPORTED_SQL);
  const r = rows[0];
  // Unlogged tables are copied (pg/catalog.ts); logical decoding never sees their changes.
  const unlogged =
    spec.mode === "Online"
      ? (await listUnloggedTables(client)).map((t) => displayName(t.schema, t.name))
      : [];
  const notes: string[] = [];
  const largeObjects = Number(r.large_objects);
  // Copied with the base copy; like PostgreSQL's own logical replication, the stream has no
  // large object changes.
  if (largeObjects > 0 && spec.mode === "Online") {
    notes.push(
      `${largeObjects} large object(s) (pg_largeobject) are copied as of the snapshot; changes to large objects after it are not replicated (as with PostgreSQL's logical replication): stop changing them before the migration starts, or copy them again after the cutover`,
    );
  }
  if (unlogged.length > 0) {
    notes.push(
      `unlogged tables are copied in the base copy, but their later changes are not replicated (logical replication does not see them): ${listSome(unlogged)}`,
    );
  }
  if (r.casts.length > 0) notes.push(`user-defined casts are not migrated: ${listSome(r.casts)}`);
  if (r.base_types.length > 0) {
    notes.push(
      `user-defined base types are not migrated (they need their C functions on the target): ${listSome(r.base_types)}`,
    );
  }
  if (notes.length > 0) return warning(CHECK.unsupportedObjects, ...notes);
  const nothing = `no ${spec.mode === "Online" ? "unlogged tables, " : ""}user-defined casts or base types`;
  return succeeded(
    CHECK.unsupportedObjects,
    largeObjects > 0 ? `${nothing}; ${largeObjects} large object(s) are copied` : nothing,
  );
}

/**
 * A source database frozen with default_transaction_read_only (how writes are usually stopped
 * before a cutover). Our sessions write regardless (pg/connect.ts pins it off for them).
 */
async function readOnlyCheck(client: Client, spec: MigrationSpec): Promise<CheckResult> {
  const { rows } = await client.query<{ on: boolean; db: string }>(
    "SELECT current_setting('default_transaction_read_only') = 'on' AS on, current_database() AS db",
  );
  if (!rows[0].on) {
    return succeeded(CHECK.readOnlyDatabase, "the source database is not read-only");
  }
  const online =
    spec.mode === "Online"
      ? " This is the usual way to stop the applications' writes before the cutover: the migration's own sessions still create and drop its publication and slot, and the cutover completes."
      : "";
  return warning(
    CHECK.readOnlyDatabase,
    `database ${quoteIdent(rows[0].db)} on the source is read-only (default_transaction_read_only = on) for user sessions.${online} The setting is not copied to the target database, which accepts writes after the migration.`,
  );
}

// Columns of type money (also inside arrays and domains) in the migration's tables.
const MONEY_COLUMNS_SQL = `
SELECT format('%I.%I.%I', n.nspname, c.relname, a.attname) AS name
  FROM pg_catalog.pg_attribute a
  JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
 WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND ${USER_SCHEMAS}
   AND 'pg_catalog.money'::pg_catalog.regtype::oid IN (t.oid, t.typelem, t.typbasetype)
 ORDER BY 1`;

/**
 * money is stored as an amount in the smallest unit of the lc_monetary in force: copied as is
 * (our sessions pin lc_monetary), it reads as a different amount where lc_monetary differs.
 */
async function moneyCheck(client: Client, catalog: TargetCatalog): Promise<CheckResult> {
  const columns = (await client.query<{ name: string }>(MONEY_COLUMNS_SQL)).rows.map((r) => r.name);
  if (columns.length === 0) return succeeded(CHECK.money, "no money columns");
  // The validation session leaves lc_monetary unpinned; a database-level setting is copied to
  // the target database with the other settings, so only a server/role default can differ.
  const { rows } = await client.query<{ lc: string; db_level: boolean }>(
    `SELECT current_setting('lc_monetary') AS lc,
            EXISTS (SELECT 1 FROM pg_catalog.pg_db_role_setting s, pg_catalog.pg_database d
                     WHERE d.datname = current_database() AND s.setdatabase = d.oid AND s.setrole = 0
                       AND EXISTS (SELECT 1 FROM unnest(s.setconfig) x WHERE x LIKE 'lc\\_monetary=%')) AS db_level`,
  );
  const source = rows[0].lc;
  const target = rows[0].db_level ? source : catalog.lcMonetary;
  if (source === target) {
    return succeeded(CHECK.money, `money columns use lc_monetary ${source} on both sides`);
  }
  return warning(
    CHECK.money,
    `lc_monetary is ${source} on the source but ${target} on the target: money values are copied as stored and will read as different amounts or currencies in ${listSome(columns)}. ` +
      `Set lc_monetary on the target database to ${source} (ALTER DATABASE ... SET lc_monetary), or convert these columns to numeric`,
  );
}

/** Every source-side check of one database, on an open connection to it. */
export async function sourceDatabaseChecks(
  client: Client,
  versionNum: number,
  spec: MigrationSpec,
  catalog: TargetCatalog,
): Promise<CheckResult[]> {
  const checks = [
    ...(await guarded(CHECK.extensions, () => extensionsCheck(client, catalog))),
    ...(await guarded(CHECK.collations, () => collationsCheck(client, versionNum, catalog))),
    ...(await guarded(CHECK.encoding, () => encodingCheck(client, versionNum, catalog))),
  ];
  if (spec.mode === "Online") {
    checks.push(
      ...(await guarded(CHECK.replicaIdentity, () => replicaIdentityCheck(client, spec))),
      ...(await guarded(CHECK.publicationPrivilege, () => publicationPrivilegeCheck(client))),
      ...(await guarded(CHECK.targetTriggers, () =>
        targetTriggersCheck(client, spec, catalog.replicaRole),
      )),
    );
  }
  checks.push(...(await guarded(CHECK.privileges, () => privilegesCheck(client, spec, catalog))));
  checks.push(
    ...(await guarded(CHECK.unsupportedObjects, () => unsupportedObjectsCheck(client, spec))),
    ...(await guarded(CHECK.readOnlyDatabase, () => readOnlyCheck(client, spec))),
    ...(await guarded(CHECK.money, () => moneyCheck(client, catalog))),
  );
  return checks;
}
