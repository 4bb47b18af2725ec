// Bringing a dead worker back from `show`, `update` and `watch`, as the migration's stored
// runtime says: a local worker is restarted (with its log directory), an external one is only
// reported. The control store keeps no passwords, so the source's must come from
// PGMIGRATE_SOURCE_PASSWORD or the password file.
import {
  ensureWorker,
  getStoredSpec,
  type ControlLocation,
  type RuntimeOptions,
} from "../api/index";
import type { Endpoint, MigrationSpec } from "../spec/types";
import { findPassword } from "../pg/passwords";
import { withPasswords } from "../pg/redact";

/** What the CLI could do about the worker. */
export interface RespawnResult {
  /** The spec with passwords, when the worker can be (re)started from here. */
  readonly spec?: MigrationSpec;
  /** The migration's stored runtime. */
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
  const key = {
    host: source.host,
    port: source.port,
    database: databases[0] ?? "postgres",
    username: source.username,
  };
  return findPassword("source", key, env);
}

/**
 * Loads the stored spec and runtime, adds the passwords, and asks the engine to start a worker
 * if the migration is active, local, and its worker is gone. Without a source password it only
 * warns; for an external runtime it never starts one and warns when no worker heartbeats.
 */
export async function reviveWorker(
  at: ControlLocation,
  name: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<RespawnResult> {
  const stored = await getStoredSpec(at, name);
  if (!stored || stored.ended)
    return { runtime: stored?.runtime ?? LOCAL, started: false, secrets: [] };
  const { runtime, worker } = stored;
  if (runtime.kind !== "local") {
    return { runtime, started: false, warning: worker.warning, secrets: [] };
  }
  const found = sourcePassword(stored.spec.source, stored.spec.databases, env);
  if (found.password === undefined) {
    const warning =
      worker.status === "dead"
        ? `the worker of migration ${name} is not running and cannot be restarted from here: ` +
          "set PGMIGRATE_SOURCE_PASSWORD (pgmigrate stores no passwords on the target)"
        : found.warning;
    return { runtime, started: false, warning, secrets: [] };
  }
  const spec = withPasswords(stored.spec, {
    source: found.password,
    target: at.target.password,
  });
  // No runtime argument: the stored one (kind and log directory) decides.
  const started = await ensureWorker(spec);
  return { spec, runtime, started, warning: found.warning, secrets: [found.password] };
}
