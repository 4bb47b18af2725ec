// Exit codes and the one-line error report: 0 success, 1 migration or validation failed, 2 bad
// usage or input, 3 a server cannot be reached. Expected errors never print a stack trace, and
// every message goes through redact().
import { MigrationError, SQLSTATE } from "../pg/errors";
import { redact } from "../pg/redact";
import type { MigrationState } from "../spec/types";

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_UNREACHABLE = 3;

/** The rule, as `--help` prints it. */
export const EXIT_CODES_HELP = [
  "  0  success (with --wait: the migration succeeded or waits for the cutover)",
  "  1  the migration or its validation failed",
  "  2  bad usage or input: flags, properties file, names, credentials",
  "  3  a server cannot be reached (connection refused, unknown host, timeout)",
].join("\n");

/** Network failures of a connection, in plain words. */
const UNREACHABLE: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused (is PostgreSQL running there, on that port?)",
  ENOTFOUND: "no such host",
  EAI_AGAIN: "the host name could not be resolved (DNS)",
  ETIMEDOUT: "no answer (timed out)",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ECONNRESET: "the connection was closed by the other end",
};

/** "cannot reach HOST:PORT: why" when `err` (or a cause of it) is a network failure. */
function unreachable(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && typeof e === "object" && depth < 5; depth++) {
    const { code, address, hostname, port, message, cause } = e as {
      code?: unknown;
      address?: unknown;
      hostname?: unknown;
      port?: unknown;
      message?: unknown;
      cause?: unknown;
    };
    const host = typeof address === "string" ? address : hostname;
    const where =
      typeof host === "string" ? ` ${host}${typeof port === "number" ? `:${port}` : ""}` : "";
    if (typeof code === "string" && UNREACHABLE[code]) {
      return `cannot reach the server${where}: ${UNREACHABLE[code]}`;
    }
    if (typeof message === "string" && /connection timeout|timeout expired/i.test(message)) {
      return `cannot reach the server${where}: no answer (timed out)`;
    }
    e = cause;
  }
  return undefined;
}
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
  const network = unreachable(err);
  if (network)
    return { exitCode: EXIT_UNREACHABLE, line: `pgmigrate: ${redact(network, secrets)}` };
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
    // Other network and server errors are expected outcomes.
    return { exitCode: EXIT_FAILED, line: `pgmigrate: ${oneLine}` };
  }
  const stack = err instanceof Error && err.stack ? redact(err.stack, secrets) : undefined;
  return { exitCode: EXIT_FAILED, line: `pgmigrate: ${oneLine}`, stack };
}
