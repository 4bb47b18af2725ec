// `--server`: the target server as a libpq URL (the path names the control database), and the
// target password found the libpq way: URL, PGMIGRATE_TARGET_PASSWORD, PGPASSWORD, ~/.pgpass.
import type { ServerUrl } from "../pg/url";
import { findPassword } from "../pg/passwords";

// Parsed once, in pg/url.ts (the worker's entry parses the same way); a bad URL is a
// MigrationError "PGM_INPUT", which the CLI reports with exit code 2.
export { parseServerUrl, targetEndpoint, type ServerUrl } from "../pg/url";

/** Where a password came from (for warnings; never the password itself). */
export type PasswordSource = "url" | "properties" | "environment" | "pgpass" | "none";

export interface ResolvedPassword {
  readonly password?: string;
  readonly source: PasswordSource;
  readonly warnings: readonly string[];
}

/**
 * The target password: the URL, then the properties file, then PGMIGRATE_TARGET_PASSWORD (the
 * tool's own, more specific than libpq's), then PGPASSWORD, then the password file.
 */
export function resolveTargetPassword(
  server: Pick<ServerUrl, "host" | "port" | "username" | "password" | "controlDatabase">,
  fromProperties: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): ResolvedPassword {
  if (server.password !== undefined)
    return { password: server.password, source: "url", warnings: [] };
  if (fromProperties !== undefined) {
    return { password: fromProperties, source: "properties", warnings: [] };
  }
  const key = {
    host: server.host,
    port: server.port,
    database: server.controlDatabase,
    username: server.username,
  };
  const found = findPassword("target", key, env);
  return {
    password: found.password,
    source: found.source,
    warnings: found.warning ? [found.warning] : [],
  };
}

/** `host:port` as users write it (IPv6 in brackets), for messages. */
export function serverLabel(server: { host: string; port: number }): string {
  return `${server.host.includes(":") ? `[${server.host}]` : server.host}:${server.port}`;
}
