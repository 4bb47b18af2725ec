// `pgmigrate serve`: the web console over the --server's control store (provider/console/).
// Prints the open-the-link URL with the access token once, on stdout, and nothing secret after.
import fs from "node:fs";
import { isLoopback, startConsole } from "../console/server";
import { note, out, warn, type CliContext } from "./context";
import { UsageError } from "./usage";

export interface ServeOptions {
  listen: string;
  tlsCert?: string;
  tlsKey?: string;
  insecure?: boolean;
}

/** `HOST:PORT` (IPv6 in brackets) → host and port. */
export function parseListen(text: string): { host: string; port: number } {
  const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[2]) : NaN;
  if (!match || port > 65535) throw new UsageError(`--listen must be HOST:PORT, got "${text}"`);
  return { host: match[1].replace(/^\[|\]$/g, ""), port };
}

export async function serveCommand(ctx: CliContext, opts: ServeOptions): Promise<number> {
  const { host, port } = parseListen(opts.listen);
  if (Boolean(opts.tlsCert) !== Boolean(opts.tlsKey)) {
    throw new UsageError("--tls-cert and --tls-key go together");
  }
  const tls =
    opts.tlsCert && opts.tlsKey
      ? { cert: fs.readFileSync(opts.tlsCert), key: fs.readFileSync(opts.tlsKey) }
      : undefined;
  if (!isLoopback(host) && !tls) {
    if (!opts.insecure) {
      throw new UsageError(
        `listening on ${host} (not loopback) needs --tls-cert and --tls-key, or --insecure`,
      );
    }
    warn(
      `serving on ${host} without TLS (--insecure): the access token and session cookie cross the network in clear text`,
    );
  }
  const running = await startConsole({ at: ctx.at, host, port, tls, secrets: ctx.secrets });
  note(`console for the migrations on ${ctx.label}; open this link (it holds the access token):`);
  await out(running.url);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
  await running.close();
  return 0;
}
