// A real Pulumi CLI driving a user's project: the CLI built by scripts/pulumi-cli.sh (or one on
// PATH), a temporary project that installs this package from its `npm pack` tarball, as a
// user's project would, a local file backend, and stacks whose config holds the servers.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { PgServer } from "./postgres";

const REPO = path.resolve(__dirname, "../../..");
const BUILT_CLI = path.join(REPO, ".cache/pulumi-cli/bin");
/** The SDK version the provider is built against; the project installs the same. */
const PULUMI_SDK_VERSION: string = JSON.parse(
  fs.readFileSync(path.join(REPO, "node_modules/@pulumi/pulumi/package.json"), "utf8"),
).version;

/** Folder holding `pulumi` and `pulumi-language-nodejs`, if there is one. */
export function pulumiCliDir(): string | undefined {
  const candidates = [process.env.PULUMI_CLI_DIR, BUILT_CLI];
  for (const dir of candidates) {
    const complete = ["pulumi", "pulumi-language-nodejs"].every((f) =>
      fs.existsSync(path.join(dir ?? "", f)),
    );
    if (dir && complete) return dir;
  }
  try {
    const found = execFileSync("sh", ["-c", "command -v pulumi"], { encoding: "utf8" }).trim();
    return found ? path.dirname(found) : undefined;
  } catch {
    return undefined;
  }
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `command` to its end, collecting its output; never throws on a non-zero exit. */
function runProcess(
  command: string,
  args: readonly string[],
  options: { cwd: string; env: NodeJS.ProcessEnv; stdin?: string },
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(options.stdin ?? "");
  });
}

/** The program every test stack runs: one PostgresMigration declared in stack config. */
const PROGRAM = `
const pulumi = require("@pulumi/pulumi");
const { PostgresMigration } = require("pulumi-postgres-migration");

const config = new pulumi.Config();
const server = (key) => ({ ...config.requireObject(key), password: config.requireSecret(key + "Password") });
const migration = new PostgresMigration(config.require("resourceName"), {
  source: server("source"),
  target: server("target"),
  databases: config.requireObject("databases"),
  migrationName: config.get("migrationName"),
  mode: config.get("mode"),
  option: config.get("option"),
  cutover: config.getBoolean("cutover"),
  verify: config.get("verify"),
  overwriteDbsInTarget: config.getBoolean("overwriteDbsInTarget"),
  runtime: config.getObject("runtime"),
});
for (const key of ["migrationName", "state", "substate", "migrationMode", "latencySeconds",
                   "error", "validation", "dbDetails", "verification"]) {
  exports[key] = migration[key];
}
`;

let packed: string | undefined;

/** This package as `npm pack` makes it (dist must be built), once per test run. */
function packTarball(into: string): string {
  if (packed && fs.existsSync(packed)) return packed;
  const name = execFileSync(
    "npm",
    ["pack", "--silent", "--ignore-scripts", "--pack-destination", into],
    {
      cwd: REPO,
      encoding: "utf8",
    },
  ).trim();
  packed = path.join(into, name.split("\n").pop() as string);
  return packed;
}

/** A temporary Pulumi project with this package installed, and a file backend. */
export class PulumiProject {
  readonly dir: string;
  private readonly env: NodeJS.ProcessEnv;
  /** Every secret given to a stack: must never show up in state or output. */
  readonly secrets: string[] = [];

  private constructor(
    readonly root: string,
    cliDir: string,
  ) {
    this.dir = path.join(root, "project");
    this.env = {
      ...process.env,
      PATH: `${cliDir}:${process.env.PATH}`,
      PULUMI_BACKEND_URL: `file://${path.join(root, "backend")}`,
      PULUMI_HOME: path.join(root, "home"),
      PULUMI_CONFIG_PASSPHRASE: "e2e-passphrase",
      PULUMI_SKIP_UPDATE_CHECK: "true",
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
      NO_COLOR: "1",
    };
  }

  /** Creates the project and installs this package and @pulumi/pulumi into it. */
  static create(cliDir: string): PulumiProject {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-e2e-"));
    const project = new PulumiProject(root, cliDir);
    try {
      fs.mkdirSync(project.dir);
      fs.mkdirSync(path.join(root, "backend"));
      const tarball = packTarball(root);
      fs.writeFileSync(
        path.join(project.dir, "Pulumi.yaml"),
        "name: e2e\nruntime: nodejs\ndescription: pulumi-postgres-migration end-to-end tests\n",
      );
      fs.writeFileSync(
        path.join(project.dir, "package.json"),
        JSON.stringify({ name: "e2e", private: true, main: "index.js" }, null, 2),
      );
      fs.writeFileSync(path.join(project.dir, "index.js"), PROGRAM);
      execFileSync(
        "npm",
        [
          "install",
          "--no-audit",
          "--no-fund",
          "--prefer-offline",
          "--loglevel=error",
          tarball,
          `@pulumi/pulumi@${PULUMI_SDK_VERSION}`,
        ],
        { cwd: project.dir, stdio: ["ignore", "ignore", "pipe"] },
      );
    } catch (err) {
      project.remove();
      throw err;
    }
    return project;
  }

  /** Starts the CLI in its own process group (so a test can kill it with its plugins). */
  start(args: readonly string[]): ChildProcess {
    const child = spawn("pulumi", ["--non-interactive", ...args], {
      cwd: this.dir,
      env: this.env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    child.stdout?.resume();
    child.stderr?.resume();
    return child;
  }

  /** Runs a command installed in the project's node_modules/.bin (e.g. pgmigrate). */
  bin(command: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
    return runProcess(path.join(this.dir, "node_modules/.bin", command), args, {
      cwd: this.dir,
      env: { ...process.env, ...env },
    });
  }

  /** Runs the CLI in the project; never throws on a non-zero exit. */
  run(args: readonly string[], options: { stdin?: string } = {}): Promise<RunResult> {
    return runProcess("pulumi", ["--non-interactive", ...args], {
      cwd: this.dir,
      env: this.env,
      stdin: options.stdin,
    });
  }

  /** Runs the CLI and throws with its output unless it exits 0. */
  async ok(args: readonly string[], options: { stdin?: string } = {}): Promise<string> {
    const result = await this.run(args, options);
    if (result.code !== 0) {
      throw new Error(
        `pulumi ${args.join(" ")} exited ${result.code}\n${result.stdout}\n${result.stderr}`,
      );
    }
    return result.stdout;
  }

  /**
   * A new stack migrating `databases` from `source` to `target`; `config` holds the other
   * program inputs (plain values). Passwords are set as secrets through stdin.
   */
  async initStack(
    stack: string,
    source: PgServer,
    target: PgServer,
    config: Record<string, unknown>,
    login?: { username: string; password: string },
  ): Promise<Stack> {
    await this.ok(["stack", "init", stack]);
    const s = new Stack(this, stack);
    const endpoint = (server: PgServer) => ({
      host: server.host,
      port: server.port,
      username: login?.username ?? server.user,
      sslMode: "disable",
    });
    await s.set("source", endpoint(source));
    await s.set("target", endpoint(target));
    // Worker logs inside the project's temp dir, removed with it (not the default /tmp/pgmigrate).
    await s.set("runtime", { logDir: path.join(this.root, "logs") });
    for (const [key, value] of Object.entries(config)) await s.set(key, value);
    await s.setSecret("sourcePassword", login?.password ?? source.password);
    await s.setSecret("targetPassword", login?.password ?? target.password);
    return s;
  }

  /** The texts of the workers' log files. */
  workerLogs(): string[] {
    const dir = path.join(this.root, "logs");
    if (!fs.existsSync(dir)) return [];
    return fs.readdirSync(dir).map((f) => fs.readFileSync(path.join(dir, f), "utf8"));
  }

  /** Removes the project, its backend and the CLI's home. */
  remove(): void {
    fs.rmSync(this.root, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  }
}

/** One stack of a PulumiProject. */
export class Stack {
  constructor(
    readonly project: PulumiProject,
    readonly name: string,
  ) {}

  private on(args: readonly string[]): string[] {
    return [...args, "--stack", this.name];
  }

  /** Sets a plain config value; objects and arrays go in leaf by leaf (`--path`), typed. */
  async set(key: string, value: unknown): Promise<void> {
    if (typeof value === "object" && value !== null) {
      // A shorter array must not keep the old tail: replace the whole value.
      await this.project.run(this.on(["config", "rm", "--path", key]));
      for (const [leaf, v] of leaves(key, value)) await this.setLeaf(leaf, v, true);
    } else {
      await this.setLeaf(key, value, false);
    }
  }

  /** Sets a secret config value, through stdin (never on a command line). */
  async setSecret(key: string, value: string): Promise<void> {
    this.project.secrets.push(value);
    await this.project.ok(this.on(["config", "set", "--secret", key]), { stdin: value });
  }

  private async setLeaf(key: string, value: unknown, isPath: boolean): Promise<void> {
    const type = typeof value === "number" ? "int" : typeof value === "boolean" ? "bool" : "string";
    const args = ["config", "set", ...(isPath ? ["--path"] : []), "--type", type];
    await this.project.ok([...this.on(args), "--", key, String(value)]);
  }

  run(args: readonly string[]): Promise<RunResult> {
    return this.project.run(this.on(args));
  }

  ok(args: readonly string[]): Promise<string> {
    return this.project.ok(this.on(args));
  }

  /** `pulumi up` in the background, in its own process group. */
  startUp(): ChildProcess {
    return this.project.start(this.on(["up", "--yes", "--skip-preview"]));
  }

  up(): Promise<RunResult> {
    return this.run(["up", "--yes", "--skip-preview"]);
  }

  /** The stack's outputs (secrets stay masked). */
  async outputs(): Promise<Record<string, unknown>> {
    return JSON.parse(await this.ok(["stack", "output", "--json"])) as Record<string, unknown>;
  }

  /**
   * The migration resource's outputs in the stack's state. Unlike the stack outputs (written
   * only when the program runs, at `up`), these are what `pulumi refresh` updates.
   */
  async resourceOutputs(): Promise<Record<string, unknown>> {
    const state = JSON.parse(await this.exportState()) as {
      deployment: { resources?: { type: string; outputs?: Record<string, unknown> }[] };
    };
    const resource = (state.deployment.resources ?? []).find((r) =>
      r.type.endsWith(":PostgresMigration"),
    );
    if (!resource?.outputs) throw new Error(`stack ${this.name} has no PostgresMigration`);
    return resource.outputs;
  }

  /** The resource steps of a preview, from `pulumi preview --json`. */
  async previewSteps(): Promise<PreviewStep[]> {
    const result = await this.run(["preview", "--json"]);
    const parsed = JSON.parse(result.stdout) as { steps?: PreviewStep[] };
    if (result.code !== 0) throw new Error(`preview failed:\n${result.stdout}\n${result.stderr}`);
    return (parsed.steps ?? []).filter((s) => s.urn.includes("PostgresMigration"));
  }

  /** The stack's state file as `pulumi stack export` prints it. */
  exportState(): Promise<string> {
    return this.ok(["stack", "export"]);
  }
}

/** `[path, value]` for every scalar in `value`, paths as `--path` writes them. */
function leaves(prefix: string, value: unknown): [string, unknown][] {
  if (Array.isArray(value)) return value.flatMap((v, i) => leaves(`${prefix}[${i}]`, v));
  if (typeof value === "object" && value !== null) {
    return Object.entries(value).flatMap(([k, v]) => leaves(`${prefix}.${k}`, v));
  }
  return [[prefix, value]];
}

export interface PreviewStep {
  readonly op: string;
  readonly urn: string;
  readonly replaceReasons?: string[];
  readonly oldState?: { inputs?: Record<string, unknown> };
  readonly newState?: { inputs?: Record<string, unknown> };
}

/**
 * Inputs whose value a step changes, as `pulumi preview` shows them (secrets compare masked:
 * a dynamic provider's diff does not list its keys, so the display diffs the inputs).
 */
export function changedInputs(step: PreviewStep): string[] {
  const before = step.oldState?.inputs ?? {};
  const after = step.newState?.inputs ?? {};
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k])).sort();
}

/**
 * SIGKILLs `pid` and every process below it, as a crash would end a `pulumi up` — except the
 * pids in `spare` (a detached worker, which must outlive it). Pulumi starts its plugins in
 * process groups of their own, so killing pulumi's group alone would leave them running.
 */
export function killTree(pid: number, spare: readonly number[] = []): void {
  const ps = execFileSync("ps", ["-eo", "pid=,ppid="], { encoding: "utf8" });
  const children = new Map<number, number[]>();
  for (const line of ps.trim().split("\n")) {
    const [child, parent] = line.trim().split(/\s+/).map(Number);
    children.set(parent, [...(children.get(parent) ?? []), child]);
  }
  const tree: number[] = [];
  const visit = (p: number): void => {
    if (spare.includes(p)) return;
    tree.push(p);
    for (const c of children.get(p) ?? []) visit(c);
  };
  visit(pid);
  for (const p of tree) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

export { workerPids } from "./workers";
