// `pgmigrate create`: the properties file, the --server URL, the flags and the environment's
// passwords merged into one input object for resolveSpec(). Disagreements are usage errors.
import { MODES, OPTIONS } from "../spec/inputs";
import { normalizeEnum } from "./input-builder";
import { findPassword } from "../pg/passwords";
import type { ParsedProperties } from "./properties";
import { resolveTargetPassword, type ServerUrl } from "./server";
import { UsageError } from "./usage";

export interface CreateFlags {
  readonly migrationName: string;
  readonly migrationMode?: string;
  readonly migrationOption?: string;
  readonly splitTablesLargerThan?: string;
}

export interface CreateInput {
  /** Input object for resolveSpec(). Holds passwords: never print it. */
  readonly input: Record<string, unknown>;
  /** Every password in play, for redact(). */
  readonly secrets: readonly string[];
  readonly warnings: readonly string[];
}

type Fields = Record<string, unknown>;

const objectAt = (input: Fields, key: string): Fields => {
  const value = input[key];
  if (typeof value === "object" && value !== null && !Array.isArray(value)) return value as Fields;
  const created: Fields = {};
  input[key] = created;
  return created;
};

/** A flag and a file key that must agree when both are given. */
function agree(
  props: ParsedProperties,
  input: Fields,
  key: string,
  flag: string,
  value: unknown,
): void {
  if (value === undefined) return;
  if (input[key] !== undefined && input[key] !== value) {
    throw new UsageError(`${flag} and ${props.origins.get(key) ?? key} disagree; keep one of them`);
  }
  input[key] = value;
}

/** A flag's value among `choices` (any case); a bad one is an error about the flag. */
function flagChoice(
  flag: string,
  value: string | undefined,
  choices: readonly string[],
): string | undefined {
  if (value === undefined) return undefined;
  const chosen = normalizeEnum(value, choices);
  if (typeof chosen === "string" && choices.includes(chosen)) return chosen;
  const expected = choices.length === 2 ? choices.join(" or ") : `one of ${choices.join(", ")}`;
  throw new UsageError(`${flag} must be ${expected}, not "${value}"`);
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  kb: 1024,
  mb: 1024 ** 2,
  gb: 1024 ** 3,
  tb: 1024 ** 4,
};

/** `--split-tables-larger-than`: bytes, or a number with kB, MB, GB or TB (1024-based, as PostgreSQL). */
export function parseSize(flag: string, value: string): number {
  const match = /^\s*(\d+)\s*([kmgt]b)?\s*$/i.exec(value);
  const bytes = match ? Number(match[1]) * SIZE_UNITS[(match[2] ?? "").toLowerCase()] : NaN;
  if (!Number.isSafeInteger(bytes)) {
    throw new UsageError(
      `${flag} must be a size in bytes or with kB, MB, GB or TB, not "${value}"`,
    );
  }
  return bytes;
}

/** Target fields the file may repeat but --server decides. */
function checkTarget(props: ParsedProperties, target: Fields, server: ServerUrl): void {
  const origin = (field: string): string => props.origins.get(`target.${field}`) ?? field;
  if (
    target.host !== undefined &&
    String(target.host).toLowerCase() !== server.host.toLowerCase()
  ) {
    throw new UsageError(`${origin("host")} names another server than --server (${server.host})`);
  }
  if (target.port !== undefined && Number(target.port) !== server.port) {
    throw new UsageError(`${origin("port")} disagrees with the port of --server (${server.port})`);
  }
  if (
    target.username !== undefined &&
    server.usernameGiven &&
    target.username !== server.username
  ) {
    throw new UsageError(`${origin("username")} disagrees with the user of --server`);
  }
  if (target.sslMode !== undefined && server.sslModeGiven && target.sslMode !== server.sslMode) {
    throw new UsageError(`${origin("sslMode")} disagrees with sslmode of --server`);
  }
}

/** Builds the resolveSpec() input; throws UsageError when the sources of truth disagree. */
export function buildCreateInput(
  props: ParsedProperties,
  server: ServerUrl,
  flags: CreateFlags,
  env: NodeJS.ProcessEnv = process.env,
): CreateInput {
  const input = structuredClone(props.input) as Fields;
  const warnings: string[] = [];

  agree(props, input, "migrationName", "--migration-name", flags.migrationName);
  const mode = flagChoice("--migration-mode", flags.migrationMode, MODES);
  const option = flagChoice("--migration-option", flags.migrationOption, OPTIONS);
  agree(props, input, "mode", "--migration-mode", mode);
  agree(props, input, "option", "--migration-option", option);
  if (flags.splitTablesLargerThan !== undefined) {
    const flag = "--split-tables-larger-than";
    const bytes = parseSize(flag, flags.splitTablesLargerThan);
    const parallelism = objectAt(input, "parallelism");
    const given = parallelism.splitTablesLargerThan;
    if (given !== undefined && given !== bytes) {
      const origin =
        props.origins.get("parallelism.splitTablesLargerThan") ??
        "parallelism.splitTablesLargerThan";
      throw new UsageError(`${flag} and ${origin} disagree; keep one of them`);
    }
    parallelism.splitTablesLargerThan = bytes;
  }

  if (input.controlDatabase !== undefined && server.databaseGiven) {
    if (input.controlDatabase !== server.controlDatabase) {
      throw new UsageError(
        `${props.origins.get("controlDatabase")} disagrees with the database of --server`,
      );
    }
  }
  input.controlDatabase ??= server.controlDatabase;

  const target = objectAt(input, "target");
  checkTarget(props, target, server);
  const username = server.usernameGiven
    ? server.username
    : typeof target.username === "string"
      ? target.username
      : server.username;
  const targetPassword = resolveTargetPassword(
    { ...server, username },
    typeof target.password === "string" ? target.password : undefined,
    env,
  );
  warnings.push(...targetPassword.warnings);
  Object.assign(target, {
    host: server.host,
    port: server.port,
    username,
    password: targetPassword.password,
    sslMode: server.sslModeGiven ? server.sslMode : (target.sslMode ?? server.sslMode),
    sslRootCert: server.sslRootCert ?? target.sslRootCert,
  });
  if (target.password === undefined) delete target.password;
  if (target.sslRootCert === undefined) delete target.sslRootCert;

  const source = objectAt(input, "source");
  if (
    source.password === undefined &&
    typeof source.host === "string" &&
    typeof source.username === "string"
  ) {
    // Not in the file: the environment, then the password file.
    const databases = Array.isArray(input.databases) ? input.databases : [];
    const found = findPassword(
      "source",
      {
        host: source.host,
        port: Number(source.port ?? 5432),
        database: typeof databases[0] === "string" ? databases[0] : "postgres",
        username: source.username,
      },
      env,
    );
    if (found.warning) warnings.push(found.warning);
    if (found.password !== undefined) source.password = found.password;
  }
  const secrets = [source.password, target.password].filter(
    (p): p is string => typeof p === "string" && p.length > 0,
  );
  return { input, secrets, warnings };
}
