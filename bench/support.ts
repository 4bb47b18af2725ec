// Shared pieces of the benchmarks: endpoints of harness servers, client tools run with their
// peak RSS and CPU measured, a sampler for this process, and a plain text results table.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";
import { libpqEnv } from "../provider/pg/connect";
import { redact } from "../provider/pg/redact";
import type { Endpoint } from "../provider/spec/types";
import { findDumpTools } from "../provider/pg/dump-tools";
import type { PgServer } from "../test/support/postgres";

/** Server settings for benchmark servers, on top of the harness defaults (fsync off, ...). */
export const BENCH_SETTINGS: Record<string, string | number> = {
  max_wal_size: "'4GB'",
  checkpoint_timeout: "'30min'",
  shared_buffers: "'128MB'",
  maintenance_work_mem: "'128MB'",
  // A re-enabled subscription's apply worker is otherwise restarted only after 5 s.
  wal_retrieve_retry_interval: "'200ms'",
};

/** The harness superuser of `server` as an Endpoint (no TLS on loopback). */
export function endpoint(server: PgServer): Endpoint {
  return {
    host: server.host,
    port: server.port,
    username: server.user,
    password: server.password,
    sslMode: "disable",
  };
}

/** Directory holding pg_dump, pg_restore and pgbench (the newest PostgreSQL client install). */
export function clientBinDir(): string {
  const tools = findDumpTools(0);
  if (tools) return path.dirname(tools.pgDump);
  try {
    return execFileSync("pg_config", ["--bindir"], { encoding: "utf8" }).trim();
  } catch {
    throw new Error(
      "no PostgreSQL client tools found: install postgresql-client (pg_dump, pgbench)",
    );
  }
}

/** Environment for a libpq tool: ours without PG* variables, plus the endpoint's (password via PGPASSWORD). */
export function toolEnv(server: PgServer, database: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("PG")) env[key] = value;
  }
  // Our sessions pin search_path to pg_catalog (PGOPTIONS); a tool running the user's own
  // workload (pgbench) runs with the server's settings, as the application would.
  const { PGOPTIONS: _pinned, ...libpq } = libpqEnv(endpoint(server), database, undefined);
  return { ...env, ...libpq };
}

/** A command line: binary, arguments, environment (secrets only in the environment). */
export interface Command {
  readonly bin: string;
  readonly args: readonly string[];
  readonly env: NodeJS.ProcessEnv;
}

/** What a finished command cost. */
export interface CommandCost {
  readonly ms: number;
  /** Peak resident set of the largest process of the command (GNU time %M), when measurable. */
  readonly peakRssBytes?: number;
  /** User + system CPU of the command and its children (GNU time %U + %S), when measurable. */
  readonly cpuMs?: number;
}

type Usage = Omit<CommandCost, "ms">;

const GNU_TIME = "/usr/bin/time";
const haveGnuTime = fs.existsSync(GNU_TIME);

interface Running {
  readonly child: ChildProcess;
  readonly exited: Promise<Usage>;
}

function launch(
  command: Command,
  stdin: "ignore" | Readable,
  stdout: "ignore" | "pipe",
  secrets: readonly string[],
): Running {
  const usageFile = haveGnuTime
    ? path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-bench-")), "usage")
    : undefined;
  const [bin, args] = usageFile
    ? [GNU_TIME, ["-f", "%M %U %S", "-o", usageFile, command.bin, ...command.args]]
    : [command.bin, [...command.args]];
  const child = spawn(bin, args, { env: command.env, stdio: [stdin, stdout, "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    if (stderr.length < 8_000) stderr += chunk.toString("utf8");
  });
  const exited = new Promise<Usage>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => {
      const usage = usageFile ? readUsage(usageFile) : {};
      if (usageFile) fs.rmSync(path.dirname(usageFile), { recursive: true, force: true });
      if (code === 0) return resolve(usage);
      const name = path.basename(command.bin);
      reject(new Error(`${name} failed (${code ?? signal}): ${redact(stderr.trim(), secrets)}`));
    });
  });
  return { child, exited };
}

function readUsage(file: string): Usage {
  try {
    // GNU time writes "Command exited with non-zero status N" first on failure; ours is last.
    const last = fs.readFileSync(file, "utf8").trim().split("\n").pop() ?? "";
    const [kb, user, system] = last.split(" ").map(Number);
    if (![kb, user, system].every(Number.isFinite)) return {};
    return { peakRssBytes: kb * 1024, cpuMs: (user + system) * 1000 };
  } catch {
    return {};
  }
}

function secretsOf(...commands: Command[]): string[] {
  return commands.map((c) => c.env.PGPASSWORD).filter((s): s is string => !!s);
}

/** Runs one command to completion. */
export async function runCommand(command: Command): Promise<CommandCost> {
  const started = performance.now();
  const usage = await launch(command, "ignore", "ignore", secretsOf(command)).exited;
  return { ms: performance.now() - started, ...usage };
}

/** Costs of commands run one after the other: times and CPU add up, the peak is the largest. */
export function sequential(...costs: CommandCost[]): CommandCost {
  return {
    ms: costs.reduce((sum, c) => sum + c.ms, 0),
    ...combine(costs),
  };
}

function combine(usages: Usage[]): Usage {
  const peaks = usages.map((u) => u.peakRssBytes);
  const cpus = usages.map((u) => u.cpuMs);
  return {
    peakRssBytes: peaks.every((p) => p !== undefined)
      ? Math.max(...(peaks as number[]))
      : undefined,
    cpuMs: cpus.every((c) => c !== undefined)
      ? (cpus as number[]).reduce((a, b) => a + b, 0)
      : undefined,
  };
}

/** Runs `producer | consumer` with a pipe between the two processes (the data never enters Node). */
export async function runPipeline(producer: Command, consumer: Command): Promise<CommandCost> {
  const secrets = secretsOf(producer, consumer);
  const started = performance.now();
  const left = launch(producer, "ignore", "pipe", secrets);
  const right = launch(consumer, left.child.stdout as Readable, "ignore", secrets);
  // The consumer has its own copy of the pipe; ours would hold the producer's 'close' forever.
  left.child.stdout?.destroy();
  try {
    const usages = await Promise.all([left.exited, right.exited]);
    return { ms: performance.now() - started, ...combine(usages) };
  } catch (err) {
    left.child.kill();
    right.child.kill();
    throw err;
  }
}

/** Peak RSS (sampled every 50 ms, and at stop) and CPU time of this process while a phase runs. */
export class ProcessSampler {
  private peak = process.memoryUsage.rss();
  private readonly cpuStart = process.cpuUsage();
  private readonly timer: NodeJS.Timeout;

  constructor() {
    this.timer = setInterval(() => this.sample(), 50);
    this.timer.unref();
  }

  private sample(): void {
    this.peak = Math.max(this.peak, process.memoryUsage.rss());
  }

  /** Stops sampling; returns the phase's peak RSS and the CPU this process used meanwhile. */
  stop(): Usage & { peakRssBytes: number; cpuMs: number } {
    clearInterval(this.timer);
    this.sample();
    const cpu = process.cpuUsage(this.cpuStart);
    return { peakRssBytes: this.peak, cpuMs: (cpu.user + cpu.system) / 1000 };
  }
}

export const mb = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);

/** The median of `values` (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Seconds with one decimal (two below ten seconds). */
export const secs = (ms: number): string => (ms / 1000).toFixed(ms < 10_000 ? 2 : 1);

/** Rounded rate per second, e.g. "123,456". */
export const perSecond = (count: number, ms: number): string =>
  Math.round(count / (ms / 1000)).toLocaleString("en-US");

/** A fixed-width text table; the first column left-aligned, the others right-aligned. */
export function formatTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  return [line(headers), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** A positive integer option, with a message naming the option when it is not one. */
export function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value.replace(/_/g, ""));
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`--${name} must be a positive integer, got "${value}"`);
  return n;
}

/** Short description of the machine, for the results. */
export function machine(): string {
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  return `${os.cpus().length} × ${cpu.trim()}, ${mb(os.totalmem())} MB RAM, node ${process.version}`;
}

/**
 * Runs a bench's main: errors print their message and exit 1, servers are stopped at the end, and
 * a run whose event loop empties before main settles (a lost callback) fails instead of passing.
 */
export function runBench(main: () => Promise<void>, stopServers: () => Promise<void>): void {
  let settled = false;
  process.on("beforeExit", () => {
    if (!settled) {
      settled = true;
      console.error("bench ended without finishing (the event loop ran empty)");
      process.exitCode = 1;
    }
  });
  main()
    .catch((err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exitCode = 1;
    })
    .finally(async () => {
      await stopServers();
      settled = true;
    });
}
