// Bringing a dead worker back from `show`, `update` and `watch`. The control store keeps no
// passwords, so the source's must come from PGMIGRATE_SOURCE_PASSWORD or the password file.
import { ensureWorker, type ControlLocation, type RuntimeOptions } from "../engine";
import { withControl } from "../control/db";
import { getMigrationRow } from "../control/migrations";
import { workerStatus } from "../runtime/spawn";
import type { Endpoint, MigrationSpec } from "../types";
import { lookupPgpass } from "./pgpass";

/** What the CLI could do about the worker. */
export interface RespawnResult {
  /** The spec with passwords, when the worker can be (re)started from here. */
  readonly spec?: MigrationSpec;
  readonly runtime: RuntimeOptions;
  readonly started: boolean;
  readonly warning?: string;
  /** Passwords now in play (for redact). */
  readonly secrets: readonly string[];
}

const LOCAL: RuntimeOptions = { kind: "local" };

/** The source password as libpq habits allow: the environment, then the password file. */
export function sourcePassword(
  source: Omit<Endpoint, "password">,
  databases: readonly string[],
  env: NodeJS.ProcessEnv,
): { password?: string; warning?: string } {
  // Defined but empty means "no password needed" (trust or certificate authentication).
  if (env.PGMIGRATE_SOURCE_PASSWORD !== undefined)
    return { password: env.PGMIGRATE_SOURCE_PASSWORD };
  const found = lookupPgpass(
    {
      host: source.host,
      port: source.port,
      database: databases[0] ?? "postgres",
      username: source.username,
    },
    env,
  );
  return { password: found.password, warning: found.warning };
}

/**
 * Loads the stored spec, adds the passwords, and asks the engine to start a worker if the
 * migration is active and its worker is gone. Without a source password it only warns.
 */
export async function reviveWorker(
  at: ControlLocation,
  name: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<RespawnResult> {
  const row = await withControl(at, (db) => getMigrationRow(db, name));
  if (!row || row.endedOn) return { runtime: LOCAL, started: false, secrets: [] };
  const stored = row.spec as unknown as Omit<MigrationSpec, "source" | "target"> & {
    source: Omit<Endpoint, "password">;
    target: Omit<Endpoint, "password">;
  };
  const found = sourcePassword(stored.source, stored.databases, env);
  if (found.password === undefined) {
    const warning =
      workerStatus(row) === "dead"
        ? `the worker of migration ${name} is not running and cannot be restarted from here: ` +
          "set PGMIGRATE_SOURCE_PASSWORD (the control store keeps no passwords)"
        : found.warning;
    return { runtime: LOCAL, started: false, warning, secrets: [] };
  }
  const spec: MigrationSpec = {
    ...stored,
    source: { ...stored.source, password: found.password },
    target: { ...stored.target, password: at.target.password },
  };
  const started = await ensureWorker(spec, LOCAL);
  return {
    spec,
    runtime: LOCAL,
    started,
    warning: found.warning,
    secrets: [found.password],
  };
}
