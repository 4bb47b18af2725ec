// `--properties FILE.json`: the reference service's migration properties (az postgres
// flexible-server migration create) and our own input names, mapped to resolveSpec() inputs.
import fs from "node:fs";
import { MODES, OPTIONS, SERVER_TYPES, SSL_MODES } from "../spec/inputs";
import { InputBuilder, isObject, lower, normalizeEnum, type Json, type Obj } from "./input-builder";
import { didYouMean } from "../spec/suggest";
import { REFERENCE_KEY_NAMES, referenceKey, unknownSecretKeys } from "./reference-keys";
import { findJsonSyntaxError } from "./json-syntax";

/** Inputs for resolveSpec() as far as the file sets them; the target comes from --server. */
export interface ParsedProperties {
  /** Partial resource inputs (camelCase, as in provider/inputs.ts). */
  readonly input: Readonly<Record<string, unknown>>;
  /** Dotted input path → the file's key that set it, for messages about conflicts. */
  readonly origins: ReadonlyMap<string, string>;
  /** Informational lines for stderr (keys accepted without effect). */
  readonly notes: readonly string[];
}

export type PropertiesResult =
  | { readonly ok: true; readonly properties: ParsedProperties }
  | { readonly ok: false; readonly problems: readonly string[] };

/** Nested objects of our own inputs, with their canonical key names. */
const NESTED: Record<string, readonly string[]> = {
  source: ["host", "port", "username", "password", "sslMode", "sslRootCert", "serverType"],
  target: ["host", "port", "username", "password", "sslMode", "sslRootCert"],
  parallelism: ["tables", "indexes", "splitTablesLargerThan"],
  runtime: ["kind", "logDir"],
};
export const OWN_KEYS: readonly string[] = [
  "migrationName",
  "source",
  "target",
  "databases",
  "mode",
  "option",
  "overwriteDbsInTarget",
  "cutover",
  "parallelism",
  "migrateRoles",
  "fixReplicaIdentity",
  "verify",
  "controlDatabase",
  "runtime",
];
const BOOLEAN_INPUTS = new Set(["overwriteDbsInTarget", "cutover", "migrateRoles"]);

const canonical = (names: readonly string[], key: string): string | undefined =>
  names.find((n) => lower(n) === lower(key));

function ownKey(b: InputBuilder, name: string, value: Json, where: string): void {
  const nestedKeys = NESTED[name];
  if (nestedKeys) {
    if (!isObject(value)) return void b.problems.push(`${where} must be an object`);
    for (const [k, v] of Object.entries(value)) {
      const sub = canonical(nestedKeys, k);
      if (!sub) continue; // named as unknown by mapProperties()
      let normalized: Json = v;
      if (sub === "sslMode") normalized = normalizeEnum(v, SSL_MODES);
      if (sub === "serverType") normalized = normalizeEnum(v, SERVER_TYPES);
      if (sub === "kind" && typeof v === "string") normalized = v.toLowerCase();
      b.set(`${name}.${sub}`, normalized, `${where}.${k}`);
    }
    return;
  }
  if (BOOLEAN_INPUTS.has(name)) return b.bool(name, value, where);
  if (name === "mode") return b.set(name, normalizeEnum(value, MODES), where);
  if (name === "option") return b.set(name, normalizeEnum(value, OPTIONS), where);
  if (name === "verify" && typeof value === "string")
    return b.set(name, value.toLowerCase(), where);
  b.set(name, value, where);
}

/** Maps the parsed JSON (with or without the top-level `properties` wrapper) to inputs. */
export function mapProperties(json: unknown): PropertiesResult {
  if (!isObject(json as Json))
    return { ok: false, problems: ["the properties must be a JSON object"] };
  let props = json as Obj;
  let prefix = "";
  const keys = Object.keys(props);
  if (keys.length === 1 && lower(keys[0]) === "properties") {
    if (!isObject(props[keys[0]]))
      return { ok: false, problems: [`"${keys[0]}" must be an object`] };
    prefix = `${keys[0]}.`;
    props = props[keys[0]] as Obj;
  }
  const b = new InputBuilder();
  const unknown: string[] = [];
  for (const [key, value] of Object.entries(props)) {
    const own = canonical(OWN_KEYS, key);
    if (own) {
      ownKey(b, own, value, key);
      const nestedKeys = NESTED[own];
      if (nestedKeys && isObject(value)) {
        for (const k of Object.keys(value))
          if (!canonical(nestedKeys, k))
            unknown.push(`"${prefix}${key}.${k}"${didYouMean(k, nestedKeys)}`);
      }
    } else if (!referenceKey(b, key, value, props)) {
      unknown.push(`"${prefix}${key}"${didYouMean(key, [...OWN_KEYS, ...REFERENCE_KEY_NAMES])}`);
    }
  }
  unknown.push(...unknownSecretKeys(props, prefix).map((k) => `"${k}"`));
  if (unknown.length > 0) {
    b.problems.unshift(`unknown propert${unknown.length > 1 ? "ies" : "y"} ${unknown.join(", ")}`);
  }
  const cutoverDbs = b.input.$cutoverDatabases;
  if (cutoverDbs !== undefined) {
    const origin = b.origins.get("$cutoverDatabases") ?? "DbsToTriggerCutoverOn";
    delete b.input.$cutoverDatabases;
    b.origins.delete("$cutoverDatabases");
    const all = Array.isArray(b.input.databases) ? [...(b.input.databases as string[])].sort() : [];
    const asked = Array.isArray(cutoverDbs) ? [...(cutoverDbs as string[])].sort() : undefined;
    if (asked && asked.length === 0) {
      // An empty list asks for nothing.
    } else if (asked && JSON.stringify(asked) === JSON.stringify(all)) {
      b.set("cutover", true, origin);
    } else {
      b.problems.push(
        `${origin}: cutover applies to all databases of a migration at once; list all of them or use TriggerCutover`,
      );
    }
  }
  if (b.problems.length > 0) return { ok: false, problems: b.problems };
  return { ok: true, properties: { input: b.input, origins: b.origins, notes: b.notes } };
}

/** Parses the text of a properties file; `file` names it in messages. */
export function parsePropertiesText(text: string, file: string): PropertiesResult {
  const body = text.replace(/^\uFEFF/, "");
  const syntax = findJsonSyntaxError(body);
  if (syntax) {
    return {
      ok: false,
      problems: [
        `${file}:${syntax.line}:${syntax.column}: malformed JSON at position ${syntax.position}: ${syntax.reason}`,
      ],
    };
  }
  const result = mapProperties(JSON.parse(body));
  if (result.ok) return result;
  return { ok: false, problems: result.problems.map((p) => `${file}: ${p}`) };
}

/** Why a file could not be read, in plain words (not ENOENT). */
export function fileProblem(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  const words: Record<string, string> = {
    ENOENT: "no such file",
    EACCES: "permission denied",
    EPERM: "permission denied",
    EISDIR: "it is a directory, not a file",
    ENOTDIR: "a part of the path is not a directory",
  };
  if (code && words[code]) return words[code];
  return err instanceof Error ? err.message : String(err);
}

/** Reads and parses a properties file. */
export function readPropertiesFile(file: string): PropertiesResult {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    return { ok: false, problems: [`cannot read properties file ${file}: ${fileProblem(err)}`] };
  }
  return parsePropertiesText(text, file);
}
