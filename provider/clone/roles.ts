// migrateRoles: the roles that own objects or hold privileges in the migrated databases are
// created on the target when missing, so pg_restore can keep ownership and grants.
import type { Client } from "pg";
import { userSchemaSql } from "../pg/catalog";
import { withClient } from "../pg/connect";
import { MigrationError, SQLSTATE, pgFields } from "../pg/errors";
import { quoteIdent } from "../pg/ident";
import type { MigrationSpec } from "../spec/types";

interface SourceRole {
  readonly rolname: string;
  readonly rolcanlogin: boolean;
  readonly rolinherit: boolean;
  readonly rolconnlimit: number;
  /** Attributes we deliberately do not copy (superuser, replication, ...), for the warning. */
  readonly withheld: string[];
}

/**
 * Roles a database depends on. pg_shdepend lists owners, ACL grantees and policy roles of every
 * object in the database (and of the database itself), except objects of the bootstrap
 * superuser, whose ownership is "pinned" and not recorded: those owners come from the catalogs.
 */
async function rolesOfDatabase(source: Client): Promise<string[]> {
  const userSchema = userSchemaSql();
  const { rows } = await source.query<{ rolname: string }>(
    `WITH db AS (SELECT oid FROM pg_database WHERE datname = current_database()),
     oids AS (
       SELECT d.refobjid AS role FROM pg_shdepend d, db
        WHERE d.refclassid = 'pg_authid'::regclass
          AND (d.dbid = db.oid OR (d.dbid = 0 AND d.classid = 'pg_database'::regclass AND d.objid = db.oid))
       UNION SELECT datdba FROM pg_database, db WHERE pg_database.oid = db.oid
       UNION SELECT n.nspowner FROM pg_namespace n WHERE ${userSchema}
       UNION SELECT c.relowner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${userSchema}
       UNION SELECT p.proowner FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE ${userSchema}
       UNION SELECT t.typowner FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE ${userSchema})
     SELECT r.rolname FROM pg_roles r JOIN oids ON oids.role = r.oid
      WHERE r.rolname NOT LIKE 'pg\\_%' ORDER BY 1`,
  );
  return rows.map((r) => r.rolname);
}

async function describeRoles(source: Client, names: readonly string[]): Promise<SourceRole[]> {
  const { rows } = await source.query<Omit<SourceRole, "withheld"> & Record<string, boolean>>(
    `SELECT rolname, rolcanlogin, rolinherit, rolconnlimit, rolsuper, rolcreatedb, rolcreaterole,
            rolreplication, rolbypassrls
       FROM pg_roles WHERE rolname = ANY($1) ORDER BY rolname`,
    [names],
  );
  return rows.map((r) => ({
    rolname: r.rolname,
    rolcanlogin: r.rolcanlogin,
    rolinherit: r.rolinherit,
    rolconnlimit: r.rolconnlimit,
    withheld: ["rolsuper", "rolcreatedb", "rolcreaterole", "rolreplication", "rolbypassrls"]
      .filter((attr) => r[attr])
      .map((attr) => attr.slice(3).toUpperCase()),
  }));
}

/** Memberships among `members` (role granted to member) on the source. */
async function memberships(
  source: Client,
  members: readonly string[],
): Promise<{ role: string; member: string; admin: boolean }[]> {
  const { rows } = await source.query<{ role: string; member: string; admin: boolean }>(
    `SELECT r.rolname AS role, m.rolname AS member, am.admin_option AS admin
       FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member
      WHERE m.rolname = ANY($1) AND r.rolname NOT LIKE 'pg\\_%' ORDER BY 1, 2`,
    [members],
  );
  return rows;
}

/**
 * A role is created LOGIN when it can log in on the source (without a password, which managed
 * sources never reveal; its users cannot log in until an administrator sets one), NOLOGIN
 * otherwise. SUPERUSER, CREATEDB, CREATEROLE, REPLICATION and BYPASSRLS are not copied: the
 * target user often may not grant them, and silently granting them would widen privileges.
 */
function createStatement(role: SourceRole): string {
  return [
    `CREATE ROLE ${quoteIdent(role.rolname)}`,
    role.rolcanlogin ? "LOGIN" : "NOLOGIN",
    role.rolinherit ? "INHERIT" : "NOINHERIT",
    `CONNECTION LIMIT ${Number(role.rolconnlimit)}`,
  ].join(" ");
}

/** Creates the roles the migrated databases need that the target lacks. */
export async function migrateRoles(
  spec: MigrationSpec,
): Promise<{ created: string[]; warnings: string[] }> {
  try {
    const needed = new Set<string>();
    for (const database of spec.databases) {
      for (const role of await withClient(spec.source, database, rolesOfDatabase)) needed.add(role);
    }
    if (needed.size === 0) return { created: [], warnings: [] };
    const names = [...needed];
    const [roles, grants] = await withClient(spec.source, spec.databases[0], async (source) => {
      return [await describeRoles(source, names), await memberships(source, names)] as const;
    });
    return await withClient(spec.target, spec.controlDatabase, (target) =>
      createMissing(target, roles, grants),
    );
  } catch (err) {
    throw MigrationError.wrap("roles", err, "migrating roles");
  }
}

async function createMissing(
  target: Client,
  roles: readonly SourceRole[],
  grants: readonly { role: string; member: string; admin: boolean }[],
): Promise<{ created: string[]; warnings: string[] }> {
  const { rows: me } = await target.query<{ rolsuper: boolean }>(
    "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
  );
  const superuser = me[0]?.rolsuper ?? false;
  const { rows: present } = await target.query<{ rolname: string }>(
    "SELECT rolname FROM pg_roles WHERE rolname = ANY($1)",
    [roles.map((r) => r.rolname)],
  );
  const existing = new Set(present.map((r) => r.rolname));
  const created: string[] = [];
  const warnings: string[] = [];
  for (const role of roles) {
    if (existing.has(role.rolname)) continue;
    try {
      await target.query(createStatement(role));
    } catch (err) {
      // Another migration created it meanwhile: fine, it exists now.
      if (pgFields(err).code === SQLSTATE.duplicateObject) continue;
      throw err;
    }
    created.push(role.rolname);
    existing.add(role.rolname);
    if (role.rolcanlogin) {
      warnings.push(
        `role "${role.rolname}" was created without a password: set one (ALTER ROLE ... PASSWORD) before its users log in`,
      );
    }
    if (role.withheld.length > 0) {
      warnings.push(
        `role "${role.rolname}" was created without ${role.withheld.join(", ")}: grant them on the target if still needed`,
      );
    }
    // A non-superuser may only give objects to roles it is a member of (pg_restore's ALTER ... OWNER).
    if (!superuser) {
      await target
        .query(`GRANT ${quoteIdent(role.rolname)} TO CURRENT_USER`)
        .catch((err: Error) =>
          warnings.push(
            `could not grant role "${role.rolname}" to the target user: ${err.message}`,
          ),
        );
    }
  }
  for (const grant of grants) {
    if (!created.includes(grant.member) || !existing.has(grant.role)) continue;
    const admin = grant.admin ? " WITH ADMIN OPTION" : "";
    await target
      .query(`GRANT ${quoteIdent(grant.role)} TO ${quoteIdent(grant.member)}${admin}`)
      .catch((err: Error) =>
        warnings.push(`could not grant role "${grant.role}" to "${grant.member}": ${err.message}`),
      );
  }
  return { created, warnings };
}
