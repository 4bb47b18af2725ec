// Target triggers while changes are applied: a replicated change already carries what the
// source's triggers did, so no user trigger may fire again on the target. Before a stream starts,
// the triggers that would fire in the apply session are disabled, each one's original state
// recorded in the same target transaction; cutover, cancel and failure restore them exactly.
import type { Client } from "pg";
import { withClient } from "../pg/connect";
import { MigrationError, pgFields, SQLSTATE } from "../pg/errors";
import { qualify, quoteIdent } from "../pg/ident";
import { TARGET_BOOKKEEPING_SCHEMA } from "../pg/names";
import type { Endpoint, MigrationSpec } from "../spec/types";
import {
  listUserTriggers,
  replicaRoleAllowed,
  statesFiringDuringApply,
  type TriggerState,
  type UserTrigger,
} from "../validate";

// Lives with the apply bookkeeping: dropped with it at cutover and cancel, after the restore.
const SUSPENDED = `${quoteIdent(TARGET_BOOKKEEPING_SCHEMA)}.suspended_triggers`;

const INSTALL_SQL = `
  CREATE SCHEMA IF NOT EXISTS ${quoteIdent(TARGET_BOOKKEEPING_SCHEMA)};
  CREATE TABLE IF NOT EXISTS ${SUSPENDED} (
    schema_name text NOT NULL,
    table_name text NOT NULL,
    trigger_name text NOT NULL,
    enabled text NOT NULL CHECK (enabled IN ('O', 'A', 'R', 'D')),
    PRIMARY KEY (schema_name, table_name, trigger_name)
  )`;

const RECORD_SQL = `
  INSERT INTO ${SUSPENDED} (schema_name, table_name, trigger_name, enabled)
  VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`;

// Recorded triggers, and whether each still exists (nobody should drop one meanwhile).
const RECORDED_SQL = `
  SELECT s.schema_name AS schema, s.table_name AS table, s.trigger_name AS trigger,
         s.enabled, EXISTS (
           SELECT 1 FROM pg_trigger t
             JOIN pg_class c ON c.oid = t.tgrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = s.schema_name AND c.relname = s.table_name
              AND t.tgname = s.trigger_name) AS present
    FROM ${SUSPENDED} s ORDER BY 1, 2, 3`;

/** ALTER TABLE clause that puts a trigger back into each state. */
const RESTORE_CLAUSE: Record<TriggerState, string> = {
  O: "ENABLE TRIGGER",
  A: "ENABLE ALWAYS TRIGGER",
  R: "ENABLE REPLICA TRIGGER",
  D: "DISABLE TRIGGER",
};

export interface SuspendedTriggers {
  /** The target user may set session_replication_role (ordinary triggers stay quiet anyway). */
  readonly replicaRole: boolean;
  /** Triggers disabled by this call (those disabled by an earlier worker are not repeated). */
  readonly disabled: readonly UserTrigger[];
}

// ONLY: on a partitioned table ENABLE/DISABLE would recurse into the partitions, whose own
// triggers are handled (and restored) one by one.
function alterTrigger(
  t: { schema: string; table: string; trigger: string },
  clause: string,
): string {
  return `ALTER TABLE ONLY ${qualify(t.schema, t.table)} ${clause} ${quoteIdent(t.trigger)}`;
}

function notOwnedError(
  spec: MigrationSpec,
  database: string,
  replicaRole: boolean,
  notOwned: readonly UserTrigger[],
): MigrationError {
  const user = quoteIdent(spec.target.username);
  const tables = [...new Set(notOwned.map((t) => qualify(t.schema, t.table)))];
  const owners = [...new Set(notOwned.map((t) => quoteIdent(t.owner)))].sort();
  const shown =
    tables.slice(0, 10).join(", ") + (tables.length > 10 ? ` and ${tables.length - 10} more` : "");
  const has = tables.length === 1 ? "has" : "have";
  const why = replicaRole
    ? `${has} triggers marked ENABLE ALWAYS or ENABLE REPLICA, which fire while changes are applied`
    : `${has} triggers, and ${user} may not set session_replication_role to keep them from firing while changes are applied`;
  const fixes = [
    `make ${user} a member of the owning role(s) (${owners.map((o) => `GRANT ${o} TO ${user}`).join("; ")})`,
    ...(replicaRole
      ? []
      : [
          `GRANT SET ON PARAMETER session_replication_role TO ${user} (PostgreSQL 15+, as a superuser)`,
        ]),
    "or migrate as a superuser",
  ];
  return new MigrationError(
    "replicate",
    `database "${database}" on the target: ${shown} ${why}; the target user ${user} must disable them but does not own ` +
      `${tables.length === 1 ? "this table" : "these tables"}: ${fixes.join(", ")}`,
    { code: SQLSTATE.insufficientPrivilege },
  );
}

async function suspend(
  client: Client,
  spec: MigrationSpec,
  database: string,
): Promise<SuspendedTriggers> {
  const replicaRole = await replicaRoleAllowed(client);
  await client.query("BEGIN");
  try {
    await client.query(INSTALL_SQL);
    const firing = await listUserTriggers(client, statesFiringDuringApply(replicaRole));
    const notOwned = firing.filter((t) => !t.owned);
    if (notOwned.length > 0) throw notOwnedError(spec, database, replicaRole, notOwned);
    for (const t of firing) {
      await client.query(alterTrigger(t, "DISABLE TRIGGER"));
      await client.query(RECORD_SQL, [t.schema, t.table, t.trigger, t.enabled]);
    }
    await client.query("COMMIT");
    return { replicaRole, disabled: firing };
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  }
}

/**
 * Disables the user triggers of `database` on the target that would fire in the apply session,
 * remembering their states. Idempotent: a resumed worker finds them disabled already. Throws a
 * MigrationError naming the tables when the target user may not alter them.
 */
export async function suspendTargetTriggers(
  spec: MigrationSpec,
  database: string,
): Promise<SuspendedTriggers> {
  try {
    return await withClient(spec.target, database, (client) => suspend(client, spec, database), {
      applicationName: "pgmigrate_triggers",
    });
  } catch (err) {
    throw MigrationError.wrap(
      "replicate",
      err,
      `disabling triggers in database "${database}" on the target`,
    );
  }
}

async function restore(client: Client): Promise<number> {
  await client.query("BEGIN");
  try {
    const { rows: table } = await client.query<{ found: boolean }>(
      "SELECT to_regclass($1) IS NOT NULL AS found",
      [SUSPENDED],
    );
    if (!table[0].found) {
      await client.query("ROLLBACK");
      return 0;
    }
    const { rows } = await client.query<{
      schema: string;
      table: string;
      trigger: string;
      enabled: TriggerState;
      present: boolean;
    }>(RECORDED_SQL);
    for (const t of rows) {
      if (t.present) await client.query(alterTrigger(t, RESTORE_CLAUSE[t.enabled]));
    }
    await client.query(`DELETE FROM ${SUSPENDED}`);
    await client.query("COMMIT");
    return rows.length;
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  }
}

/**
 * Puts every trigger recorded by {@link suspendTargetTriggers} back into its original state and
 * forgets it; returns how many. A missing database or record table means nothing to restore.
 */
export async function restoreTargetTriggers(
  target: Endpoint,
  database: string,
  phase: "cutover" | "cancel" | "replicate" = "cutover",
): Promise<number> {
  try {
    return await withClient(target, database, restore, { applicationName: "pgmigrate_triggers" });
  } catch (err) {
    if (pgFields(err).code === SQLSTATE.invalidCatalogName) return 0;
    throw MigrationError.wrap(
      phase,
      err,
      `restoring triggers in database "${database}" on the target`,
    );
  }
}
