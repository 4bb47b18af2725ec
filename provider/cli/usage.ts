// Exit codes and the one-line error report: 0 success, 1 migration failed, 2 bad usage or input.
// Expected errors never print a stack trace, and every message goes through redact().
import { MigrationError, SQLSTATE } from "../pg/errors";
import { redact } from "../pg/redact";
import type { MigrationState } from "../spec/types";

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** Bad usage or bad input: one line on stderr, exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** Error codes of the engine that mean the user asked for something impossible. */
const INPUT_CODES: readonly string[] = [
  "PGM_INPUT",
  "PGM_DUPLICATE_NAME",
  "PGM_INVALID_ACTION",
  "PGM_NOT_FOUND",
  // Wrong password, role not allowed, control database missing: fix the command line.
  SQLSTATE.invalidPassword,
  SQLSTATE.invalidAuthorization,
  SQLSTATE.invalidCatalogName,
];

/** Exit code for a migration that reached `state` (when the command waited for it). */
export function exitCodeForState(state: MigrationState): number {
  return state === "Failed" || state === "ValidationFailed" ? EXIT_FAILED : EXIT_OK;
}

/** Exit code and the single stderr line for anything a command threw. */
export function describeFailure(
  err: unknown,
  secrets: readonly (string | undefined)[],
): { exitCode: number; line: string; stack?: string } {
  const message = err instanceof Error ? err.message : String(err);
  if (/client password must be a (non-empty )?string/.test(message)) {
    // node-postgres' words for "no password given"; say where libpq habits look for one.
    return {
      exitCode: EXIT_USAGE,
      line:
        "pgmigrate: the target server asks for a password and none was found: put it in the " +
        "--server URL, PGMIGRATE_TARGET_PASSWORD, PGPASSWORD or the password file (~/.pgpass, PGPASSFILE)",
    };
  }
  const oneLine = redact(message, secrets)
    .replace(/\s*\n\s*/g, " ")
    .trim();
  if (err instanceof UsageError) return { exitCode: EXIT_USAGE, line: `pgmigrate: ${oneLine}` };
  if (err instanceof MigrationError) {
    const exitCode = INPUT_CODES.includes(err.code) ? EXIT_USAGE : EXIT_FAILED;
    const hint = err.pg.hint ? ` (hint: ${redact(err.pg.hint, secrets)})` : "";
    return { exitCode, line: `pgmigrate: ${oneLine}${hint}` };
  }
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string" && INPUT_CODES.includes(code)) {
    return { exitCode: EXIT_USAGE, line: `pgmigrate: ${oneLine}` };
  }
  if (typeof code === "string" && (/^E[A-Z]+$/.test(code) || /^[0-9A-Z]{5}$/.test(code))) {
    // Network errors (ECONNREFUSED, ENOTFOUND, ...) and server errors are expected outcomes.
    return { exitCode: EXIT_FAILED, line: `pgmigrate: ${oneLine}` };
  }
  const stack = err instanceof Error && err.stack ? redact(err.stack, secrets) : undefined;
  return { exitCode: EXIT_FAILED, line: `pgmigrate: ${oneLine}`, stack };
}
