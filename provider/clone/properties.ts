// Database-level properties pg_dump leaves out without --create: per-database settings
// (ALTER DATABASE ... SET), the comment, the owner and grants (for roles the target has).
import type { Client } from "pg";
import { withClient } from "../pg/connect";
import { quoteIdent, quoteLiteral } from "../pg/ident";
import type { MigrationSpec } from "../spec/types";

/** Settings whose value is a list of quoted elements (PostgreSQL's GUC_LIST_QUOTE). */
const LIST_SETTINGS = new Set([
  "search_path",
  "temp_tablespaces",
  "session_preload_libraries",
  "local_preload_libraries",
  "shared_preload_libraries",
  "unix_socket_directories",
]);

interface SourceDatabase {
  readonly settings: string[];
  readonly comment: string | null;
  readonly owner: string;
  readonly acl: { grantee: string | null; privilege: string; grantable: boolean }[] | null;
}

/**
 * Settings never copied: a source frozen for its cutover (default_transaction_read_only) must
 * not give a read-only target.
 */
const NOT_COPIED = new Set(["default_transaction_read_only"]);

/** `"$user", public` → ["$user", "public"] (identifier list as PostgreSQL prints it). */
export function splitSettingList(value: string): string[] {
  const items: string[] = [];
  const re = /\s*(?:"((?:[^"]|"")*)"|([^,\s]+))\s*(?:,|$)/gy;
  let m: RegExpExecArray | null;
  while (re.lastIndex < value.length && (m = re.exec(value)) !== null) {
    items.push(m[1] !== undefined ? m[1].replace(/""/g, '"') : m[2]);
  }
  return items;
}

/** `ALTER DATABASE ... SET` for one `name=value` entry of pg_db_role_setting. */
function setStatement(database: string, entry: string): string {
  const eq = entry.indexOf("=");
  const name = entry.slice(0, eq);
  const value = entry.slice(eq + 1);
  const rendered = LIST_SETTINGS.has(name.toLowerCase())
    ? splitSettingList(value).map(quoteLiteral).join(", ")
    : quoteLiteral(value);
  return `ALTER DATABASE ${quoteIdent(database)} SET ${quoteIdent(name)} TO ${rendered || "''"}`;
}

async function readSource(source: Client): Promise<SourceDatabase> {
  const { rows } = await source.query<SourceDatabase>(
    `SELECT COALESCE((SELECT s.setconfig FROM pg_db_role_setting s
                       WHERE s.setdatabase = d.oid AND s.setrole = 0), '{}') AS settings,
            shobj_description(d.oid, 'pg_database') AS comment,
            pg_get_userbyid(d.datdba) AS owner,
            CASE WHEN d.datacl IS NULL THEN NULL ELSE
              (SELECT json_agg(json_build_object(
                        'grantee', CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END,
                        'privilege', a.privilege_type, 'grantable', a.is_grantable))
                 FROM aclexplode(d.datacl) a) END AS acl
       FROM pg_database d WHERE d.datname = current_database()`,
  );
  return rows[0];
}

/**
 * Applies the source database's settings, comment, owner and grants to the target database. Each statement that fails becomes a warning: a setting from an
 * extension the target lacks must not fail a finished clone.
 */
export async function copyDatabaseProperties(
  spec: MigrationSpec,
  database: string,
): Promise<string[]> {
  const source = await withClient(spec.source, database, readSource);
  const db = quoteIdent(database);
  const warnings: string[] = [];
  const statements: string[] = [];
  for (const entry of source.settings) {
    const name = entry.slice(0, entry.indexOf("=")).toLowerCase();
    if (NOT_COPIED.has(name)) {
      warnings.push(
        `database "${database}": the source's setting ${entry} was not copied: the target database accepts writes`,
      );
    } else statements.push(setStatement(database, entry));
  }
  if (source.comment !== null) {
    statements.push(`COMMENT ON DATABASE ${db} IS ${quoteLiteral(source.comment)}`);
  }
  // Owner and grants as on the source for every role the target has (migrateRoles creates the
  // missing ones first): a missing role must not widen CONNECT or TEMPORARY to PUBLIC.
  const named = [
    source.owner,
    ...(source.acl ?? []).flatMap((a) => (a.grantee ? [a.grantee] : [])),
  ];
  const existing = await withClient(spec.target, database, async (target) => {
    const { rows } = await target.query<{ rolname: string }>(
      "SELECT rolname FROM pg_roles WHERE rolname = ANY($1)",
      [named],
    );
    return new Set(rows.map((r) => r.rolname));
  });
  if (existing.has(source.owner)) {
    statements.push(`ALTER DATABASE ${db} OWNER TO ${quoteIdent(source.owner)}`);
  } else {
    warnings.push(
      `database "${database}": its owner "${source.owner}" does not exist on the target; the target user "${spec.target.username}" owns it`,
    );
  }
  if (source.acl !== null) {
    // An explicit ACL replaces the defaults (CONNECT and TEMPORARY for PUBLIC).
    statements.push(`REVOKE ALL ON DATABASE ${db} FROM PUBLIC`);
    for (const item of source.acl) {
      // privilege_type is a server-made keyword (CONNECT, CREATE, TEMPORARY); refuse anything else.
      if (!/^[A-Z]+$/.test(item.privilege)) continue;
      if (item.grantee !== null && !existing.has(item.grantee)) {
        warnings.push(
          `database "${database}": ${item.privilege} was not granted to "${item.grantee}", which does not exist on the target`,
        );
        continue;
      }
      const grantee = item.grantee === null ? "PUBLIC" : quoteIdent(item.grantee);
      const option = item.grantable ? " WITH GRANT OPTION" : "";
      statements.push(`GRANT ${item.privilege} ON DATABASE ${db} TO ${grantee}${option}`);
    }
  }
  await withClient(spec.target, database, async (target) => {
    for (const statement of statements) {
      try {
        await target.query(statement);
      } catch (err) {
        warnings.push(
          `database "${database}": could not apply "${statement}": ${(err as Error).message}`,
        );
      }
    }
  });
  return warnings;
}
