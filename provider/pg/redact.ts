// Keeps secrets out of logs, events, errors and outputs.
import type { Endpoint, MigrationSpec } from "../spec/types";

/** Replaces every occurrence of each secret in `text` with `********`. */
export function redact(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret && secret.length >= 1) out = out.split(secret).join("********");
  }
  // Passwords inside libpq URLs, whatever they are.
  return out.replace(/(postgres(?:ql)?:\/\/[^:/@\s]+:)[^@\s]+@/gi, "$1********@");
}

/** The endpoint without its password (what the control store keeps). */
export function publicEndpoint(endpoint: Endpoint): Omit<Endpoint, "password"> {
  const { password: _password, ...rest } = endpoint;
  void _password;
  return rest;
}

/** The spec without passwords. */
export function publicSpec(spec: MigrationSpec): Omit<MigrationSpec, "source" | "target"> & {
  source: Omit<Endpoint, "password">;
  target: Omit<Endpoint, "password">;
} {
  return { ...spec, source: publicEndpoint(spec.source), target: publicEndpoint(spec.target) };
}

/** A spec without passwords (stored, or in Pulumi's state) with the passwords known now. */
export function withPasswords(
  spec: ReturnType<typeof publicSpec>,
  passwords: { readonly source: string | undefined; readonly target: string | undefined },
): MigrationSpec {
  return {
    ...spec,
    source: { ...spec.source, password: passwords.source },
    target: { ...spec.target, password: passwords.target },
  };
}
