// What every command shares: the control location from --server, the passwords to redact,
// and output helpers that keep stdout for results (`--json`) and stderr for everything else.
import type { ControlLocation } from "../api/index";
import { migrationNameProblem } from "../pg/names";
import {
  parseServerUrl,
  resolveTargetPassword,
  serverLabel,
  targetEndpoint,
  type ServerUrl,
} from "./server";
import { UsageError } from "./usage";

export interface CliContext {
  readonly server: ServerUrl;
  readonly at: ControlLocation;
  /** "host:port" of the target, for messages. */
  readonly label: string;
  /** Every password in play; grows as commands learn more (redact() gets all of them). */
  readonly secrets: string[];
  readonly env: NodeJS.ProcessEnv;
}

/** Parses --server and finds the target password (URL, environment, ~/.pgpass). */
export function openContext(
  serverText: string,
  env: NodeJS.ProcessEnv = process.env,
  secrets: string[] = [],
): CliContext {
  const server = parseServerUrl(serverText, env);
  const password = resolveTargetPassword(server, undefined, env);
  for (const warning of password.warnings) warn(warning);
  if (password.password) secrets.push(password.password);
  return {
    server,
    at: {
      target: targetEndpoint(server, password.password),
      controlDatabase: server.controlDatabase,
    },
    label: serverLabel(server),
    secrets,
    env,
  };
}

/** Rejects a bad migration name before anything connects. */
export function checkMigrationName(name: string): void {
  const problem = migrationNameProblem(name);
  if (problem) throw new UsageError(problem);
}

/** Writes to stdout and resolves once flushed (process.exit must not cut a pipe short). */
export function out(text: string): Promise<void> {
  return new Promise((resolve) => {
    process.stdout.write(text.endsWith("\n") ? text : text + "\n", () => resolve());
  });
}

/** `--json` output: exactly the object, nothing else on stdout. */
export function outJson(value: unknown): Promise<void> {
  return out(JSON.stringify(value, null, 2));
}

/** A warning line on stderr. */
export function warn(message: string): void {
  process.stderr.write(`pgmigrate: warning: ${message}\n`);
}

/** An informational line on stderr. */
export function note(message: string): void {
  process.stderr.write(`pgmigrate: ${message}\n`);
}

/** The "no such migration" error (exit 2). */
export function noSuchMigration(ctx: CliContext, name: string): UsageError {
  return new UsageError(`no migration named ${name} on ${ctx.label}`);
}
