// Connecting for validation: a short timeout, and every way a connection can fail turned into
// one sentence that says what to fix. Passwords never reach a message.
import type { Client } from "pg";
import { connect } from "../pg/connect";
import { pgFields, SQLSTATE } from "../pg/errors";
import { quoteIdent } from "../pg/ident";
import { redact } from "../pg/redact";
import type { Endpoint } from "../spec/types";

/** Validation must answer quickly for an unreachable host. */
export const VALIDATION_CONNECT_TIMEOUT_MS = 5_000;

const APPLICATION_NAME = "pgmigrate-validate";

const NETWORK_UNREACHABLE = ["ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EHOSTDOWN"];
const DNS_FAILURES = ["ENOTFOUND", "EAI_AGAIN", "EAI_NONAME"];
const TLS_VERIFY_CODES = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ALTNAME|ERR_TLS/;

export type ConnectOutcome =
  | { readonly ok: true; readonly client: Client }
  | {
      readonly ok: false;
      /** The database does not exist (SQLSTATE 3D000): callers may try another one. */
      readonly missingDatabase: boolean;
      readonly message: string;
    };

/** `host:port`, as users write it. */
export function address(endpoint: Endpoint): string {
  const host = endpoint.host.includes(":") ? `[${endpoint.host}]` : endpoint.host;
  return `${host}:${endpoint.port}`;
}

/** Error codes of a Node error, including those inside an AggregateError (IPv4 + IPv6 attempts). */
function errorCodes(err: unknown): string[] {
  if (typeof err !== "object" || err === null) return [];
  const codes: string[] = [];
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string") codes.push(code);
  const inner = (err as { errors?: unknown }).errors;
  if (Array.isArray(inner)) for (const e of inner) codes.push(...errorCodes(e));
  return codes;
}

/** One sentence on why connecting to `database` on `endpoint` failed and what to do about it. */
export function describeConnectError(endpoint: Endpoint, database: string, err: unknown): string {
  const where = address(endpoint);
  const user = endpoint.username;
  const raw = err instanceof Error ? err.message : String(err);
  const codes = errorCodes(err);
  const pg = pgFields(err);
  let message: string;
  if (endpoint.sslRootCert && codes.some((c) => c === "ENOENT" || c === "EACCES")) {
    message = `sslRootCert "${endpoint.sslRootCert}" could not be read (${raw}): check the file path and its permissions`;
  } else if (pg.code === SQLSTATE.invalidPassword) {
    message = `authentication failed for user "${user}" on ${where}: check the password (and that the user exists)`;
  } else if (pg.code === SQLSTATE.invalidAuthorization) {
    const ssl = /SSL off|no encryption/i.test(raw)
      ? '; the server may require SSL: set sslMode to "require"'
      : "";
    message = `${where} refused user "${user}" for database "${database}" (${raw}): allow this client in the server's pg_hba.conf or firewall rules${ssl}`;
  } else if (pg.code === SQLSTATE.invalidCatalogName) {
    message = `database "${database}" does not exist on ${where}`;
  } else if (pg.code === SQLSTATE.insufficientPrivilege) {
    message = `user "${user}" may not connect to database "${database}" on ${where} (${raw}): GRANT CONNECT ON DATABASE ${quoteIdent(database)} TO ${quoteIdent(user)}`;
  } else if (pg.code === SQLSTATE.tooManyConnections) {
    message = `${where} has no free connection slots (${raw}): retry later or raise max_connections`;
  } else if (pg.code === SQLSTATE.cannotConnectNow) {
    message = `${where} is starting up, shutting down or in recovery (${raw}): retry when it is available`;
  } else if (codes.includes("ECONNREFUSED")) {
    message = `could not connect to ${where}: connection refused; check the host and port, and that PostgreSQL is running and listening there`;
  } else if (codes.some((c) => DNS_FAILURES.includes(c))) {
    message = `could not resolve host name "${endpoint.host}": check the host`;
  } else if (
    codes.some((c) => NETWORK_UNREACHABLE.includes(c)) ||
    /timeout expired|connection timeout/i.test(raw)
  ) {
    message = `no answer from ${where} within ${VALIDATION_CONNECT_TIMEOUT_MS / 1000} s: check the host and port, and that firewalls or security groups let this client in`;
  } else if (/does not support SSL/i.test(raw)) {
    message = `${where} does not accept SSL connections but sslMode is "${endpoint.sslMode}": enable SSL on the server or set sslMode to "prefer" or "disable"`;
  } else if (
    codes.includes("ERR_TLS_CERT_ALTNAME_INVALID") ||
    /altnames|does not match host name/i.test(raw)
  ) {
    // The CA is fine; the name is not: changing the CA would not help.
    message = `the SSL certificate of ${where} does not name host "${endpoint.host}" (${raw}): connect with a host name listed in the certificate's subject alternative names (SAN), or have the certificate reissued for this name`;
  } else if (codes.some((c) => TLS_VERIFY_CODES.test(c)) || /certificate/i.test(raw)) {
    const ca = endpoint.sslRootCert
      ? `sslRootCert "${endpoint.sslRootCert}" does not hold the CA that signed it: set sslRootCert to that CA's certificate`
      : "set sslRootCert to the CA that signed it";
    // require verifies only because a root certificate was given; suggesting require again is no advice.
    const weaker = endpoint.sslMode.startsWith("verify")
      ? ' (sslMode "require" encrypts without verifying the server)'
      : "";
    message = `the SSL certificate of ${where} could not be verified (${raw}) with sslMode "${endpoint.sslMode}": ${ca}${weaker}`;
  } else if (/client password must be/i.test(raw)) {
    message = `the server at ${where} asks user "${user}" for a password but none was given: set the password`;
  } else {
    message = `could not connect to ${where} as user "${user}" (database "${database}"): ${raw}`;
  }
  return redact(message, [endpoint.password]);
}

/** Connects with the validation timeout; failures come back as data. */
export async function tryConnect(endpoint: Endpoint, database: string): Promise<ConnectOutcome> {
  try {
    const client = await connect(endpoint, database, {
      applicationName: APPLICATION_NAME,
      connectTimeoutMs: VALIDATION_CONNECT_TIMEOUT_MS,
      // Validation reports these as the user's sessions see them; it writes nothing.
      unpinned: ["default_transaction_read_only", "lc_monetary"],
    });
    return { ok: true, client };
  } catch (err) {
    return {
      ok: false,
      missingDatabase: pgFields(err).code === SQLSTATE.invalidCatalogName,
      message: describeConnectError(endpoint, database, err),
    };
  }
}

/** Ends a client, ignoring errors (the server may already be gone). */
export async function release(client: Client | undefined): Promise<void> {
  if (client) await client.end().catch(() => undefined);
}

/**
 * A server-level session: the first of `databases` that exists. A missing database is reported by
 * the database-level checks, so it must not make the whole server look unreachable.
 */
export async function openServerSession(
  endpoint: Endpoint,
  databases: readonly string[],
): Promise<{ ok: true; client: Client; database: string } | { ok: false; message: string }> {
  let last: ConnectOutcome | undefined;
  for (const database of [...new Set(databases)]) {
    const outcome = await tryConnect(endpoint, database);
    if (outcome.ok) return { ok: true, client: outcome.client, database };
    last = outcome;
    if (!outcome.missingDatabase) return { ok: false, message: outcome.message };
  }
  return {
    ok: false,
    message: last && !last.ok ? last.message : `no database to connect to on ${address(endpoint)}`,
  };
}
