// Owners and privileges of the restored schema, applied from the source's catalogs: never wider
// than on the source; grants to roles missing on the target and unreachable owners reported.
//
// Why not pg_restore's own ACL entries: each one holds every GRANT/REVOKE of an object in one
// statement batch, so a single grant to a role missing on the target either fails the restore or
// (without --exit-on-error) drops the whole entry, REVOKE ... FROM PUBLIC included: exactly the
// widening we must avoid. The catalog names each item's grantee, so we restore item by item.
import type { Client } from "pg";
import { withClient } from "../pg/connect";
import { SQLSTATE, pgFields } from "../pg/errors";
import { quoteIdent } from "../pg/ident";
import type { AclItem, DatabasePrivileges, DefaultAcl, OwnedObject } from "../pg/privileges";
import { rolesNamed } from "../pg/privileges";
import type { MigrationSpec } from "../spec/types";

/** What could not be restored exactly, for the clone's warnings. */
interface Shortfalls {
  /** Missing role → objects whose ownership fell back to the target user. */
  readonly orphaned: Map<string, string[]>;
  /** Existing role the target user may not give objects to → objects it kept. */
  readonly unreachable: Map<string, string[]>;
  /** Missing role → "SELECT on table public.t" items not granted. */
  readonly ungranted: Map<string, string[]>;
  readonly failures: string[];
}

interface TargetSession {
  readonly client: Client;
  readonly user: string;
  readonly roles: ReadonlySet<string>;
  /** Roles the target user may give objects to and set default privileges for. */
  readonly actFor: ReadonlySet<string>;
}

function note(map: Map<string, string[]>, role: string, what: string): void {
  const list = map.get(role) ?? [];
  list.push(what);
  map.set(role, list);
}

/** Runs one statement; a failure is reported, never fatal (one object must not stop the rest). */
async function run(session: TargetSession, gaps: Shortfalls, statement: string): Promise<void> {
  try {
    await session.client.query(statement);
  } catch (err) {
    gaps.failures.push(`could not apply "${statement}": ${(err as Error).message}`);
  }
}

/** A name as users read it (and as pg_identify_object prints it): quoted only when needed. */
function readable(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : quoteIdent(name);
}

function grantee(name: string | null): string {
  return name === null ? "PUBLIC" : quoteIdent(name);
}

/** `SELECT`, `SELECT (col)`: server keywords only, so nothing foreign reaches the statement. */
function privilegeOf(item: AclItem, column?: string): string | undefined {
  if (!/^[A-Z ]+$/.test(item.privilege)) return undefined;
  return column === undefined ? item.privilege : `${item.privilege} (${quoteIdent(column)})`;
}

/**
 * Grants `items` on `on` ("TABLE public.t"). Items granted by someone other than the owner are
 * granted as that grantor (SET ROLE), so the grant chain of WITH GRANT OPTION is kept; the
 * owner's own items go first because the others depend on them.
 */
async function grantItems(
  session: TargetSession,
  gaps: Shortfalls,
  args: {
    on: string;
    label: string;
    owner: string;
    actualOwner: string;
    items: readonly AclItem[];
    column?: string;
  },
): Promise<void> {
  const ordered = [
    ...args.items.filter((i) => i.grantor === args.owner),
    ...args.items.filter((i) => i.grantor !== args.owner),
  ];
  for (const item of ordered) {
    const privilege = privilegeOf(item, args.column);
    if (privilege === undefined) continue;
    const to = item.grantee === args.owner ? args.actualOwner : item.grantee;
    if (to !== null && !session.roles.has(to)) {
      note(gaps.ungranted, to, `${privilege} on ${args.label}`);
      continue;
    }
    const option = item.grantable ? " WITH GRANT OPTION" : "";
    const grant = `GRANT ${privilege} ON ${args.on} TO ${grantee(to)}${option}`;
    const asGrantor = item.grantor !== args.owner && session.roles.has(item.grantor);
    if (asGrantor) {
      try {
        await session.client.query(`SET ROLE ${quoteIdent(item.grantor)}`);
        await session.client.query(grant);
        continue;
      } catch {
        // Not allowed to act as the grantor: grant as the owner, which gives the same privilege.
      } finally {
        await session.client.query("RESET ROLE");
      }
    }
    await run(session, gaps, grant);
  }
}

/** Gives `object` its owner and ACL; returns the role that owns it on the target. */
async function restoreObject(
  session: TargetSession,
  gaps: Shortfalls,
  object: OwnedObject,
): Promise<string> {
  let actualOwner = object.owner;
  // Even when the source owner is the target user: objects the target database already had (the
  // public schema, owned by pg_database_owner from PostgreSQL 15) were not created by the restore.
  if (object.alterKind !== null && !object.extensionMember) {
    if (!session.roles.has(object.owner)) {
      note(gaps.orphaned, object.owner, object.label);
      actualOwner = session.user;
    } else if (!session.actFor.has(object.owner)) {
      note(gaps.unreachable, object.owner, object.label);
      actualOwner = session.user;
    } else {
      const statement = `ALTER ${object.alterKind} ${object.identity} OWNER TO ${quoteIdent(object.owner)}`;
      try {
        await session.client.query(statement);
      } catch (err) {
        // PostgreSQL 16+ also wants the SET option on the membership, which MEMBER does not show.
        if (pgFields(err).code === SQLSTATE.insufficientPrivilege) {
          note(gaps.unreachable, object.owner, object.label);
        } else {
          gaps.failures.push(`could not apply "${statement}": ${(err as Error).message}`);
        }
        actualOwner = session.user;
      }
    }
  }
  if (object.acl === null || object.grantKind === null) return actualOwner;
  const on = `${object.grantKind} ${object.identity}`;
  // From the owner's default ACL to exactly the source's: start empty, then grant each item.
  await run(session, gaps, `REVOKE ALL ON ${on} FROM PUBLIC`);
  await run(session, gaps, `REVOKE ALL ON ${on} FROM ${quoteIdent(actualOwner)}`);
  await grantItems(session, gaps, {
    on,
    label: object.label,
    owner: object.owner,
    actualOwner,
    items: object.acl,
  });
  return actualOwner;
}

/**
 * A role's global default replaces the built-in one (so it is rebuilt from empty); a per-schema
 * default only adds to it (so its items are granted).
 */
async function restoreDefault(
  session: TargetSession,
  gaps: Shortfalls,
  entry: DefaultAcl,
): Promise<void> {
  const where = entry.schema === null ? "" : ` in schema ${readable(entry.schema)}`;
  const label = `default privileges of role ${readable(entry.role)} on ${entry.objects.toLowerCase()}${where}`;
  if (!session.roles.has(entry.role)) {
    note(gaps.orphaned, entry.role, label);
    return;
  }
  if (!session.actFor.has(entry.role)) {
    note(gaps.unreachable, entry.role, label);
    return;
  }
  const prefix = `ALTER DEFAULT PRIVILEGES FOR ROLE ${quoteIdent(entry.role)}${
    entry.schema === null ? "" : ` IN SCHEMA ${quoteIdent(entry.schema)}`
  }`;
  if (entry.schema === null) {
    await run(session, gaps, `${prefix} REVOKE ALL ON ${entry.objects} FROM PUBLIC`);
    await run(
      session,
      gaps,
      `${prefix} REVOKE ALL ON ${entry.objects} FROM ${quoteIdent(entry.role)}`,
    );
  }
  for (const item of entry.acl) {
    const privilege = privilegeOf(item);
    if (privilege === undefined) continue;
    if (item.grantee !== null && !session.roles.has(item.grantee)) {
      note(gaps.ungranted, item.grantee, `${privilege} on ${label}`);
      continue;
    }
    const option = item.grantable ? " WITH GRANT OPTION" : "";
    await run(
      session,
      gaps,
      `${prefix} GRANT ${privilege} ON ${entry.objects} TO ${grantee(item.grantee)}${option}`,
    );
  }
}

function describe(map: Map<string, string[]>, max = 10): string {
  return [...map.entries()]
    .map(([role, items]) => {
      const shown = items.slice(0, max).join(", ");
      const more = items.length > max ? ` and ${items.length - max} more` : "";
      return `${quoteIdent(role)} (${shown}${more})`;
    })
    .join("; ");
}

function warningsOf(spec: MigrationSpec, database: string, gaps: Shortfalls): string[] {
  const db = `database "${database}"`;
  const user = `"${spec.target.username}"`;
  const warnings: string[] = [];
  if (gaps.orphaned.size > 0) {
    warnings.push(
      `${db}: objects owned by roles missing on the target belong to the target user ${user}: ` +
        `${describe(gaps.orphaned)}. Create those roles (or set migrateRoles: true) to keep their owners`,
    );
  }
  if (gaps.unreachable.size > 0) {
    warnings.push(
      `${db}: the target user ${user} may not act for these roles (it must be a superuser or a ` +
        `member of them), so it kept their objects and left out their default privileges: ${describe(gaps.unreachable)}`,
    );
  }
  if (gaps.ungranted.size > 0) {
    warnings.push(
      `${db}: privileges granted to roles missing on the target were not restored: ` +
        `${describe(gaps.ungranted)}. Create those roles and grant them, or set migrateRoles: true`,
    );
  }
  warnings.push(...gaps.failures.slice(0, 20).map((f) => `${db}: ${f}`));
  if (gaps.failures.length > 20) {
    warnings.push(`${db}: ${gaps.failures.length - 20} more privilege statements failed`);
  }
  return warnings;
}

/**
 * Gives the restored objects their source owners and exactly the source's privileges (PUBLIC
 * included), for every role that exists on the target; returns warnings for what it could not.
 * Runs after the whole schema and data are in place, as pg_restore applies ACLs last: the copy,
 * index builds and matview refreshes run as the target user that created the objects.
 */
export async function restorePrivileges(
  spec: MigrationSpec,
  database: string,
  privileges: DatabasePrivileges,
): Promise<string[]> {
  return withClient(spec.target, database, async (client) => {
    const named = [...rolesNamed(privileges)];
    const { rows } = await client.query<{ rolname: string; act_for: boolean }>(
      `SELECT r.rolname, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
                         OR pg_has_role(current_user, r.oid, 'MEMBER') AS act_for
         FROM pg_roles r WHERE r.rolname = ANY($1)`,
      [named],
    );
    const { rows: me } = await client.query<{ user: string }>('SELECT current_user AS "user"');
    const session: TargetSession = {
      client,
      user: me[0].user,
      roles: new Set([me[0].user, ...rows.map((r) => r.rolname)]),
      actFor: new Set([me[0].user, ...rows.filter((r) => r.act_for).map((r) => r.rolname)]),
    };
    const gaps: Shortfalls = {
      orphaned: new Map(),
      unreachable: new Map(),
      ungranted: new Map(),
      failures: [],
    };
    const tableOwners = new Map<string, string>();
    for (const object of privileges.objects) {
      const owner = await restoreObject(session, gaps, object);
      if (object.grantKind === "TABLE") tableOwners.set(object.identity, owner);
    }
    for (const column of privileges.columns) {
      const owner = tableOwners.get(column.table) ?? session.user;
      await grantItems(session, gaps, {
        on: `TABLE ${column.table}`,
        label: `table ${column.table}`,
        owner: column.owner,
        actualOwner: owner,
        items: column.acl,
        column: column.column,
      });
    }
    for (const entry of privileges.defaults) await restoreDefault(session, gaps, entry);
    return warningsOf(spec, database, gaps);
  });
}
