// `--server`: the target server as a libpq URL (the path names the control database), and the
// target password found the libpq way: URL, PGMIGRATE_TARGET_PASSWORD, PGPASSWORD, ~/.pgpass.
import os from "node:os";
import { SSL_MODES } from "../spec/inputs";
import type { Endpoint, SslMode } from "../spec/types";
import { lookupPgpass } from "./pgpass";
import { UsageError } from "./usage";

/** The parsed `--server` URL. `password` is only set when the URL itself carried one. */
export interface ServerUrl {
  readonly host: string;
  readonly port: number;
  readonly username: string;
  readonly password?: string;
  readonly sslMode: SslMode;
  readonly sslRootCert?: string;
  /** Whether sslmode was given (URL or PGSSLMODE) rather than defaulted to prefer. */
  readonly sslModeGiven: boolean;
  /** The URL's database: where the `pgmigrate` control schema lives. */
  readonly controlDatabase: string;
  /** Whether the URL named a database (else the control database defaulted to `postgres`). */
  readonly databaseGiven: boolean;
  /** Whether the URL named a user (else PGUSER or the OS user, as libpq does). */
  readonly usernameGiven: boolean;
}

const EXAMPLE = "postgresql://user@host:5432/postgres?sslmode=require";

// Query parameters that mean something here; any other is rejected as libpq would.
const IGNORED_PARAMS = new Set([
  "application_name",
  "connect_timeout",
  "fallback_application_name",
]);

function decode(part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new UsageError(`--server: the ${what} is not valid percent-encoding`);
  }
}

/** Parses a libpq connection URL; every problem is a UsageError (exit 2) without the password. */
export function parseServerUrl(text: string, env: NodeJS.ProcessEnv = process.env): ServerUrl {
  if (!/^postgres(ql)?:\/\//i.test(text)) {
    throw new UsageError(`--server must be a libpq URL like ${EXAMPLE}`);
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--server is not a valid URL; write it like ${EXAMPLE}`);
  }
  const params = new Map<string, string>();
  for (const [key, value] of url.searchParams) {
    if (!["sslmode", "sslrootcert", "user", "password", "host", "port", "dbname"].includes(key)) {
      if (IGNORED_PARAMS.has(key)) continue;
      throw new UsageError(`--server: unsupported URL parameter "${key}"`);
    }
    params.set(key, value);
  }
  let host = params.get("host") ?? decode(url.hostname, "host");
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  if (host.includes(",")) {
    throw new UsageError("--server: give exactly one host (multi-host URLs are not supported)");
  }
  if (host.startsWith("/")) {
    throw new UsageError("--server: Unix-domain sockets are not supported; give a TCP host");
  }
  if (host.length === 0)
    host = env.PGHOST && !env.PGHOST.startsWith("/") ? env.PGHOST : "localhost";

  const portText = params.get("port") ?? (url.port || env.PGPORT || "5432");
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`--server: port "${portText}" must be a number between 1 and 65535`);
  }

  const urlUser = params.get("user") ?? decode(url.username, "user name");
  const username = urlUser || env.PGUSER || os.userInfo().username;
  const urlPassword = params.get("password") ?? decode(url.password, "password");

  const path = url.pathname.replace(/^\//, "");
  if (path.includes("/")) throw new UsageError("--server: the URL path must be one database name");
  const database = params.get("dbname") ?? decode(path, "database name");

  const sslGiven = params.get("sslmode") ?? env.PGSSLMODE;
  const sslText = (sslGiven || "prefer").toLowerCase();
  if (!(SSL_MODES as readonly string[]).includes(sslText)) {
    throw new UsageError(
      `--server: sslmode "${sslText}" must be one of ${SSL_MODES.join(", ")} (allow is not supported)`,
    );
  }
  const sslRootCert = params.get("sslrootcert") ?? env.PGSSLROOTCERT;
  return {
    host,
    port,
    username,
    password: urlPassword.length > 0 ? urlPassword : undefined,
    sslMode: sslText as SslMode,
    sslRootCert: sslRootCert || undefined,
    sslModeGiven: Boolean(sslGiven),
    controlDatabase: database || "postgres",
    databaseGiven: database.length > 0,
    usernameGiven: urlUser.length > 0,
  };
}

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
  const fromEnv = env.PGMIGRATE_TARGET_PASSWORD || env.PGPASSWORD;
  if (fromEnv) return { password: fromEnv, source: "environment", warnings: [] };
  const found = lookupPgpass(
    {
      host: server.host,
      port: server.port,
      database: server.controlDatabase,
      username: server.username,
    },
    env,
  );
  return {
    password: found.password,
    source: found.password !== undefined ? "pgpass" : "none",
    warnings: found.warning ? [found.warning] : [],
  };
}

/** The target endpoint of a parsed URL with a resolved password. */
export function targetEndpoint(server: ServerUrl, password: string | undefined): Endpoint {
  return {
    host: server.host,
    port: server.port,
    username: server.username,
    password,
    sslMode: server.sslMode,
    sslRootCert: server.sslRootCert,
  };
}

/** `host:port` as users write it (IPv6 in brackets), for messages. */
export function serverLabel(server: { host: string; port: number }): string {
  return `${server.host.includes(":") ? `[${server.host}]` : server.host}:${server.port}`;
}
