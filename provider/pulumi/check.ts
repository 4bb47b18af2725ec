// `check`: the inputs validated by the zod schema, each problem reported on its exact property
// with what to write instead. Values unknown during preview are accepted as they are.
import type * as pulumi from "@pulumi/pulumi";
import { resolveSpec, type InputProblem } from "../spec/inputs";
import { UNKNOWN, unknownPaths, userInputs } from "./state";

type Inputs = Record<string, unknown>;

/** What to write, by property (`*.x` = x of source or target). */
const HINTS: Readonly<Record<string, string>> = {
  source: "set it to { host, username, password } of the server to migrate from",
  target: "set it to { host, username, password } of the server to migrate to",
  "*.host": "write the server's DNS name or IP address",
  "*.username": 'write the login role, e.g. "postgres"',
  "*.password": "pass the password as a string (e.g. config.requireSecret(...))",
  "*.port": "write a port number, e.g. 5432",
  "*.sslMode": 'write one of "disable", "prefer", "require", "verify-ca", "verify-full"',
  databases: 'list the databases to migrate, e.g. ["orders"]',
  migrationName: 'write lowercase letters, digits and hyphens, e.g. "orders-to-azure"',
  mode: 'write "Offline" or "Online"',
  option: 'write "Validate", "Migrate" or "ValidateAndMigrate"',
  overwriteDbsInTarget: "write true or false",
  cutover: "write true or false",
  migrateRoles: "write true or false",
  parallelism: "write { tables: 4, indexes: 2 }",
  "parallelism.tables": "write a whole number from 1 to 64",
  "parallelism.indexes": "write a whole number from 1 to 64",
  "parallelism.splitTablesLargerThan":
    "write a number of bytes, e.g. 1073741824 (1 GiB), or 0 for the default",
  verify: 'write "snapshot", "counts", "checksum" or "none"',
  controlDatabase: 'write the name of a database on the target, e.g. "postgres"',
  runtime: 'write { kind: "local" }, { kind: "external" } or { kind: "pool" }',
};

function hintFor(property: string): string | undefined {
  return HINTS[property] ?? HINTS[property.replace(/^(source|target)\./, "*.")];
}

function valueAt(inputs: Inputs, property: string): unknown {
  let value: unknown = inputs;
  for (const key of property.split(".")) {
    if (typeof value !== "object" || value === null) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

/** A valid migration name close to `name`, for the message. */
export function suggestMigrationName(name: string): string {
  const cleaned = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 48);
  return cleaned || "my-migration";
}

function explain(problem: InputProblem, inputs: Inputs): string {
  const { property } = problem;
  const hint = hintFor(property);
  const value = valueAt(inputs, property);
  if (problem.reason === "is required" || /^must be an? \w+, not /.test(problem.reason)) {
    // Missing, or of another type than expected ("must be an object, not a string").
    return `${property} ${problem.reason}${hint ? `: ${hint}` : ""}`;
  }
  if (property === "migrationName") {
    const name = typeof value === "string" ? value : "";
    return (
      `${problem.reason}; migrationName defaults to the resource name: set it explicitly, ` +
      `e.g. migrationName: "${suggestMigrationName(name)}"`
    );
  }
  const leaf = property.split(".").pop() ?? property;
  const reason = problem.reason.includes(leaf) ? problem.reason : `${property}: ${problem.reason}`;
  // The schema's own messages say what to write; zod's generic ones ("Invalid input") do not.
  const generic = /^invalid|expected/i.test(problem.reason);
  return hint && generic ? `${reason}: ${hint}` : reason;
}

// A problem caused by a value not known yet (the path itself, inside it, or an aggregate over it).
function touchesUnknown(property: string, unknown: readonly string[]): boolean {
  return unknown.some(
    (path) =>
      property === path || property.startsWith(path + ".") || path.startsWith(property + "."),
  );
}

/**
 * Validates `news` (defaults are applied where the spec is resolved, not written back, so
 * `pulumi preview` shows exactly what the user wrote). `olds` are the previous inputs.
 */
export function checkMigration(
  olds: Inputs | undefined,
  news: Inputs,
): pulumi.dynamic.CheckResult<Inputs> {
  const inputs = userInputs(news);
  const unknown = unknownPaths(inputs);
  const failures: pulumi.dynamic.CheckFailure[] = [];
  const resolved = resolveSpec(inputs);
  if (!resolved.ok) {
    for (const problem of resolved.problems) {
      if (touchesUnknown(problem.property, unknown)) continue;
      failures.push({ property: problem.property, reason: explain(problem, inputs) });
    }
  }
  if (olds?.cutover === true && inputs.cutover !== true && inputs.cutover !== UNKNOWN) {
    failures.push({
      property: "cutover",
      reason:
        "cutover cannot be undone: the migration was already cut over (or the cutover was requested). " +
        "Keep cutover: true; to migrate again, give the resource a new migrationName",
    });
  }
  return { inputs: news, failures };
}
