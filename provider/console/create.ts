// The console's Create page, server side: the choices the form offers, Test connection (the
// validation's connectivity check for one server) and Start, which builds the same input as
// `pgmigrate create` and goes through api/'s createMigration. Passwords arrive in POST bodies
// only; they reach the worker through its environment and nothing else (no store, log, reply).
import type { FastifyInstance, FastifyReply } from "fastify";
import { createMigration, testConnection, type ControlLocation } from "../api/index";
import {
  endpointSchema,
  MODES,
  OPTIONS,
  resolveSpec,
  SERVER_TYPES,
  SSL_MODES,
} from "../spec/inputs";
import type { Endpoint } from "../spec/types";

/** Answers a failure as the browser sees it (redacted with the console's and `secrets`). */
export type Fail = (
  reply: FastifyReply,
  err: unknown,
  secrets?: readonly (string | undefined)[],
) => FastifyReply;

type Fields = Record<string, unknown>;

const isObject = (value: unknown): value is Fields =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** The form's text fields as the input schema wants them: empty means "not given". */
function given(fields: Fields, keys: readonly string[]): Fields {
  const picked: Fields = {};
  for (const key of keys) {
    const value = fields[key];
    if (value !== undefined && value !== null && value !== "") picked[key] = value;
  }
  return picked;
}

const SOURCE_KEYS = ["host", "port", "username", "password", "sslMode", "serverType"];
const TARGET_KEYS = ["username", "password", "sslMode"];

/** The target the console serves: host, port and CA come from --server, the rest from the form. */
function targetInput(at: ControlLocation, fields: Fields): Fields {
  return {
    ...given(fields, TARGET_KEYS),
    host: at.target.host,
    port: at.target.port,
    ...(at.target.sslRootCert ? { sslRootCert: at.target.sslRootCert } : {}),
  };
}

/** The passwords of a request, to redact from whatever is answered. */
function passwordsOf(...endpoints: unknown[]): string[] {
  return endpoints
    .map((e) => (isObject(e) ? e.password : undefined))
    .filter((p): p is string => typeof p === "string" && p.length > 0);
}

export function registerCreate(app: FastifyInstance, at: ControlLocation, fail: Fail): void {
  /** What the form offers; the target's address is the console's own. */
  app.get("/api/create/choices", async () => ({
    modes: MODES,
    options: OPTIONS,
    sslModes: SSL_MODES,
    serverTypes: SERVER_TYPES,
    target: { host: at.target.host, port: at.target.port, username: at.target.username },
  }));

  app.post<{ Body: unknown }>("/api/connections/test", async (request, reply) => {
    const body = isObject(request.body) ? request.body : {};
    const role = body.role === "target" ? "target" : body.role === "source" ? "source" : undefined;
    const fields = isObject(body.endpoint) ? body.endpoint : {};
    if (!role) return reply.code(400).send({ error: "role must be source or target", code: null });
    const raw = role === "target" ? targetInput(at, fields) : given(fields, SOURCE_KEYS);
    const parsed = endpointSchema.safeParse(raw);
    if (!parsed.success) {
      const problems = parsed.error.issues.map(
        (issue) => `${role}.${issue.path.map(String).join(".") || "(server)"}: ${issue.message}`,
      );
      return reply.code(400).send({ error: problems.join("; "), problems, code: "PGM_INPUT" });
    }
    try {
      const probe = await testConnection(parsed.data as Endpoint, role);
      // Only the source's databases are offered in the form.
      return probe.status === "Succeeded" && role === "target"
        ? { status: probe.status, message: probe.message }
        : probe;
    } catch (err) {
      return fail(reply, err, passwordsOf(fields));
    }
  });

  app.post<{ Body: unknown }>("/api/migrations", async (request, reply) => {
    const body = isObject(request.body) ? request.body : {};
    const source = isObject(body.source) ? body.source : {};
    const target = isObject(body.target) ? body.target : {};
    const secrets = passwordsOf(source, target);
    // The same input object `pgmigrate create` builds from its flags and properties file.
    const input: Fields = {
      ...given(body, ["migrationName", "mode", "option", "databases", "overwriteDbsInTarget"]),
      source: given(source, SOURCE_KEYS),
      target: targetInput(at, target),
      controlDatabase: at.controlDatabase,
    };
    if (typeof body.migrationName !== "string" || body.migrationName === "") {
      const problems = ["migrationName: give the migration a name"];
      return reply.code(400).send({ error: problems[0], problems, code: "PGM_INPUT" });
    }
    const resolved = resolveSpec(input, body.migrationName);
    if (!resolved.ok) {
      const problems = resolved.problems.map((p) => `${p.property}: ${p.reason}`);
      return reply.code(400).send({ error: problems.join("; "), problems, code: "PGM_INPUT" });
    }
    try {
      const created = await createMigration(resolved.spec, resolved.runtime);
      return {
        name: resolved.spec.migrationName,
        state: created.outputs.state,
        substate: created.outputs.substate,
        attached: created.attached,
      };
    } catch (err) {
      return fail(reply, err, secrets);
    }
  });
}
