// Database-level checks on the source: extensions, collations and locale the target must offer,
// replica identities, publication privileges and triggers (online), and objects the migration
// does not carry over.
import type { Client } from "pg";
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

const USER_SCHEMAS = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'`;

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
       ARRAY(SELECT format('%I.%I', n.nspname, c.relname)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relpersistence = 'u' AND c.relkind IN ('r', 'p') ORDER BY 1) AS unlogged,
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
    unlogged: string[];
    casts: string[];
    base_types: string[];
  }>(UNSUPPORTED_SQL);
  const r = rows[0];
  const notes: string[] = [];
  const largeObjects = Number(r.large_objects);
  // Copied with the base copy; like PostgreSQL's own logical replication, the stream has no
  // large object changes.
  if (largeObjects > 0 && spec.mode === "Online") {
    notes.push(
      `${largeObjects} large object(s) (pg_largeobject) are copied as of the snapshot; changes to large objects after it are not replicated (as with PostgreSQL's logical replication): stop changing them before the migration starts, or copy them again after the cutover`,
    );
  }
  if (r.unlogged.length > 0)
    notes.push(`unlogged tables are not migrated: ${listSome(r.unlogged)}`);
  if (r.casts.length > 0) notes.push(`user-defined casts are not migrated: ${listSome(r.casts)}`);
  if (r.base_types.length > 0) {
    notes.push(
      `user-defined base types are not migrated (they need their C functions on the target): ${listSome(r.base_types)}`,
    );
  }
  if (notes.length > 0) return warning(CHECK.unsupportedObjects, ...notes);
  return succeeded(
    CHECK.unsupportedObjects,
    largeObjects > 0
      ? `no unlogged tables, user-defined casts or base types; ${largeObjects} large object(s) are copied`
      : "no large objects, unlogged tables, user-defined casts or base types",
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
  );
  return checks;
}
