// The reference service's own property names (az postgres flexible-server migration create):
// what each maps to, and the ones accepted without effect or refused with a reason.
import { MODES, OPTIONS, SERVER_TYPES, SSL_MODES } from "../spec/inputs";
import {
  InputBuilder,
  isObject,
  lower,
  normalizeEnum,
  parseBoolean,
  type Json,
  type Obj,
} from "./input-builder";

/**
 * Output-only fields of the reference resource. Ignored, so the properties of an existing
 * migration (as `az ... migration show` prints them) can be fed back in.
 */
const READ_ONLY_KEYS = [
  "migrationId",
  "migrationDetailsLevel",
  "currentStatus",
  "sourceDbServerMetadata",
  "targetDbServerMetadata",
  "targetDbServerResourceId",
];

/** The reference service's property names, as it spells them (for "did you mean"). */
export const REFERENCE_KEY_NAMES: readonly string[] = [
  "SourceDBServerResourceId",
  "SourceDbServerFullyQualifiedDomainName",
  "TargetDbServerFullyQualifiedDomainName",
  "SecretParameters",
  "SourceServerUsername",
  "TargetServerUsername",
  "DBsToMigrate",
  "SourceType",
  "SslMode",
  "MigrationMode",
  "MigrationOption",
  "TriggerCutover",
  "OverwriteDBsInTarget",
  "MigrateRoles",
  "SetupLogicalReplicationOnSourceDbIfNeeded",
  "StartDataMigration",
  "DbsToTriggerCutoverOn",
  "DbsToCancelMigrationOn",
  "Cancel",
  ...READ_ONLY_KEYS,
];

/** "host:port@user" (port optional, IPv6 host in brackets) from SourceDBServerResourceId. */
export function parseSourceResourceId(
  id: string,
): { host: string; port?: number; username: string } | undefined {
  const m = /^(\[[^\]]+\]|[^:@/\s]+)(?::(\d{1,5}))?@([^@\s]+)$/.exec(id.trim());
  if (!m) return undefined;
  return {
    host: m[1].replace(/^\[|\]$/g, ""),
    port: m[2] === undefined ? undefined : Number(m[2]),
    username: m[3],
  };
}

function secretParameters(b: InputBuilder, value: Json, where: string): void {
  if (!isObject(value)) return void b.problems.push(`${where} must be an object`);
  for (const [k, v] of Object.entries(value)) {
    const at = `${where}.${k}`;
    switch (lower(k)) {
      case "admincredentials":
        if (!isObject(v)) return void b.problems.push(`${at} must be an object`);
        for (const [ck, cv] of Object.entries(v)) {
          if (lower(ck) === "sourceserverpassword") b.set("source.password", cv, `${at}.${ck}`);
          else if (lower(ck) === "targetserverpassword")
            b.set("target.password", cv, `${at}.${ck}`);
        }
        break;
      case "sourceserverusername":
        b.set("source.username", v, at);
        break;
      case "targetserverusername":
        b.set("target.username", v, at);
        break;
      case "aadapp":
        b.problems.push(
          `${at}: Microsoft Entra application credentials are not supported; use passwords`,
        );
        break;
    }
  }
}

/**
 * Handles one reference key (case-insensitive); false when it is not one. The mapping:
 * - SourceDBServerResourceId "host[:port]@user" → source host, port, username;
 *   SourceDbServerFullyQualifiedDomainName → source host (wins over the resource ID's host).
 * - SecretParameters.AdminCredentials.{Source,Target}ServerPassword → the passwords;
 *   SecretParameters.{Source,Target}ServerUsername (also top level) → the user names.
 * - TargetDbServerFullyQualifiedDomainName and the target user must agree with --server.
 * - DBsToMigrate → databases; SourceType → source.serverType; SslMode → source.sslMode;
 *   MigrationMode/MigrationOption → mode/option; TriggerCutover → cutover.
 *   (OverwriteDBsInTarget and MigrateRoles are spelled like our own inputs.)
 * - Accepted without effect: SetupLogicalReplicationOnSourceDbIfNeeded, StartDataMigration
 *   true, Cancel false, an empty DbsToCancelMigrationOn, the read-only output fields.
 * - Refused with the reason: StartDataMigration false, MigrationWindow*, MigrationInstance-
 *   ResourceId, Cancel true, DbsToTriggerCutoverOn naming only some databases, AadApp.
 */
export function referenceKey(b: InputBuilder, key: string, value: Json, all: Obj): boolean {
  const fqdnGiven = Object.keys(all).some(
    (k) => lower(k) === "sourcedbserverfullyqualifieddomainname",
  );
  switch (lower(key)) {
    case "sourcedbserverresourceid": {
      if (typeof value === "string" && value.startsWith("/subscriptions/")) {
        // An Azure resource ID names a server we cannot resolve; the FQDN key, if given, says where.
        if (!fqdnGiven) {
          b.problems.push(
            `${key} is an Azure resource ID; write "host:port@user" or give SourceDbServerFullyQualifiedDomainName`,
          );
        }
        return true;
      }
      const parsed = typeof value === "string" ? parseSourceResourceId(value) : undefined;
      if (!parsed) {
        b.problems.push(`${key} must look like "host:port@user", e.g. "10.1.0.4:5432@postgres"`);
        return true;
      }
      if (!fqdnGiven) b.set("source.host", parsed.host, key);
      if (parsed.port !== undefined) b.set("source.port", parsed.port, key);
      b.set("source.username", parsed.username, key);
      return true;
    }
    case "sourcedbserverfullyqualifieddomainname":
      // As in the reference service: when given, it is what we connect to.
      b.set("source.host", value, key);
      return true;
    case "targetdbserverfullyqualifieddomainname":
      b.set("target.host", value, key);
      return true;
    case "secretparameters":
      secretParameters(b, value, key);
      return true;
    case "sourceserverusername":
      b.set("source.username", value, key);
      return true;
    case "targetserverusername":
      b.set("target.username", value, key);
      return true;
    case "dbstomigrate":
      b.set("databases", value, key);
      return true;
    case "sourcetype":
      b.set("source.serverType", normalizeEnum(value, SERVER_TYPES), key);
      return true;
    case "sslmode":
      // The reference service's sslMode is for the source connection; the target's is in --server.
      b.set("source.sslMode", normalizeEnum(value, SSL_MODES), key);
      return true;
    case "migrationmode":
      b.set("mode", normalizeEnum(value, MODES), key);
      return true;
    case "migrationoption":
      b.set("option", normalizeEnum(value, OPTIONS), key);
      return true;
    case "triggercutover":
      b.bool("cutover", value, key);
      return true;
    default:
      return acceptedWithoutEffect(b, key, value);
  }
}

/** Reference keys we understand but do not act on: a documented no-op or a clear refusal. */
function acceptedWithoutEffect(b: InputBuilder, key: string, value: Json): boolean {
  const flag = parseBoolean(value);
  switch (lower(key)) {
    case "setuplogicalreplicationonsourcedbifneeded":
      // We never change the source's server settings (the reference service restarts Azure
      // sources to set wal_level); validation reports what has to change instead.
      if (flag === undefined) b.problems.push(`${key} must be true or false`);
      else if (flag)
        b.notes.push(
          `${key}: source settings are not changed; validation reports wal_level and slot limits`,
        );
      return true;
    case "startdatamigration":
      // Data migration always starts right away; deferring it is not supported.
      if (flag === false)
        b.problems.push(
          `${key}: false (deferred start) is not supported; run create when the migration should start`,
        );
      else if (flag === undefined) b.problems.push(`${key} must be true or false`);
      return true;
    case "migrationwindowstarttimeinutc":
    case "migrationwindowendtimeinutc":
      b.problems.push(
        `${key}: scheduled migration windows are not supported; run create when the migration should start`,
      );
      return true;
    case "migrationinstanceresourceid":
      b.problems.push(
        `${key}: to run the migration elsewhere, set "runtime": {"kind": "external"} and start "pgmigrate runtime" on a host that reaches both servers`,
      );
      return true;
    case "cancel":
    case "dbstocancelmigrationon":
      if (flag === false || (Array.isArray(value) && value.length === 0)) return true;
      b.problems.push(`${key}: to cancel a migration run "pgmigrate update --cancel"`);
      return true;
    case "dbstotriggercutoveron":
      // Cutover is for the whole migration; accepted only when it names every database.
      b.set("$cutoverDatabases", value, key);
      return true;
  }
  return READ_ONLY_KEYS.some((k) => lower(k) === lower(key));
}

/** Keys inside SecretParameters that the reference service does not define. */
export function unknownSecretKeys(props: Obj, prefix: string): string[] {
  const unknown: string[] = [];
  for (const [key, value] of Object.entries(props)) {
    if (lower(key) !== "secretparameters" || !isObject(value)) continue;
    for (const [k, v] of Object.entries(value)) {
      const known = ["admincredentials", "sourceserverusername", "targetserverusername", "aadapp"];
      if (!known.includes(lower(k))) unknown.push(`${prefix}${key}.${k}`);
      if (lower(k) === "admincredentials" && isObject(v)) {
        for (const ck of Object.keys(v)) {
          if (!["sourceserverpassword", "targetserverpassword"].includes(lower(ck)))
            unknown.push(`${prefix}${key}.${k}.${ck}`);
        }
      }
    }
  }
  return unknown;
}
