#!/usr/bin/env node
// The worker's one entry point: the spawner starts `main.js runtime --server URL
// [--migration-name N]`, and `pgmigrate runtime` runs the same runRuntime through api/.
import { MigrationError } from "../pg/errors";
import { parseCopyUnits } from "../spec/inputs";
import { migrationNameProblem } from "../pg/names";
import { passwordFromEnvironment } from "../pg/passwords";
import { parseServerUrl, targetEndpoint } from "../pg/url";
import type { Endpoint } from "../spec/types";
import { recordWorkerCrash } from "./crash";
import { errorText, logLine } from "./journal";
import { runWorker } from "./worker";

/** What a worker process serves, with the passwords it was given (never from argv). */
export interface RuntimeProcessOptions {
  /** The target server (with password): the control store lives there. */
  readonly target: Endpoint;
  readonly controlDatabase: string;
  /** Serve only this migration; otherwise every claimable active one. */
  readonly migrationName?: string;
  readonly sourcePassword?: string;
  /** Touched at every heartbeat (a container's liveness probe reads its age). */
  readonly heartbeatFile?: string;
  /** Copy units this runtime runs at once (0: it only coordinates); default per migration. */
  readonly copyUnits?: number;
}

/** Exit code of a second SIGTERM/SIGINT: the operator does not want to wait for the clean stop. */
const EXIT_INTERRUPTED = 130;
const EXIT_USAGE = 2;
/** Exit code of a worker that crashed (an error nothing handled), after recording the crash. */
const EXIT_CRASHED = 70;

/**
 * Runs the worker in this process until it is done or stopped. The first SIGTERM/SIGINT stops it
 * cleanly (state and slots stay for a successor), a second exits at once with 130. Failures are
 * logged redacted. Returns the exit code: 0 done or stopped, 1 failed.
 */
export async function runRuntime(options: RuntimeProcessOptions): Promise<number> {
  const secrets = [options.target.password, options.sourcePassword];
  const stop = new AbortController();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) process.exit(EXIT_INTERRUPTED);
    logLine(secrets, "info", `${signal} received: stopping`);
    stop.abort(new Error(`worker received ${signal}`));
  };
  // An error nothing handled (in an event handler, say) ends the process, as Node would, but
  // only once the crash is recorded: repeated crashes at one position fail the migration.
  const onCrash = (err: unknown): void => {
    const text = errorText(err, secrets);
    logLine(secrets, "error", `worker crashed: ${text}`);
    const at = { target: options.target, controlDatabase: options.controlDatabase };
    void recordWorkerCrash(at, text).finally(() => process.exit(EXIT_CRASHED));
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  process.once("uncaughtException", onCrash);
  try {
    await runWorker({ ...options, signal: stop.signal });
    return 0;
  } catch (err) {
    logLine(secrets, "error", `worker failed: ${errorText(err, secrets)}`);
    return 1;
  } finally {
    process.removeListener("SIGTERM", onSignal);
    process.removeListener("SIGINT", onSignal);
    process.removeListener("uncaughtException", onCrash);
  }
}

function option(args: readonly string[], name: string): string | undefined {
  const inline = args.find((arg) => arg.startsWith(`${name}=`));
  if (inline !== undefined) return inline.slice(name.length + 1);
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** `[runtime] --server URL [--migration-name N]`; passwords from the environment. */
export async function main(
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const secrets = [env.PGMIGRATE_TARGET_PASSWORD, env.PGPASSWORD, env.PGMIGRATE_SOURCE_PASSWORD];
  const text = option(args, "--server");
  const migrationName = option(args, "--migration-name");
  const heartbeatFile = option(args, "--heartbeat-file");
  const copyUnitsText = option(args, "--copy-units");
  try {
    if (!text) {
      throw new MigrationError(
        "input",
        "usage: main.js runtime --server URL [--migration-name N] [--heartbeat-file PATH] [--copy-units N]",
        {
          code: "PGM_INPUT",
        },
      );
    }
    const problem = migrationName === undefined ? undefined : migrationNameProblem(migrationName);
    if (problem) throw new MigrationError("input", problem, { code: "PGM_INPUT" });
    const copyUnits = parseCopyUnits(copyUnitsText);
    const server = parseServerUrl(text, env);
    const password = server.password ?? passwordFromEnvironment("target", env);
    return await runRuntime({
      target: targetEndpoint(server, password || undefined),
      controlDatabase: server.controlDatabase,
      migrationName,
      heartbeatFile,
      copyUnits,
      // Undefined when not set: the worker then connects without a password (trust, certificates).
      sourcePassword: passwordFromEnvironment("source", env),
    });
  } catch (err) {
    // Only bad arguments get here: runRuntime reports everything else itself.
    logLine(secrets, "error", errorText(err, secrets));
    return EXIT_USAGE;
  }
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => process.exit(code));
}
