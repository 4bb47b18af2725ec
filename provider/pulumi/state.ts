// What the Pulumi state holds for a migration besides its live outputs: the spec without
// passwords (diff, read and delete only see the state) and salted password fingerprints.
import { randomBytes, scryptSync, timingSafeEqual } from "node:crypto";
import { passwordFromEnvironment } from "../pg/passwords";
import { publicSpec, withPasswords } from "../pg/redact";
import type { MigrationOutputs, MigrationSpec, RuntimeOptions } from "../spec/types";

/** The value Pulumi passes to dynamic providers for inputs not known yet (preview). */
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/** The resolved spec as kept in the state: no passwords. */
export type PublicSpec = ReturnType<typeof publicSpec>;

/**
 * Salted scrypt digests of the passwords: enough for `diff` to notice a rotation, useless for
 * logging in (the state never carries a password, not even nested).
 */
export interface PasswordFingerprint {
  readonly salt: string;
  readonly source: string | null;
  readonly target: string | null;
}

/** The resource's Pulumi outputs: the declared outputs plus what the provider needs later. */
export interface ResourceState extends MigrationOutputs {
  readonly spec: PublicSpec;
  readonly runtime: RuntimeOptions;
  readonly passwordFingerprint: PasswordFingerprint;
}

/** Passwords known outside the inputs: remembered by the serialized provider, or from the environment. */
export interface Credentials {
  readonly sourcePassword?: string;
  readonly targetPassword?: string;
}

function digest(password: string, salt: string): string {
  return scryptSync(password, Buffer.from(salt, "hex"), 32).toString("hex");
}

/** Fingerprints both passwords of `spec` (a new salt unless one is given). */
export function fingerprint(spec: MigrationSpec, salt?: string): PasswordFingerprint {
  const s = salt ?? randomBytes(16).toString("hex");
  return {
    salt: s,
    source: spec.source.password === undefined ? null : digest(spec.source.password, s),
    target: spec.target.password === undefined ? null : digest(spec.target.password, s),
  };
}

/** True when `password` is the one `recorded` was computed from (both absent counts as equal). */
export function samePassword(
  password: string | undefined,
  recorded: string | null | undefined,
  salt: string,
): boolean {
  if (password === undefined || recorded === null || recorded === undefined) {
    return password === undefined && (recorded === null || recorded === undefined);
  }
  const a = Buffer.from(digest(password, salt), "hex");
  const b = Buffer.from(recorded, "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Builds the state; JSON round trip drops `undefined` (protobuf Structs reject it). */
export function resourceState(
  spec: MigrationSpec,
  runtime: RuntimeOptions,
  outputs: MigrationOutputs,
  passwordFingerprint: PasswordFingerprint,
): ResourceState {
  const state: ResourceState = {
    ...outputs,
    spec: publicSpec(spec),
    runtime,
    passwordFingerprint,
  };
  return JSON.parse(JSON.stringify(state)) as ResourceState;
}

/** The state's own fields, or undefined when `props` was not written by this provider. */
export function asResourceState(props: unknown): ResourceState | undefined {
  if (typeof props !== "object" || props === null) return undefined;
  const p = props as Partial<ResourceState>;
  if (typeof p.spec !== "object" || p.spec === null || typeof p.spec.migrationName !== "string") {
    return undefined;
  }
  return p as ResourceState;
}

/** The full spec again, with whatever passwords are known. */
export function specFromState(state: ResourceState, credentials: Credentials): MigrationSpec {
  return withPasswords(state.spec, {
    source: credentials.sourcePassword,
    target: credentials.targetPassword,
  });
}

/**
 * Passwords for read and delete, which see only the state: those the serialized provider
 * remembers, else the environment's (pg/passwords.ts), else none (then node-postgres falls back
 * to ~/.pgpass).
 */
export function resolveCredentials(remembered: Credentials | undefined): Credentials {
  return {
    sourcePassword: remembered?.sourcePassword ?? passwordFromEnvironment("source"),
    targetPassword: remembered?.targetPassword ?? passwordFromEnvironment("target"),
  };
}

/** True when `value` is, or contains, a value unknown during preview. */
export function containsUnknown(value: unknown): boolean {
  if (value === UNKNOWN) return true;
  if (Array.isArray(value)) return value.some(containsUnknown);
  if (typeof value === "object" && value !== null) {
    return Object.values(value as Record<string, unknown>).some(containsUnknown);
  }
  return false;
}

/** Dotted paths of every unknown value inside `value` ("source.host", "databases.1"). */
export function unknownPaths(value: unknown, prefix = ""): string[] {
  if (value === UNKNOWN) return [prefix];
  if (typeof value !== "object" || value === null) return [];
  return Object.entries(value as Record<string, unknown>).flatMap(([key, inner]) =>
    unknownPaths(inner, prefix ? `${prefix}.${key}` : key),
  );
}

/** The inputs without the dynamic-provider bookkeeping (`__provider`) the schema doesn't know. */
export function userInputs(props: Record<string, unknown> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(props ?? {})) {
    if (!key.startsWith("__")) out[key] = value;
  }
  return out;
}
