// The two ways the quick start runs the migration: `pulumi up` of examples/config-driven
// (Pulumi.yaml) when a Pulumi CLI is on PATH, else the pgmigrate command line. Passwords only
// ever travel through environment variables and stdin, never arguments.
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { MigrationOutputs } from "../../provider/spec/types";
import { SAMPLE_DATABASE } from "./sample";
import type { LocalServer } from "./servers";

/** The repository root (this file runs from dist/examples/local). */
export const REPO = path.resolve(__dirname, "../../..");
const PGMIGRATE = path.join(REPO, "dist/provider/cli/main.js");
/** The stack-config-driven Pulumi program the demo deploys. */
const PROGRAM_DIR = path.join(REPO, "examples/config-driven");

export interface DemoContext {
  readonly source: LocalServer;
  readonly target: LocalServer;
  /** Temporary directory for files, logs and the Pulumi backend. */
  readonly workDir: string;
  readonly migrationName: string;
}

/** How the demo drives one online migration. */
export interface MigrationDriver {
  readonly label: string;
  /** Creates the migration; returns once it waits for the cutover. */
  start(): Promise<void>;
  /** Cuts over; returns once it Succeeded. */
  cutover(): Promise<void>;
  /** Ends the demo's use of the migration; migrated data stays. */
  finish(): Promise<void>;
}

/** Runs a command, its output shown as it comes; resolves with its stdout. */
function run(
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; stdin?: string; quiet?: boolean; cwd?: string } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? REPO,
      env: { ...process.env, ...options.env },
      stdio: ["pipe", "pipe", "inherit"],
    });
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      if (!options.quiet) process.stdout.write(chunk);
    });
    child.stdin.end(options.stdin ?? "");
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0) resolve(stdout);
      else reject(new Error(`${path.basename(command)} ${args[0]} exited with ${code}`));
    });
  });
}

/** The target's control database as --server takes it (no password in it). */
function serverUrl(ctx: DemoContext): string {
  const t = ctx.target;
  return `postgresql://${t.user}@${t.host}:${t.port}/postgres?sslmode=disable`;
}

function pgmigrateEnv(ctx: DemoContext): NodeJS.ProcessEnv {
  return {
    PGPASSWORD: ctx.target.password,
    PGMIGRATE_SOURCE_PASSWORD: ctx.source.password,
    PGPASSFILE: path.join(ctx.workDir, "no-pgpass"),
  };
}

/** `pgmigrate ...` with the demo's credentials. */
export function pgmigrate(
  ctx: DemoContext,
  args: readonly string[],
  quiet = false,
): Promise<string> {
  return run(process.execPath, [PGMIGRATE, ...args], { env: pgmigrateEnv(ctx), quiet });
}

/** Live outputs, read from the control store on the target. */
export async function status(ctx: DemoContext): Promise<MigrationOutputs> {
  const json = await pgmigrate(
    ctx,
    ["show", "--server", serverUrl(ctx), "--migration-name", ctx.migrationName, "--json"],
    true,
  );
  return JSON.parse(json) as MigrationOutputs;
}

export function cliDriver(ctx: DemoContext): MigrationDriver {
  const named = ["--server", serverUrl(ctx), "--migration-name", ctx.migrationName];
  return {
    label: "the pgmigrate command line (no Pulumi CLI on PATH)",
    async start() {
      const file = path.join(ctx.workDir, "properties.json");
      const s = ctx.source;
      const properties = {
        source: { host: s.host, port: s.port, username: s.user, sslMode: "disable" },
        databases: [SAMPLE_DATABASE],
        runtime: { logDir: path.join(ctx.workDir, "logs") },
      };
      fs.writeFileSync(file, JSON.stringify({ properties }, null, 2), { mode: 0o600 });
      await pgmigrate(ctx, [
        "create",
        ...named,
        "--migration-mode",
        "online",
        "--properties",
        file,
        "--wait",
      ]);
    },
    async cutover() {
      await pgmigrate(ctx, ["update", ...named, "--cutover", "--wait"]);
    },
    async finish() {
      // The control rows stay on the target (pgmigrate list shows the history).
    },
  };
}

/** Where `npm run pulumi-cli` (scripts/pulumi-cli.sh) builds the Pulumi CLI. */
const BUILT_PULUMI = path.join(REPO, ".cache/pulumi-cli/bin");

/** PATH with the built Pulumi CLI first, when there is one. */
function pathWithPulumi(): string {
  const current = process.env.PATH ?? "";
  return fs.existsSync(path.join(BUILT_PULUMI, "pulumi")) ? `${BUILT_PULUMI}:${current}` : current;
}

/** True when a `pulumi` executable is on PATH or built in .cache/pulumi-cli. */
export function pulumiAvailable(): boolean {
  try {
    execFileSync("pulumi", ["version"], {
      stdio: "ignore",
      env: { ...process.env, PATH: pathWithPulumi() },
    });
    return true;
  } catch {
    return false;
  }
}

export function pulumiDriver(ctx: DemoContext): MigrationDriver {
  const stack = ctx.migrationName;
  const configFile = path.join(ctx.workDir, `Pulumi.${stack}.yaml`);
  const env: NodeJS.ProcessEnv = {
    PULUMI_BACKEND_URL: `file://${path.join(ctx.workDir, "backend")}`,
    PULUMI_HOME: path.join(ctx.workDir, "pulumi-home"),
    PULUMI_CONFIG_PASSPHRASE: "pgmigrate-demo",
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PATH: pathWithPulumi(),
  };
  const on = ["--stack", stack, "--config-file", configFile, "--non-interactive"];
  const pulumi = (args: readonly string[], stdin?: string): Promise<string> =>
    run("pulumi", args, { env, stdin, cwd: PROGRAM_DIR });
  const endpoint = (s: LocalServer) =>
    `    host: ${s.host}\n    port: ${s.port}\n    username: ${s.user}\n    sslMode: disable\n`;
  return {
    label: "pulumi up of examples/config-driven (local file backend)",
    async start() {
      if (!fs.existsSync(path.join(REPO, "dist/examples/config-driven/index.js"))) {
        throw new Error(
          "dist/examples/config-driven/index.js is missing: run `npm run build` first",
        );
      }
      fs.mkdirSync(path.join(ctx.workDir, "backend"), { recursive: true });
      const p = "postgres-migration";
      fs.writeFileSync(
        configFile,
        `config:\n  ${p}:name: ${ctx.migrationName}\n  ${p}:source:\n${endpoint(ctx.source)}` +
          `  ${p}:target:\n${endpoint(ctx.target)}  ${p}:databases:\n    - ${SAMPLE_DATABASE}\n` +
          `  ${p}:mode: Online\n  ${p}:cutover: false\n` +
          `  ${p}:runtime:\n    logDir: ${path.join(ctx.workDir, "logs")}\n`,
        { mode: 0o600 },
      );
      await pulumi(["stack", "init", stack, "--non-interactive"]);
      // Secrets through stdin: never on a command line.
      await pulumi(["config", "set", "--secret", "sourcePassword", ...on], ctx.source.password);
      await pulumi(["config", "set", "--secret", "targetPassword", ...on], ctx.target.password);
      await pulumi(["up", "--yes", "--skip-preview", ...on]);
    },
    async cutover() {
      await pulumi(["refresh", "--yes", "--skip-preview", ...on]);
      await pulumi(["config", "set", "cutover", "true", ...on]);
      await pulumi(["preview", "--diff", ...on]); // shows ~ cutover and the live latency
      await pulumi(["up", "--yes", "--skip-preview", ...on]);
    },
    async finish() {
      // Destroying a Succeeded migration only forgets it: the migrated data stays.
      await pulumi(["destroy", "--yes", "--skip-preview", ...on]);
      await pulumi(["stack", "rm", "--yes", "--force", "--non-interactive", stack]);
    },
  };
}

/** Pids of the local workers of `name` (to make sure none outlives the demo). */
export function workerPids(name: string): number[] {
  try {
    return execFileSync("ps", ["-eo", "pid,args"], { encoding: "utf8" })
      .split("\n")
      .filter((l) => l.includes(" runtime ") && l.includes(`--migration-name ${name}`))
      .map((l) => Number(l.trim().split(/\s+/)[0]));
  } catch {
    return [];
  }
}
