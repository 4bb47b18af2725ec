// Names of the objects a migration creates on source and target, derived from its name so they
// can always be found and dropped again (no slot is ever left behind).
import { createHash } from "node:crypto";

export const MIGRATION_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,47}$/;

/** Why a migration name is unacceptable, or undefined when it is fine. */
export function migrationNameProblem(name: string): string | undefined {
  if (MIGRATION_NAME_PATTERN.test(name)) return undefined;
  if (name.length === 0) return "migration name must not be empty";
  if (name.length > 48) return `migration name "${name}" is longer than 48 characters`;
  return `migration name "${name}" may contain only lowercase letters, digits and hyphens, and must not start with a hyphen`;
}

function short(value: string): string {
  return createHash("sha256").update(value).digest("hex").slice(0, 8);
}

function stem(migrationName: string): string {
  return migrationName.replace(/-/g, "_").slice(0, 30);
}

/** Logical replication slot on the source for one database (≤ 63 chars, [a-z0-9_]). */
export function slotName(migrationName: string, database: string): string {
  return `pgmigrate_${stem(migrationName)}_${short(migrationName + "\0" + database)}`;
}

/** Publication on the source database for this migration. */
export function publicationName(migrationName: string): string {
  return `pgmigrate_${stem(migrationName)}_${short(migrationName)}`;
}

/** The control store's schema, in the control database (control/sql/*.sql create it). */
export const CONTROL_SCHEMA = "pgmigrate";

/** Schema the apply process keeps its bookkeeping in, inside each target database. */
export const TARGET_BOOKKEEPING_SCHEMA = "pgmigrate_apply";

/** Prefix shared by every slot/publication we create; lets tests and cleanup find ours. */
export const OBJECT_PREFIX = "pgmigrate_";
