// The target server as a libpq URL (`--server` of the CLI and of the worker): host, port, user,
// sslmode, and the path naming the control database. Pure: the environment is passed in.
import os from "node:os";
import { SSL_MODES } from "../spec/inputs";
import type { Endpoint, SslMode } from "../spec/types";
import { MigrationError } from "./errors";

function inputError(message: string): MigrationError {
  return new MigrationError("input", message, { code: "PGM_INPUT" });
}

/** The parsed `--server` URL. `password` is only set when the URL itself carried one. */
export interface ServerUrl extends Pick<
  Endpoint,
  "host" | "port" | "username" | "password" | "sslMode" | "sslRootCert"
> {
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
    throw inputError(`--server: the ${what} is not valid percent-encoding`);
  }
}

/** Parses a libpq connection URL; every problem is a MigrationError "PGM_INPUT" without the password. */
export function parseServerUrl(text: string, env: NodeJS.ProcessEnv = process.env): ServerUrl {
  if (!/^postgres(ql)?:\/\//i.test(text)) {
    throw inputError(`--server must be a libpq URL like ${EXAMPLE}`);
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw inputError(`--server is not a valid URL; write it like ${EXAMPLE}`);
  }
  const params = new Map<string, string>();
  for (const [key, value] of url.searchParams) {
    if (!["sslmode", "sslrootcert", "user", "password", "host", "port", "dbname"].includes(key)) {
      if (IGNORED_PARAMS.has(key)) continue;
      throw inputError(`--server: unsupported URL parameter "${key}"`);
    }
    params.set(key, value);
  }
  let host = params.get("host") ?? decode(url.hostname, "host");
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  if (host.includes(",")) {
    throw inputError("--server: give exactly one host (multi-host URLs are not supported)");
  }
  if (host.startsWith("/")) {
    throw inputError("--server: Unix-domain sockets are not supported; give a TCP host");
  }
  if (host.length === 0)
    host = env.PGHOST && !env.PGHOST.startsWith("/") ? env.PGHOST : "localhost";

  const portText = params.get("port") ?? (url.port || env.PGPORT || "5432");
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw inputError(`--server: port "${portText}" must be a number between 1 and 65535`);
  }

  const urlUser = params.get("user") ?? decode(url.username, "user name");
  const username = urlUser || env.PGUSER || os.userInfo().username;
  const urlPassword = params.get("password") ?? decode(url.password, "password");

  const path = url.pathname.replace(/^\//, "");
  if (path.includes("/")) throw inputError("--server: the URL path must be one database name");
  const database = params.get("dbname") ?? decode(path, "database name");

  const sslGiven = params.get("sslmode") ?? env.PGSSLMODE;
  const sslText = (sslGiven || "prefer").toLowerCase();
  if (!(SSL_MODES as readonly string[]).includes(sslText)) {
    throw inputError(
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
