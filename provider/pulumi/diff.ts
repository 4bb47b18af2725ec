// `diff`: what a change of inputs does to a running migration. Cutover, passwords, parallelism
// and runtime change in place; anything that defines which data goes where replaces it.
import type * as pulumi from "@pulumi/pulumi";
import { resolveSpec } from "../spec/inputs";
import { canonicalJson } from "../spec/rules";
import { MigrationError } from "../pg/errors";
import { publicSpec } from "../pg/redact";
import { asResourceState, containsUnknown, samePassword, UNKNOWN, userInputs } from "./state";
import type { MigrationSpec, RuntimeOptions } from "../spec/types";

type Inputs = Record<string, unknown>;

/** Properties that define the migration: changing one means a new migration (old one first). */
export const REPLACE_PROPERTIES = [
  "source",
  "target",
  "databases",
  "mode",
  "option",
  "migrationName",
  "controlDatabase",
  "overwriteDbsInTarget",
  "migrateRoles",
  "fixReplicaIdentity",
  "verify",
] as const;

/** What `update` has to do, besides recording the new inputs. */
export interface ChangePlan {
  readonly result: pulumi.dynamic.DiffResult;
  /** `cutover` went from false to true. */
  readonly cutoverRequested: boolean;
  readonly passwordsChanged: { readonly source: boolean; readonly target: boolean };
  readonly runtimeChanged: boolean;
  /** The new spec; a password unknown during preview is undefined here. */
  readonly spec: MigrationSpec;
  readonly runtime: RuntimeOptions;
}

function isObject(value: unknown): value is Inputs {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function same(property: string, before: unknown, after: unknown): boolean {
  // The order databases are listed in does not change the migration.
  if (property === "databases" && Array.isArray(before) && Array.isArray(after)) {
    return canonicalJson([...before].sort()) === canonicalJson([...after].sort());
  }
  return canonicalJson(before) === canonicalJson(after);
}

/**
 * Replaces values unknown during preview by the old ones so the rest can be resolved and
 * compared; returns which properties (and which passwords) were unknown.
 */
function patchUnknowns(
  inputs: Inputs,
  old: Inputs,
): {
  patched: Inputs;
  unknown: Set<string>;
  unknownPassword: { source: boolean; target: boolean };
} {
  const patched: Inputs = { ...inputs };
  const unknown = new Set<string>();
  const unknownPassword = { source: false, target: false };
  for (const key of Object.keys(patched)) {
    const value = patched[key];
    if (!containsUnknown(value)) continue;
    if ((key === "source" || key === "target") && isObject(value)) {
      const endpoint: Inputs = { ...value };
      if (endpoint.password === UNKNOWN) {
        unknownPassword[key] = true;
        delete endpoint.password;
      }
      if (containsUnknown(endpoint)) {
        unknown.add(key);
        patched[key] = { ...(old[key] as Inputs), password: endpoint.password };
      } else {
        patched[key] = endpoint;
      }
      continue;
    }
    unknown.add(key);
    patched[key] = old[key];
  }
  return { patched, unknown, unknownPassword };
}

/** Compares the state (`olds`: the previous outputs) with the new inputs. */
export function planChange(olds: object, news: Inputs): ChangePlan {
  const state = asResourceState(olds);
  if (!state) {
    throw new MigrationError(
      "input",
      "this resource's state was not written by the pulumi-postgres-migration provider; " +
        "run `pulumi refresh`, or remove it from the state with `pulumi state delete` and import it again",
      { code: "PGM_INPUT" },
    );
  }
  const old: Inputs = { ...state.spec, runtime: state.runtime };
  const { patched, unknown, unknownPassword } = patchUnknowns(userInputs(news), old);
  // Created when "counts" was the default verify: a new default must not replace a migration.
  if (patched.verify === undefined && old.verify === "counts") patched.verify = "counts";
  const resolved = resolveSpec(patched);
  if (!resolved.ok) {
    const problems = resolved.problems.map((p) => `${p.property}: ${p.reason}`).join("; ");
    throw new MigrationError("input", `invalid inputs: ${problems}`, { code: "PGM_INPUT" });
  }
  const spec = resolved.spec;
  const next: Inputs = { ...publicSpec(spec) };
  const replaces = REPLACE_PROPERTIES.filter(
    (key) => unknown.has(key) || !same(key, old[key], next[key]),
  );

  if (state.spec.cutover && !spec.cutover && !unknown.has("cutover")) {
    throw new MigrationError(
      "input",
      "cutover cannot be undone (true → false): keep cutover: true; to migrate again, give the resource a new migrationName",
      { code: "PGM_INPUT" },
    );
  }
  const cutoverRequested = !state.spec.cutover && spec.cutover && !unknown.has("cutover");
  const fp = state.passwordFingerprint;
  const passwordsChanged = {
    source:
      unknownPassword.source || !fp || !samePassword(spec.source.password, fp.source, fp.salt),
    target:
      unknownPassword.target || !fp || !samePassword(spec.target.password, fp.target, fp.salt),
  };
  const runtime: RuntimeOptions = resolved.runtime;
  const runtimeChanged = unknown.has("runtime") || !same("runtime", state.runtime, runtime);
  const inPlace =
    cutoverRequested ||
    unknown.has("cutover") ||
    passwordsChanged.source ||
    passwordsChanged.target ||
    runtimeChanged ||
    unknown.has("parallelism") ||
    !same("parallelism", state.spec.parallelism, spec.parallelism);

  return {
    result: {
      changes: replaces.length > 0 || inPlace,
      replaces: [...replaces],
      deleteBeforeReplace: replaces.length > 0,
    },
    cutoverRequested,
    passwordsChanged,
    runtimeChanged,
    spec,
    runtime,
  };
}
