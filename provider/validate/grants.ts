// Privileges check: roles that own or are granted objects in a source database but are missing on
// the target (their grants cannot be restored), owners the target user may not give objects to,
// and policies naming missing roles (which would stop the schema restore).
import { userSchemaSql } from "../pg/catalog";
import type { Client } from "pg";
import { readDatabasePrivileges, type AclItem, type DatabasePrivileges } from "../pg/privileges";
import type { CheckResult, MigrationSpec } from "../spec/types";
import { CHECK, failed, listSome, succeeded, warning } from "./checks";
import type { TargetCatalog } from "./target";

/** Per role: objects it owns and privileges it holds ("SELECT on table public.t"). */
interface RoleUse {
  readonly owns: string[];
  readonly granted: string[];
}

function usesByRole(privileges: DatabasePrivileges): Map<string, RoleUse> {
  const uses = new Map<string, RoleUse>();
  const use = (role: string): RoleUse => {
    let entry = uses.get(role);
    if (!entry) uses.set(role, (entry = { owns: [], granted: [] }));
    return entry;
  };
  const grants = (acl: readonly AclItem[] | null, on: string, owner: string, column = ""): void => {
    for (const item of acl ?? []) {
      // The owner's own items come with ownership; PUBLIC always exists.
      if (item.grantee === null || item.grantee === owner) continue;
      use(item.grantee).granted.push(`${item.privilege}${column} on ${on}`);
    }
  };
  for (const object of privileges.objects) {
    if (!object.extensionMember && object.alterKind !== null)
      use(object.owner).owns.push(object.label);
    grants(object.acl, object.label, object.owner);
  }
  for (const c of privileges.columns) {
    grants(c.acl, `table ${c.table}`, c.owner, ` (${c.column})`);
  }
  for (const d of privileges.defaults) {
    const where = d.schema === null ? "" : ` in schema ${d.schema}`;
    use(d.role).owns.push(`default privileges on ${d.objects.toLowerCase()}${where}`);
    grants(d.acl, `future ${d.objects.toLowerCase()} of ${d.role}${where}`, d.role);
  }
  return uses;
}

function describeUse(role: string, use: RoleUse): string {
  const parts = [
    use.owns.length > 0 ? `owns ${listSome(use.owns, 5)}` : "",
    use.granted.length > 0 ? `is granted ${listSome(use.granted, 5)}` : "",
  ].filter((p) => p !== "");
  return `"${role}" (${parts.join("; ")})`;
}

/** Row-level security policies and the roles they name (pg_restore recreates them verbatim). */
const POLICY_ROLES_SQL = `
SELECT format('policy %I on table %I.%I', p.polname, n.nspname, c.relname) AS policy, r.rolname AS role
  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  CROSS JOIN LATERAL unnest(p.polroles) AS pr(oid) JOIN pg_roles r ON r.oid = pr.oid
 WHERE ${userSchemaSql()}
 ORDER BY 1, 2`;

/**
 * Warning when the target lacks roles the database's objects name (owners fall back to the target
 * user, grants to them are not restored; PUBLIC and existing roles are always restored), or when
 * the target user may not give objects to an existing owner. With migrateRoles the missing roles
 * are created, so they are only listed. Failed when a policy names a missing role.
 */
export async function privilegesCheck(
  client: Client,
  spec: MigrationSpec,
  catalog: TargetCatalog,
): Promise<CheckResult> {
  const uses = usesByRole(await readDatabasePrivileges(client));
  const { rows: policies } = await client.query<{ policy: string; role: string }>(POLICY_ROLES_SQL);
  const brokenPolicies = spec.migrateRoles
    ? []
    : policies.filter((p) => !catalog.roles.has(p.role));
  const missing = [...uses.entries()].filter(([role]) => !catalog.roles.has(role));
  const unreachable = [...uses.entries()].filter(
    ([role, use]) =>
      catalog.roles.has(role) && !catalog.ownerRoles.has(role) && use.owns.length > 0,
  );
  const user = `"${spec.target.username}"`;
  const messages: string[] = [];
  if (missing.length > 0 && !spec.migrateRoles) {
    messages.push(
      `roles missing on the target: ${missing.map(([role, use]) => describeUse(role, use)).join(", ")}. ` +
        `Their objects will belong to the target user ${user} and their grants will not be restored ` +
        `(grants to PUBLIC and to existing roles are): create these roles on the target first, or set migrateRoles: true`,
    );
  }
  if (unreachable.length > 0) {
    messages.push(
      `the target user ${user} may not give objects to ${unreachable.map(([role, use]) => `"${role}" (${listSome(use.owns, 5)})`).join(", ")} ` +
        `(it must be a superuser or a member of those roles): it will keep them`,
    );
  }
  if (brokenPolicies.length > 0) {
    // A policy names its roles in its own DDL: the schema restore would stop there.
    return failed(
      CHECK.privileges,
      `row-level security policies name roles missing on the target, so the schema restore would fail: ` +
        `${listSome(brokenPolicies.map((p) => `${p.policy} (role "${p.role}")`))}. Create these roles on the target first, or set migrateRoles: true`,
      ...messages,
    );
  }
  if (messages.length > 0) return warning(CHECK.privileges, ...messages);
  if (missing.length > 0) {
    return succeeded(
      CHECK.privileges,
      `roles missing on the target will be created (migrateRoles) and keep their objects and grants: ${listSome(missing.map(([role]) => `"${role}"`))}`,
    );
  }
  return succeeded(
    CHECK.privileges,
    `the ${uses.size} role(s) that own or are granted objects exist on the target; owners and privileges will be kept`,
  );
}
