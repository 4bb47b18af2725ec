// The web console (`pgmigrate serve`): a local HTTP server over one target server's control
// store. Every read and action goes through api/ (list, outputs, table progress, latency and state
// history, requestAction; create.ts: testConnection, createMigration), so the console shows and
// does exactly what the CLI and the provider do. Access needs the
// random token printed at start (then a session cookie); POSTs also need the session's CSRF token.
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import cookie from "@fastify/cookie";
import fastifyStatic from "@fastify/static";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import {
  databasesDroppedByCancel,
  getLatencyHistory,
  getMigration,
  getStateHistory,
  getTableProgress,
  isEnded,
  listMigrations,
  requestAction,
  type ControlLocation,
} from "../api/index";
import { MigrationError } from "../pg/errors";
import { redact } from "../pg/redact";
import { registerCreate } from "./create";
import { sameSecret, Sessions } from "./sessions";

const COOKIE = "pgmigrate_session";
/** Latency samples the chart shows (the newest; the control store keeps up to 1,000). */
export const CHART_SAMPLES = 600;

export interface ConsoleOptions {
  readonly at: ControlLocation;
  readonly host: string;
  readonly port: number;
  /** PEM certificate and key: serve HTTPS. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
  /** Passwords to keep out of every response (error messages are redacted with them). */
  readonly secrets: readonly string[];
  /** How long a session lasts (default SESSION_LIFETIME_MS, 12 h). */
  readonly sessionLifetimeMs?: number;
}

export interface RunningConsole {
  /** The open-the-link URL, with the access token: print it once, never log it again. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Whether `host` is a loopback address (the only kind served without TLS or --insecure). */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h);
}

function assetsDir(): string {
  return path.join(__dirname, "assets");
}

function uplotDir(): string {
  return path.dirname(require.resolve("uplot/dist/uPlot.iife.min.js"));
}

/** Starts the console; resolves once it listens. */
export async function startConsole(options: ConsoleOptions): Promise<RunningConsole> {
  const accessToken = randomBytes(32).toString("base64url");
  const sessions = new Sessions(options.sessionLifetimeMs);
  const page = fs.readFileSync(path.join(assetsDir(), "index.html"), "utf8");

  const app: FastifyInstance = Fastify({
    logger: false,
    ...(options.tls ? { https: { cert: options.tls.cert, key: options.tls.key } } : {}),
  }) as unknown as FastifyInstance;
  await app.register(cookie);
  // A body that cannot be parsed is refused without echoing it (it may hold a password).
  app.setErrorHandler((err: { statusCode?: unknown }, _request, reply) => {
    const status =
      typeof err.statusCode === "number" && err.statusCode >= 400 ? err.statusCode : 500;
    return reply.code(status).send({
      error: status < 500 ? "the request could not be read" : "internal error",
      code: null,
    });
  });

  const deny = (reply: FastifyReply): FastifyReply =>
    reply.code(401).header("cache-control", "no-store").send("");

  /** The session of a request, or "bearer" for the Authorization header; undefined = denied. */
  const sessionOf = (request: FastifyRequest): string | undefined => {
    const auth = request.headers.authorization;
    if (typeof auth === "string" && auth.startsWith("Bearer ")) {
      return sameSecret(auth.slice(7), accessToken) ? "bearer" : undefined;
    }
    const id = request.cookies[COOKIE];
    return sessions.csrfOf(id) !== undefined ? id : undefined;
  };

  app.addHook("onRequest", async (request, reply) => {
    const url = new URL(request.url, "http://console.invalid");
    const token = url.searchParams.get("token");
    if (token !== null) {
      if (!sameSecret(token, accessToken)) return deny(reply);
      const id = sessions.open();
      url.searchParams.delete("token");
      reply.setCookie(COOKIE, id, {
        httpOnly: true,
        sameSite: "strict",
        secure: Boolean(options.tls),
        path: "/",
        maxAge: sessions.lifetimeSeconds,
      });
      return reply.redirect(url.pathname + url.search, 303);
    }
    const session = sessionOf(request);
    if (!session) return deny(reply);
    if (request.method !== "GET" && request.method !== "HEAD" && session !== "bearer") {
      const csrf = request.headers["x-csrf-token"];
      if (
        !sameSecret(typeof csrf === "string" ? csrf : undefined, sessions.csrfOf(session) ?? "")
      ) {
        return reply.code(403).send({ error: "missing or wrong CSRF token" });
      }
    }
    reply.header("cache-control", "no-store");
    reply.header("x-frame-options", "DENY");
    reply.header(
      "content-security-policy",
      "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
    );
  });

  const sendPage = (request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    const session = sessionOf(request);
    const csrf = session && session !== "bearer" ? (sessions.csrfOf(session) ?? "") : "";
    return reply.type("text/html; charset=utf-8").send(page.replace("__CSRF_TOKEN__", csrf));
  };
  app.get("/", sendPage);
  app.get("/migrations/:name", sendPage);
  app.get("/create", sendPage);

  await app.register(fastifyStatic, { root: assetsDir(), prefix: "/assets/", index: false });
  await app.register(fastifyStatic, {
    root: uplotDir(),
    prefix: "/vendor/uplot/",
    decorateReply: false,
    index: false,
    allowedPath: (file) => file === "/uPlot.iife.min.js" || file === "/uPlot.min.css",
  });

  /** A failure as the browser sees it: the message, redacted; status by kind. */
  const fail = (
    reply: FastifyReply,
    err: unknown,
    secrets: readonly (string | undefined)[] = [],
  ): FastifyReply => {
    const message = redact(err instanceof Error ? err.message : String(err), [
      ...options.secrets,
      ...secrets,
    ]);
    const code = err instanceof MigrationError ? err.code : undefined;
    // Not found, refused action, bad input; anything else is the control store failing (502).
    const status =
      code === "PGM_NOT_FOUND"
        ? 404
        : code === "PGM_INVALID_ACTION" || code === "PGM_DUPLICATE_NAME"
          ? 409
          : code === "PGM_INPUT"
            ? 400
            : 502;
    return reply.code(status).send({ error: message, code: code ?? null });
  };

  app.get<{ Querystring: { filter?: string } }>("/api/migrations", async (request, reply) => {
    try {
      const filter = request.query.filter === "All" ? "All" : "Active";
      const items = await listMigrations(options.at, filter);
      const rows = [];
      for (const item of items) {
        let latencySeconds: number | null = null;
        if (item.migrationMode === "Online" && !isEnded(item.state)) {
          latencySeconds = (await getMigration(options.at, item.name))?.latencySeconds ?? null;
        }
        rows.push({ ...item, latencySeconds });
      }
      return { filter, migrations: rows };
    } catch (err) {
      return fail(reply, err);
    }
  });

  app.get<{ Params: { name: string } }>("/api/migrations/:name", async (request, reply) => {
    try {
      const name = request.params.name;
      const outputs = await getMigration(options.at, name);
      if (!outputs) return reply.code(404).send({ error: `no migration named ${name}` });
      const [tables, cancelDrops, samples, states] = await Promise.all([
        getTableProgress(options.at, name),
        isEnded(outputs.state) ? Promise.resolve([]) : databasesDroppedByCancel(options.at, name),
        getLatencyHistory(options.at, name, CHART_SAMPLES),
        getStateHistory(options.at, name),
      ]);
      return {
        outputs,
        tables,
        cancelDrops,
        target: `${options.at.target.host}:${options.at.target.port}`,
        // Recorded by the worker in the control store: the same history after a restart of serve.
        latencyHistory: samples.map((sample) => [sample.at, sample.latencySeconds]),
        states,
      };
    } catch (err) {
      return fail(reply, err);
    }
  });

  app.post<{ Params: { name: string }; Body: { action?: unknown } }>(
    "/api/migrations/:name/actions",
    async (request, reply) => {
      const action = request.body?.action;
      if (action !== "cutover" && action !== "cancel") {
        return reply.code(400).send({ error: "action must be cutover or cancel" });
      }
      try {
        await requestAction(options.at, request.params.name, action);
        return { requested: action };
      } catch (err) {
        return fail(reply, err);
      }
    },
  );

  registerCreate(app, options.at, fail);

  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : options.port;
  // An unspecified address (all interfaces) is not openable: the link names this machine.
  const host = ["0.0.0.0", "::"].includes(options.host) ? os.hostname() : options.host;
  const shownHost = host.includes(":") ? `[${host}]` : host;
  return {
    url: `${options.tls ? "https" : "http"}://${shownHost}:${port}/?token=${accessToken}`,
    port,
    close: () => app.close(),
  };
}
