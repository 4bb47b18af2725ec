#!/usr/bin/env node
// Minimal worker entry point (`node main.js runtime --server URL [--migration-name N]`), used by
// the spawner when the pgmigrate CLI is not built; the CLI's `runtime` command does the same.
import { SSL_MODES } from "../spec/inputs";
import type { Endpoint, SslMode } from "../spec/types";
import { errorText, logLine } from "./journal";
import { runWorker } from "./worker";

/** Target endpoint and control database from a libpq URL (password from the environment). */
export function parseControlUrl(
  text: string,
  password: string | undefined,
): { target: Endpoint; controlDatabase: string } {
  const url = new URL(text);
  const sslMode = (url.searchParams.get("sslmode") ?? "prefer") as SslMode;
  if (!SSL_MODES.includes(sslMode)) throw new Error(`unsupported sslmode "${sslMode}"`);
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const target: Endpoint = {
    host,
    port: Number(url.port || 5432),
    username: decodeURIComponent(url.username),
    password: url.password ? decodeURIComponent(url.password) : password,
    sslMode,
    sslRootCert: url.searchParams.get("sslrootcert") ?? undefined,
  };
  const controlDatabase = decodeURIComponent(url.pathname.replace(/^\//, "")) || "postgres";
  return { target, controlDatabase };
}

function option(args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

async function main(args: readonly string[]): Promise<number> {
  const server = option(args, "--server");
  if (!server) {
    process.stderr.write("usage: main.js runtime --server URL [--migration-name N]\n");
    return 2;
  }
  const env = process.env;
  const { target, controlDatabase } = parseControlUrl(
    server,
    env.PGMIGRATE_TARGET_PASSWORD ?? env.PGPASSWORD,
  );
  const secrets = [target.password, env.PGMIGRATE_SOURCE_PASSWORD];
  const stop = new AbortController();
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.once(signal, () => {
      logLine(secrets, "info", `${signal} received: stopping`);
      stop.abort(new Error(`worker received ${signal}`));
    });
  }
  try {
    await runWorker({
      target,
      controlDatabase,
      migrationName: option(args, "--migration-name"),
      sourcePassword: env.PGMIGRATE_SOURCE_PASSWORD,
      signal: stop.signal,
    });
    return 0;
  } catch (err) {
    logLine(secrets, "error", errorText(err, secrets));
    return 1;
  }
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => process.exit(code));
}
