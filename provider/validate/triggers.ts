// Triggers versus the apply session: which user triggers would fire while replicated changes are
// applied on the target, and the TargetTriggers check that tells the user what happens to them.
import type { Client } from "pg";
import { notExtensionMemberSql, userSchemaSql } from "../pg/catalog";
import { pgFields, SQLSTATE } from "../pg/errors";
import type { CheckResult, MigrationSpec } from "../spec/types";
import { CHECK, displayName, listSome, succeeded, warning } from "./checks";

/** pg_trigger.tgenabled: fires in origin sessions, Always, only in Replica sessions, Disabled. */
export type TriggerState = "O" | "A" | "R" | "D";

export interface UserTrigger {
  readonly schema: string;
  readonly table: string;
  readonly trigger: string;
  readonly enabled: TriggerState;
  readonly owner: string;
  /** The current user may ALTER the table (owner, member of the owner, or superuser). */
  readonly owned: boolean;
}

// Triggers a user wrote, on the migration's tables and partitioned tables (pg/catalog.ts).
// Partition clones of a user trigger count (internal before PostgreSQL 15, found through their
// dependency on the parent trigger); the triggers behind foreign keys and deferrable unique or
// exclusion constraints do not. Extension members are not replicated into.
const USER_TRIGGERS_SQL = `
SELECT n.nspname AS schema, c.relname AS table, t.tgname AS trigger, t.tgenabled::text AS enabled,
       pg_get_userbyid(c.relowner) AS owner, pg_has_role(current_user, c.relowner, 'USAGE') AS owned
  FROM pg_trigger t
  JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p')
   AND ${userSchemaSql()} AND ${notExtensionMemberSql()}
   AND (NOT t.tgisinternal
        OR EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_trigger'::regclass AND d.objid = t.oid
                      AND d.refclassid = 'pg_trigger'::regclass))
   AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.oid = t.tgconstraint AND k.contype <> 't')
   AND t.tgenabled::text = ANY($1::text[])
 ORDER BY 1, 2, 3`;

/**
 * The trigger states that fire in the apply session: with session_replication_role = replica,
 * ENABLE ALWAYS and ENABLE REPLICA triggers; without it (origin), ordinary and ALWAYS ones. Their
 * effects on the source are replicated already, so none of them may fire on the target.
 */
export function statesFiringDuringApply(replicaRole: boolean): TriggerState[] {
  return replicaRole ? ["A", "R"] : ["O", "A"];
}

/** User triggers in the connected database whose state is one of `states`. */
export async function listUserTriggers(
  client: Client,
  states: readonly TriggerState[],
): Promise<UserTrigger[]> {
  const { rows } = await client.query<UserTrigger>(USER_TRIGGERS_SQL, [states]);
  return rows;
}

/** Whether the connected user may SET session_replication_role (superuser, or granted on PG15+). */
export async function replicaRoleAllowed(client: Client): Promise<boolean> {
  await client.query("BEGIN");
  try {
    await client.query("SET LOCAL session_replication_role = replica");
    return true;
  } catch (err) {
    if (pgFields(err).code === SQLSTATE.insufficientPrivilege) return false;
    throw err;
  } finally {
    await client.query("ROLLBACK").catch(() => undefined);
  }
}

function describe(triggers: readonly UserTrigger[]): string {
  return listSome(triggers.map((t) => `${t.trigger} on ${displayName(t.schema, t.table)}`));
}

/**
 * Online only, on the source database: what happens to its triggers while changes are applied,
 * given whether the target user may set session_replication_role (`replicaRole`).
 */
export async function targetTriggersCheck(
  client: Client,
  spec: MigrationSpec,
  replicaRole: boolean,
): Promise<CheckResult> {
  const firing = await listUserTriggers(client, statesFiringDuringApply(replicaRole));
  const user = spec.target.username;
  if (firing.length === 0) {
    return succeeded(
      CHECK.targetTriggers,
      replicaRole
        ? "triggers do not fire on the target while changes are applied (session_replication_role = replica)"
        : "no trigger would fire on the target while changes are applied",
    );
  }
  if (replicaRole) {
    return succeeded(
      CHECK.targetTriggers,
      `${firing.length} trigger(s) marked ENABLE ALWAYS or ENABLE REPLICA would fire even under session_replication_role = replica: ` +
        `${describe(firing)}; they will be disabled on the target while changes are applied and restored as they were at cutover`,
    );
  }
  const owners = migrateRolesNote(spec, firing);
  return warning(
    CHECK.targetTriggers,
    `the target user "${user}" may not set session_replication_role, so ${firing.length} trigger(s) would fire on the target ` +
      `while replicated changes are applied and duplicate what the source already did: ${describe(firing)}. ` +
      `They will be disabled on the target (ALTER TABLE ... DISABLE TRIGGER) while changes are applied and restored as they were ` +
      `at cutover or cancel; ${owners}. To leave them alone, grant "${user}" SET ON PARAMETER session_replication_role ` +
      `(PostgreSQL 15+, as a superuser) or migrate as a superuser`,
  );
}

function migrateRolesNote(spec: MigrationSpec, firing: readonly UserTrigger[]): string {
  const user = spec.target.username;
  const owners = [...new Set(firing.map((t) => t.owner))].sort();
  // The clone gives a table to its source owner only when the target user may act for that role
  // (superuser or member), so the target user can always alter the tables it restored.
  return (
    `the tables keep their owners (${listSome(owners)}) only where "${user}" is a member of them, ` +
    `and "${user}" owns the others, which allows this`
  );
}
