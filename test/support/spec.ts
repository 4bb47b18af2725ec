// Endpoints and resolved specs for tests: a PgServer as an Endpoint (superuser, no TLS), and a
// MigrationSpec from raw inputs through the real resolveSpec, so tests exercise the same defaults.
import { resolveSpec } from "../../provider/spec/inputs";
import type { Endpoint, MigrationSpec } from "../../provider/spec/types";
import type { PgServer } from "./postgres";

/** `server` as an Endpoint for its superuser, without TLS. */
export function endpointOf(server: PgServer): Endpoint {
  return {
    host: server.host,
    port: server.port,
    username: server.user,
    password: server.password,
    sslMode: "disable",
  };
}

/**
 * A spec migrating `source` to `target`; `input` holds the other raw inputs and may override
 * either endpoint. Throws with the problems when the inputs do not resolve.
 */
export function specOf(
  source: PgServer,
  target: PgServer,
  input: Record<string, unknown>,
  resourceName?: string,
): MigrationSpec {
  const resolved = resolveSpec(
    { source: endpointOf(source), target: endpointOf(target), ...input },
    resourceName,
  );
  if (!resolved.ok) throw new Error(JSON.stringify(resolved.problems));
  return resolved.spec;
}
