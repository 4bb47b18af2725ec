// `pgmigrate serve` as a child process for the console tests: its link once printed, its output
// kept (the secrets checks read it), and a stop that waits for it to exit.
import { spawn, type ChildProcess } from "node:child_process";
import { CLI_MAIN } from "./cli";
import { until } from "./wait";

export interface Served {
  readonly child: ChildProcess;
  /** The open-the-link URL (holds the access token). */
  readonly link: string;
  readonly origin: string;
  /** Everything it wrote on stdout and stderr so far. */
  output(): string;
  /** SIGTERM, then resolves once it exited. */
  stop(): Promise<void>;
}

/** Starts `pgmigrate serve --server serverUrl` on a free loopback port; `env` adds variables. */
export async function serve(
  serverUrl: string,
  password: string,
  env: NodeJS.ProcessEnv = {},
): Promise<Served> {
  const child = spawn(
    process.execPath,
    [CLI_MAIN, "serve", "--server", serverUrl, "--listen", "127.0.0.1:0"],
    {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, PGPASSWORD: password, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  child.stdout?.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr?.on("data", (c: Buffer) => (out += c.toString()));
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  const link = await until(() => /http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]+/.exec(out)?.[0], {
    what: "pgmigrate serve to print its link",
    timeoutMs: 20_000,
  }).catch((err: unknown) => {
    child.kill("SIGKILL");
    throw new Error(`${String(err)}; its output: ${out}`);
  });
  return {
    child,
    link,
    origin: new URL(link).origin,
    output: () => out,
    stop: async () => {
      if (exited()) return;
      child.kill("SIGTERM");
      await until(exited, { what: "pgmigrate serve to stop" });
    },
  };
}
