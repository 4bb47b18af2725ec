// Connections to source and target: sslmode mapped to node-postgres TLS options, libpq
// environment for pg_dump/pg_restore (passwords through the environment, never argv).
import fs from "node:fs";
import { Client, type ClientConfig } from "pg";
import type { ConnectionOptions } from "node:tls";
import type { Endpoint } from "../spec/types";

export interface ConnectOptions {
  /** Open a walsender connection (`replication=database`) for replication commands. */
  readonly replication?: boolean;
  readonly applicationName?: string;
  /** Milliseconds; default 10 s. */
  readonly connectTimeoutMs?: number;
}

function tlsOptions(endpoint: Endpoint): false | ConnectionOptions {
  const ca = endpoint.sslRootCert ? fs.readFileSync(endpoint.sslRootCert, "utf8") : undefined;
  switch (endpoint.sslMode) {
    case "disable":
      return false;
    case "prefer":
    case "require":
      // libpq: require with a root cert file behaves like verify-ca.
      return ca
        ? { ca, rejectUnauthorized: true, checkServerIdentity: () => undefined }
        : { rejectUnauthorized: false };
    case "verify-ca":
      return { ca, rejectUnauthorized: true, checkServerIdentity: () => undefined };
    case "verify-full":
      // node-postgres checks the certificate against the host (sets SNI only for names, not IPs).
      return { ca, rejectUnauthorized: true };
  }
}

/** node-postgres configuration for a database on `endpoint`. */
export function clientConfig(
  endpoint: Endpoint,
  database: string,
  options: ConnectOptions = {},
): ClientConfig {
  const config: ClientConfig & { replication?: string } = {
    host: endpoint.host,
    port: endpoint.port,
    user: endpoint.username,
    password: endpoint.password ?? "",
    database,
    ssl: tlsOptions(endpoint),
    application_name: options.applicationName ?? "pgmigrate",
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
    keepAlive: true,
  };
  if (options.replication) config.replication = "database";
  return config;
}

const NO_SSL_ON_SERVER = /does not support SSL/i;

/** A connected client. `prefer` falls back to plaintext when the server has no TLS, as libpq does. */
export async function connect(
  endpoint: Endpoint,
  database: string,
  options: ConnectOptions = {},
): Promise<Client> {
  const client = new Client(clientConfig(endpoint, database, options));
  // An idle client whose server goes away emits 'error'; without a listener that kills the process.
  client.on("error", () => undefined);
  try {
    await client.connect();
    return client;
  } catch (err) {
    if (
      endpoint.sslMode === "prefer" &&
      err instanceof Error &&
      NO_SSL_ON_SERVER.test(err.message)
    ) {
      return connect({ ...endpoint, sslMode: "disable" }, database, options);
    }
    throw err;
  }
}

/** Runs `fn` with a client that is always closed afterwards. */
export async function withClient<T>(
  endpoint: Endpoint,
  database: string,
  fn: (client: Client) => Promise<T>,
  options: ConnectOptions = {},
): Promise<T> {
  const client = await connect(endpoint, database, options);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** libpq environment for pg_dump/pg_restore/psql: the password never appears on a command line. */
export function libpqEnv(endpoint: Endpoint, database: string): Record<string, string> {
  const env: Record<string, string> = {
    PGHOST: endpoint.host,
    PGPORT: String(endpoint.port),
    PGUSER: endpoint.username,
    PGDATABASE: database,
    PGSSLMODE: endpoint.sslMode,
    PGAPPNAME: "pgmigrate",
    PGCONNECT_TIMEOUT: "10",
  };
  if (endpoint.password !== undefined) env.PGPASSWORD = endpoint.password;
  if (endpoint.sslRootCert) env.PGSSLROOTCERT = endpoint.sslRootCert;
  return env;
}

/** Server major version (e.g. 13, 16) from `server_version_num`. */
export async function serverMajor(client: Client): Promise<number> {
  const { rows } = await client.query<{ v: string }>(
    "SELECT current_setting('server_version_num') AS v",
  );
  return Math.floor(Number(rows[0].v) / 10000);
}
