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
  /**
   * Pinned settings left at what the server, database and role say, for a session that only
   * reads them (validation reports a read-only database or a differing lc_monetary).
   */
  readonly unpinned?: readonly PinnedSetting[];
  /**
   * node-postgres pipeline mode: queries are sent without waiting for the previous one's
   * result (no COPY, cursors or `rows` on such a client).
   */
  readonly pipeline?: boolean;
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

/**
 * Session settings every connection of ours pins, on source and target, as pg_dump does: a
 * database's or role's own settings (ALTER DATABASE/ROLE ... SET) must never change how a value
 * is printed (COPY TO, the walsender's pgoutput, verification) or parsed (COPY FROM, apply).
 * - DateStyle/IntervalStyle/extra_float_digits/bytea_output/TimeZone/lc_monetary: one text form
 *   per value on both sides (floats round-trip exactly, money is read and written under one
 *   locale, so its stored amount is copied unchanged).
 * - standard_conforming_strings: backslashes in literals mean what our SQL means.
 * - search_path: only pg_catalog (and the implicit pg_temp), so regclass/regproc print
 *   schema-qualified and a user object can never shadow a built-in we call; our own SQL names
 *   every user object with its schema.
 * - xmloption: XML values that are fragments (content) parse back.
 * - default_transaction_read_only: a source frozen with ALTER DATABASE ... SET
 *   default_transaction_read_only = on must still let us create and drop our publication and
 *   bookkeeping; our read-only work says READ ONLY itself.
 * They travel in the startup packet, so nothing runs before they apply; a walsender
 * (replication=database) accepts them too. All are user-settable (PGC_USERSET), so managed
 * servers (Azure flexible server, RDS/Aurora, Cloud SQL) accept them for any login role. A pooler
 * in between (PgBouncer on Azure's port 6432, RDS Proxy) refuses the `options` startup parameter
 * unless configured to ignore it, which would silently drop the pins: connect to the server's
 * own port (a walsender cannot go through a transaction pooler anyway).
 */
export const PINNED_SETTINGS = {
  DateStyle: "ISO,MDY",
  IntervalStyle: "postgres",
  extra_float_digits: "3",
  bytea_output: "hex",
  TimeZone: "UTC",
  lc_monetary: "C",
  standard_conforming_strings: "on",
  client_encoding: "UTF8",
  search_path: "pg_catalog",
  xmloption: "content",
  default_transaction_read_only: "off",
} as const;

export type PinnedSetting = keyof typeof PINNED_SETTINGS;

/** PINNED_SETTINGS as a libpq `options` / PGOPTIONS value (no value contains a space). */
export function pinnedOptions(unpinned: readonly PinnedSetting[] = []): string {
  return Object.entries(PINNED_SETTINGS)
    .filter(([name]) => !unpinned.includes(name as PinnedSetting))
    .map(([name, value]) => `-c ${name}=${value}`)
    .join(" ");
}

/** node-postgres configuration for a database on `endpoint`, with the pinned settings. */
export function clientConfig(
  endpoint: Endpoint,
  database: string,
  options: ConnectOptions = {},
): ClientConfig {
  const config: ClientConfig & { replication?: string; pipeline?: boolean } = {
    host: endpoint.host,
    port: endpoint.port,
    user: endpoint.username,
    password: endpoint.password ?? "",
    database,
    ssl: tlsOptions(endpoint),
    application_name: options.applicationName ?? "pgmigrate",
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
    keepAlive: true,
    options: pinnedOptions(options.unpinned),
  };
  if (options.replication) config.replication = "database";
  if (options.pipeline) config.pipeline = true;
  return config;
}

const NO_SSL_ON_SERVER = /does not support SSL/i;

/**
 * libpq's sslmode "prefer", decided here only: a server that has no TLS is spoken to in
 * plaintext. Given the error of a TLS attempt, the endpoint to try again, or undefined.
 */
export function plaintextAfter(endpoint: Endpoint, err: unknown): Endpoint | undefined {
  return endpoint.sslMode === "prefer" && err instanceof Error && NO_SSL_ON_SERVER.test(err.message)
    ? { ...endpoint, sslMode: "disable" }
    : undefined;
}

/** "prefer" settled from what a connection learnt: plaintext where the server had no TLS. */
export function settledSslMode(endpoint: Endpoint, serverUsedTls: boolean): Endpoint {
  return endpoint.sslMode === "prefer" && !serverUsedTls
    ? { ...endpoint, sslMode: "disable" }
    : endpoint;
}

/**
 * "prefer" settled by connecting once, for libraries that open their own connections (the
 * walsender stream) and cannot fall back themselves. Other modes are returned as they are.
 */
export async function settleSslMode(endpoint: Endpoint, database: string): Promise<Endpoint> {
  if (endpoint.sslMode !== "prefer") return endpoint;
  const client = new Client(clientConfig(endpoint, database));
  client.on("error", () => undefined);
  try {
    await client.connect();
    return endpoint;
  } catch (err) {
    return plaintextAfter(endpoint, err) ?? endpoint;
  } finally {
    await client.end().catch(() => undefined);
  }
}

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
    const plaintext = plaintextAfter(endpoint, err);
    if (plaintext) return connect(plaintext, database, options);
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

/**
 * libpq settings for pg_dump/pg_restore/psql connecting to `database` on `endpoint`: the password
 * never appears on a command line. `rootCert`: the file libpq verifies the server with (see
 * pg/trust.ts), so it trusts what our own connections trust.
 */
export function libpqEnv(
  endpoint: Endpoint,
  database: string,
  rootCert: string | undefined,
): Record<string, string> {
  const env: Record<string, string> = {
    PGHOST: endpoint.host,
    PGPORT: String(endpoint.port),
    PGUSER: endpoint.username,
    PGDATABASE: database,
    PGSSLMODE: endpoint.sslMode,
    PGAPPNAME: "pgmigrate",
    PGCONNECT_TIMEOUT: "10",
    // pg_dump pins most of these itself; pg_restore and psql do not pin DateStyle and friends.
    PGOPTIONS: pinnedOptions(),
  };
  if (endpoint.password !== undefined) env.PGPASSWORD = endpoint.password;
  if (rootCert) env.PGSSLROOTCERT = rootCert;
  return env;
}

/** Server major version (e.g. 13, 16) from `server_version_num`. */
export async function serverMajor(client: Client): Promise<number> {
  const { rows } = await client.query<{ v: string }>(
    "SELECT current_setting('server_version_num') AS v",
  );
  return Math.floor(Number(rows[0].v) / 10000);
}
