// Ownership and privileges of a database's objects, read from the catalogs: owners, ACL items
// (object, column and default privileges) with role names. Shared by validation and the clone.
import { userSchemaSql } from "./catalog";
import type { Client } from "pg";

/** One ACL item; `grantee` null is PUBLIC. `privilege` is a server keyword (SELECT, EXECUTE, ...). */
export interface AclItem {
  readonly grantor: string;
  readonly grantee: string | null;
  readonly privilege: string;
  readonly grantable: boolean;
}

/** An object that has an owner and possibly an ACL, as SQL can name it. */
export interface OwnedObject {
  /**
   * Keyword of `ALTER <kind> ... OWNER TO`: TABLE, SEQUENCE, FUNCTION, SCHEMA, DOMAIN, ...; null
   * when the owner follows the parent (a serial or identity sequence follows its table).
   */
  readonly alterKind: string | null;
  /** Keyword of `GRANT ... ON <kind>`, or null for objects without privileges. */
  readonly grantKind: string | null;
  /** pg_identify_object's identity: qualified and quoted by the server, with argument types. */
  readonly identity: string;
  /** What users read: "table public.t", "function public.f(integer)". */
  readonly label: string;
  readonly owner: string;
  /** Null: the built-in default ACL for the owner (nothing to restore). */
  readonly acl: readonly AclItem[] | null;
  /** A member of an extension: CREATE EXTENSION sets its owner; only a changed ACL is ours. */
  readonly extensionMember: boolean;
}

export interface ColumnAcl {
  /** Identity of the table (server-quoted). */
  readonly table: string;
  readonly column: string;
  readonly owner: string;
  readonly acl: readonly AclItem[];
}

/** An `ALTER DEFAULT PRIVILEGES` entry; `schema` null is the role's global default. */
export interface DefaultAcl {
  readonly role: string;
  readonly schema: string | null;
  /** TABLES, SEQUENCES, FUNCTIONS, TYPES or SCHEMAS. */
  readonly objects: string;
  readonly acl: readonly AclItem[];
}

export interface DatabasePrivileges {
  readonly objects: readonly OwnedObject[];
  readonly columns: readonly ColumnAcl[];
  readonly defaults: readonly DefaultAcl[];
}

// Schemas the clone copies: not the system schemas, not ours (by exact name, pg/catalog.ts).
const USER_SCHEMA = userSchemaSql("n");

const ACL_JSON = (column: string): string => `
  CASE WHEN ${column} IS NULL THEN NULL ELSE
    (SELECT json_agg(json_build_object(
              'grantor', pg_get_userbyid(a.grantor),
              'grantee', CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END,
              'privilege', a.privilege_type, 'grantable', a.is_grantable) ORDER BY ord)
       FROM aclexplode(${column}) WITH ORDINALITY AS a(grantor, grantee, privilege_type, is_grantable, ord))
  END`;

const NOT_IMPLICIT = (classid: string, oid: string): string =>
  `NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '${classid}'::regclass AND d.objid = ${oid} AND d.deptype = 'i')`;

/*
 * One row per owned object of the user schemas (and the schemas themselves, FDWs and servers).
 * prokind is read through to_jsonb so one query serves PostgreSQL 10 (proisagg) and later.
 * Array types, table row types, multirange types and range constructors follow their parent.
 */
const OBJECTS_SQL = `
WITH objs(classid, objid, owner, acl, alter_kind, grant_kind) AS (
  SELECT 'pg_namespace'::regclass, n.oid, n.nspowner, n.nspacl, 'SCHEMA', 'SCHEMA'
    FROM pg_namespace n WHERE ${USER_SCHEMA}
  UNION ALL
  SELECT 'pg_class'::regclass, c.oid, c.relowner, c.relacl,
         CASE WHEN c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                      AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
              THEN NULL
              WHEN c.relkind = 'S' THEN 'SEQUENCE' WHEN c.relkind = 'v' THEN 'VIEW'
              WHEN c.relkind = 'm' THEN 'MATERIALIZED VIEW' WHEN c.relkind = 'f' THEN 'FOREIGN TABLE'
              ELSE 'TABLE' END,
         CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND ${USER_SCHEMA}
  UNION ALL
  SELECT 'pg_proc'::regclass, p.oid, p.proowner, p.proacl,
         CASE COALESCE(to_jsonb(p) ->> 'prokind', CASE WHEN (to_jsonb(p) ->> 'proisagg')::boolean THEN 'a' ELSE 'f' END)
              WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END,
         CASE WHEN to_jsonb(p) ->> 'prokind' = 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE ${USER_SCHEMA} AND ${NOT_IMPLICIT("pg_proc", "p.oid")}
  UNION ALL
  SELECT 'pg_type'::regclass, t.oid, t.typowner, t.typacl,
         CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
         CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
   WHERE ${USER_SCHEMA} AND t.typtype IN ('b', 'c', 'd', 'e', 'r')
     AND NOT EXISTS (SELECT 1 FROM pg_type e WHERE e.typarray = t.oid)
     AND (t.typrelid = 0 OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
  UNION ALL
  SELECT 'pg_collation'::regclass, co.oid, co.collowner, NULL, 'COLLATION', NULL
    FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace WHERE ${USER_SCHEMA}
  UNION ALL
  SELECT 'pg_conversion'::regclass, cv.oid, cv.conowner, NULL, 'CONVERSION', NULL
    FROM pg_conversion cv JOIN pg_namespace n ON n.oid = cv.connamespace WHERE ${USER_SCHEMA}
  UNION ALL
  SELECT 'pg_operator'::regclass, o.oid, o.oprowner, NULL, 'OPERATOR', NULL
    FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace WHERE ${USER_SCHEMA}
  UNION ALL
  SELECT 'pg_opclass'::regclass, oc.oid, oc.opcowner, NULL, 'OPERATOR CLASS', NULL
    FROM pg_opclass oc JOIN pg_namespace n ON n.oid = oc.opcnamespace WHERE ${USER_SCHEMA}
  UNION ALL
  SELECT 'pg_opfamily'::regclass, f.oid, f.opfowner, NULL, 'OPERATOR FAMILY', NULL
    FROM pg_opfamily f JOIN pg_namespace n ON n.oid = f.opfnamespace WHERE ${USER_SCHEMA}
  UNION ALL
  SELECT 'pg_ts_config'::regclass, tc.oid, tc.cfgowner, NULL, 'TEXT SEARCH CONFIGURATION', NULL
    FROM pg_ts_config tc JOIN pg_namespace n ON n.oid = tc.cfgnamespace WHERE ${USER_SCHEMA}
  UNION ALL
  SELECT 'pg_ts_dict'::regclass, td.oid, td.dictowner, NULL, 'TEXT SEARCH DICTIONARY', NULL
    FROM pg_ts_dict td JOIN pg_namespace n ON n.oid = td.dictnamespace WHERE ${USER_SCHEMA}
  UNION ALL
  SELECT 'pg_statistic_ext'::regclass, s.oid, s.stxowner, NULL, 'STATISTICS', NULL
    FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace WHERE ${USER_SCHEMA}
  UNION ALL
  SELECT 'pg_foreign_data_wrapper'::regclass, w.oid, w.fdwowner, w.fdwacl,
         'FOREIGN DATA WRAPPER', 'FOREIGN DATA WRAPPER'
    FROM pg_foreign_data_wrapper w
  UNION ALL
  SELECT 'pg_foreign_server'::regclass, s.oid, s.srvowner, s.srvacl, 'SERVER', 'FOREIGN SERVER'
    FROM pg_foreign_server s
)
SELECT o.alter_kind, o.grant_kind, i.type, i.identity, pg_get_userbyid(o.owner) AS owner,
       ${ACL_JSON("o.acl")} AS acl,
       EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = o.classid AND d.objid = o.objid
                  AND d.deptype = 'e') AS extension_member,
       ${ACL_JSON(`(SELECT ip.initprivs FROM pg_init_privs ip
                     WHERE ip.classoid = o.classid AND ip.objoid = o.objid AND ip.objsubid = 0)`)} AS init_acl
  FROM objs o CROSS JOIN LATERAL pg_identify_object(o.classid, o.objid, 0) i
-- Schemas first: a grant made as its grantor (SET ROLE) needs that role's USAGE on the schema.
 ORDER BY o.classid <> 'pg_namespace'::regclass, o.classid::oid, i.identity`;

const COLUMNS_SQL = `
SELECT (pg_identify_object('pg_class'::regclass, c.oid, 0)).identity AS table, a.attname AS column,
       pg_get_userbyid(c.relowner) AS owner, ${ACL_JSON("a.attacl")} AS acl
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped
   AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND ${USER_SCHEMA}
 ORDER BY 1, a.attnum`;

const DEFAULTS_SQL = `
SELECT pg_get_userbyid(d.defaclrole) AS role, n.nspname AS schema,
       CASE d.defaclobjtype WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES' WHEN 'f' THEN 'FUNCTIONS'
                            WHEN 'T' THEN 'TYPES' WHEN 'n' THEN 'SCHEMAS' END AS objects,
       ${ACL_JSON("d.defaclacl")} AS acl
  FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
 WHERE d.defaclnamespace = 0 OR ${USER_SCHEMA}
 ORDER BY 1, 2 NULLS FIRST, 3`;

interface ObjectRow {
  alter_kind: string | null;
  grant_kind: string | null;
  type: string;
  identity: string;
  owner: string;
  acl: AclItem[] | null;
  extension_member: boolean;
  init_acl: AclItem[] | null;
}

function sameAcl(a: readonly AclItem[] | null, b: readonly AclItem[] | null): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Everything about ownership and privileges in the connected database (run it in the clone's
 * snapshot transaction to read the state the copy has). An extension member is kept only when
 * its ACL differs from what CREATE EXTENSION gave it (pg_init_privs), as pg_dump does.
 */
export async function readDatabasePrivileges(client: Client): Promise<DatabasePrivileges> {
  const objects = await client.query<ObjectRow>(OBJECTS_SQL);
  const columns = await client.query<ColumnAcl>(COLUMNS_SQL);
  const defaults = await client.query<DefaultAcl>(DEFAULTS_SQL);
  return {
    objects: objects.rows
      .filter((r) => !r.extension_member || (r.acl !== null && !sameAcl(r.acl, r.init_acl)))
      .map((r) => ({
        alterKind: r.alter_kind,
        grantKind: r.grant_kind,
        identity: r.identity,
        label: `${r.type} ${r.identity}`,
        owner: r.owner,
        acl: r.acl,
        extensionMember: r.extension_member,
      })),
    columns: columns.rows,
    defaults: defaults.rows.filter((d) => d.objects !== null),
  };
}

/** Every role named as an owner, grantor or grantee (PUBLIC excluded). */
export function rolesNamed(privileges: DatabasePrivileges): Set<string> {
  const roles = new Set<string>();
  const addAcl = (acl: readonly AclItem[] | null): void => {
    for (const item of acl ?? []) {
      roles.add(item.grantor);
      if (item.grantee !== null) roles.add(item.grantee);
    }
  };
  for (const o of privileges.objects) {
    if (!o.extensionMember && o.alterKind !== null) roles.add(o.owner);
    addAcl(o.acl);
  }
  for (const c of privileges.columns) addAcl(c.acl);
  for (const d of privileges.defaults) {
    roles.add(d.role);
    addAcl(d.acl);
  }
  return roles;
}
