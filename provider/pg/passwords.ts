// Where a password comes from, for either server, written once: given (URL, properties file,
// Pulumi secret; the caller's), then PGMIGRATE_SOURCE_PASSWORD / PGMIGRATE_TARGET_PASSWORD, then (target
// only, as libpq's own variable names the server a tool connects to) PGPASSWORD, then the
// password file (~/.pgpass or PGPASSFILE).
import { lookupPgpass, type PgpassKey } from "./pgpass";

export type ServerRole = "source" | "target";

/** Where a password was found (for messages; never the password itself). */
export type PasswordSource = "environment" | "pgpass" | "none";

export interface FoundPassword {
  readonly password?: string;
  readonly source: PasswordSource;
  /** A password file that was skipped (e.g. readable by others), said once to the user. */
  readonly warning?: string;
}

/** The environment variable of pgmigrate's own for `role`. */
export function passwordVariable(role: ServerRole): string {
  return role === "source" ? "PGMIGRATE_SOURCE_PASSWORD" : "PGMIGRATE_TARGET_PASSWORD";
}

/**
 * The password the environment gives `role`. PGMIGRATE_*_PASSWORD set but empty means "no
 * password" (trust or certificate authentication); an empty PGPASSWORD counts as unset, as in
 * libpq.
 */
export function passwordFromEnvironment(
  role: ServerRole,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  const own = env[passwordVariable(role)];
  if (own !== undefined) return own;
  return role === "target" && env.PGPASSWORD ? env.PGPASSWORD : undefined;
}

/**
 * The password for `role` connecting as `key` when none was given: the environment, then the
 * password file. (A given one — URL, properties file, Pulumi secret — always comes first.)
 */
export function findPassword(
  role: ServerRole,
  key: PgpassKey,
  env: NodeJS.ProcessEnv = process.env,
): FoundPassword {
  const fromEnv = passwordFromEnvironment(role, env);
  if (fromEnv !== undefined) return { password: fromEnv, source: "environment" };
  const found = lookupPgpass(key, env);
  return {
    password: found.password,
    source: found.password !== undefined ? "pgpass" : "none",
    warning: found.warning,
  };
}
