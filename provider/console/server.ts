// The web console (`pgmigrate serve`): a local HTTP server over one target server's control
// store. Every read and action goes through api/ (list, outputs, table progress, requestAction),
// so the console shows and does exactly what the CLI and the provider do. Access needs the
// random token printed at start (then a session cookie); POSTs also need the session's CSRF token.
import { randomBytes, timingSafeEqual } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import cookie from "@fastify/cookie";
import fastifyStatic from "@fastify/static";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import {
  databasesDroppedByCancel,
  getMigration,
  getTableProgress,
  isEnded,
  listMigrations,
  requestAction,
  type ControlLocation,
} from "../api/index";
import { MigrationError } from "../pg/errors";
import { redact } from "../pg/redact";

const COOKIE = "pgmigrate_session";
/** Latency samples kept per migration in this process (about 20 minutes at one per 2 s). */
export const LATENCY_SAMPLES = 600;

export interface ConsoleOptions {
  readonly at: ControlLocation;
  readonly host: string;
  readonly port: number;
  /** PEM certificate and key: serve HTTPS. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
  /** Passwords to keep out of every response (error messages are redacted with them). */
  readonly secrets: readonly string[];
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

function sameSecret(given: string | undefined, expected: string): boolean {
  if (typeof given !== "string") return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function assetsDir(): string {
  return path.join(__dirname, "assets");
}

function uplotDir(): string {
  return path.dirname(require.resolve("uplot/dist/uPlot.iife.min.js"));
}

/** Bounded latency history per migration, filled from the console's own reads. */
export class LatencyHistory {
  private readonly samples = new Map<string, [number, number][]>();
  record(name: string, latencySeconds: number | null): void {
    if (latencySeconds === null) return;
    const list = this.samples.get(name) ?? [];
    list.push([Math.floor(Date.now() / 1000), latencySeconds]);
    if (list.length > LATENCY_SAMPLES) list.splice(0, list.length - LATENCY_SAMPLES);
    this.samples.set(name, list);
  }
  of(name: string): [number, number][] {
    return [...(this.samples.get(name) ?? [])];
  }
}

/** Starts the console; resolves once it listens. */
export async function startConsole(options: ConsoleOptions): Promise<RunningConsole> {
  const accessToken = randomBytes(32).toString("base64url");
  /** Session id (cookie value) → that session's CSRF token. */
  const sessions = new Map<string, string>();
  const history = new LatencyHistory();
  const page = fs.readFileSync(path.join(assetsDir(), "index.html"), "utf8");

  const app: FastifyInstance = Fastify({
    logger: false,
    ...(options.tls ? { https: { cert: options.tls.cert, key: options.tls.key } } : {}),
  }) as unknown as FastifyInstance;
  await app.register(cookie);

  const deny = (reply: FastifyReply): FastifyReply =>
    reply.code(401).header("cache-control", "no-store").send("");

  /** The session of a request, or "bearer" for the Authorization header; undefined = denied. */
  const sessionOf = (request: FastifyRequest): string | undefined => {
    const auth = request.headers.authorization;
    if (typeof auth === "string" && auth.startsWith("Bearer ")) {
      return sameSecret(auth.slice(7), accessToken) ? "bearer" : undefined;
    }
    const id = request.cookies[COOKIE];
    return id !== undefined && sessions.has(id) ? id : undefined;
  };

  app.addHook("onRequest", async (request, reply) => {
    const url = new URL(request.url, "http://console.invalid");
    const token = url.searchParams.get("token");
    if (token !== null) {
      if (!sameSecret(token, accessToken)) return deny(reply);
      const id = randomBytes(32).toString("base64url");
      sessions.set(id, randomBytes(32).toString("base64url"));
      url.searchParams.delete("token");
      reply.setCookie(COOKIE, id, {
        httpOnly: true,
        sameSite: "strict",
        secure: Boolean(options.tls),
        path: "/",
      });
      return reply.redirect(url.pathname + url.search, 303);
    }
    const session = sessionOf(request);
    if (!session) return deny(reply);
    if (request.method !== "GET" && request.method !== "HEAD" && session !== "bearer") {
      const csrf = request.headers["x-csrf-token"];
      if (!sameSecret(typeof csrf === "string" ? csrf : undefined, sessions.get(session) ?? "")) {
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
    const csrf = session && session !== "bearer" ? (sessions.get(session) ?? "") : "";
    return reply.type("text/html; charset=utf-8").send(page.replace("__CSRF_TOKEN__", csrf));
  };
  app.get("/", sendPage);
  app.get("/migrations/:name", sendPage);

  await app.register(fastifyStatic, { root: assetsDir(), prefix: "/assets/", index: false });
  await app.register(fastifyStatic, {
    root: uplotDir(),
    prefix: "/vendor/uplot/",
    decorateReply: false,
    index: false,
    allowedPath: (file) => file === "/uPlot.iife.min.js" || file === "/uPlot.min.css",
  });

  /** A failure as the browser sees it: the message, redacted; status by kind. */
  const fail = (reply: FastifyReply, err: unknown): FastifyReply => {
    const message = redact(err instanceof Error ? err.message : String(err), options.secrets);
    const code = err instanceof MigrationError ? err.code : undefined;
    // Not found, refused action, bad input; anything else is the control store failing (502).
    const status =
      code === "PGM_NOT_FOUND"
        ? 404
        : code === "PGM_INVALID_ACTION"
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
          history.record(item.name, latencySeconds);
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
      if (!isEnded(outputs.state)) history.record(name, outputs.latencySeconds);
      const [tables, cancelDrops] = await Promise.all([
        getTableProgress(options.at, name),
        isEnded(outputs.state) ? Promise.resolve([]) : databasesDroppedByCancel(options.at, name),
      ]);
      return {
        outputs,
        tables,
        cancelDrops,
        target: `${options.at.target.host}:${options.at.target.port}`,
        latencyHistory: history.of(name),
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
