// `pgmigrate runtime`: the worker process, run through api/ by the same code as the spawned
// worker (runtime/main.ts): passwords from PGMIGRATE_SOURCE_PASSWORD / the target's lookup,
// SIGTERM or SIGINT stop it cleanly, a second one exits 130.
import { runRuntime } from "../api/index";
import { parseCopyUnits } from "../spec/inputs";
import { checkMigrationName, type CliContext } from "./context";

export async function runtimeCommand(
  ctx: CliContext,
  opts: { migrationName?: string; heartbeatFile?: string; copyUnits?: string },
): Promise<number> {
  if (opts.migrationName !== undefined) checkMigrationName(opts.migrationName);
  return runRuntime({
    target: ctx.at.target,
    controlDatabase: ctx.at.controlDatabase,
    migrationName: opts.migrationName,
    heartbeatFile: opts.heartbeatFile,
    copyUnits: parseCopyUnits(opts.copyUnits),
    // Undefined when not set: the worker then connects without a password (trust, certificates).
    sourcePassword: ctx.env.PGMIGRATE_SOURCE_PASSWORD,
  });
}
