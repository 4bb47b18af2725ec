// `pgmigrate runtime`: the worker process. The local spawner starts it with the passwords in
// PGMIGRATE_SOURCE_PASSWORD / PGMIGRATE_TARGET_PASSWORD; SIGTERM or SIGINT stop it cleanly.
import { checkMigrationName, type CliContext } from "./context";
import { EXIT_OK } from "./usage";

export async function runtimeCommand(
  ctx: CliContext,
  opts: { migrationName?: string },
): Promise<number> {
  if (opts.migrationName !== undefined) checkMigrationName(opts.migrationName);
  // Loaded here, not at the top: the other commands need none of the worker's machinery.
  const { runWorker } = await import("../runtime/worker");
  const controller = new AbortController();
  let signals = 0;
  const stop = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals === 1) {
      process.stderr.write(`pgmigrate runtime: ${signal} received, stopping\n`);
      controller.abort();
    } else {
      // A second signal means the operator does not want to wait for the clean stop.
      process.exit(130);
    }
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  try {
    await runWorker({
      target: ctx.at.target,
      controlDatabase: ctx.at.controlDatabase,
      migrationName: opts.migrationName,
      // Undefined when not set: the worker then connects without a password (trust, certificates).
      sourcePassword: ctx.env.PGMIGRATE_SOURCE_PASSWORD,
      signal: controller.signal,
    });
    return EXIT_OK;
  } finally {
    process.removeListener("SIGTERM", stop);
    process.removeListener("SIGINT", stop);
  }
}
