// Locates pg_dump/pg_restore binaries new enough for a source server: validation checks them,
// the clone runs them. The newest suitable pair wins (a newer pg_dump reads older servers).
// Each run gets a built environment: libpq settings and a password only when it connects.
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { Endpoint } from "../spec/types";
import { childEnv } from "./child-env";
import { libpqEnv } from "./connect";
import { redact } from "./redact";
import { libpqRootCert } from "./trust";

/** A pg_dump/pg_restore pair from the same installation. */
export interface DumpTools {
  readonly pgDump: string;
  readonly pgRestore: string;
  /** Major version of pg_dump (9 for 9.x, else e.g. 15). */
  readonly major: number;
}

/** Where Debian and Ubuntu install each major version (/usr/lib/postgresql/<N>/bin). */
const DEBIAN_ROOT = "/usr/lib/postgresql";

/** The installed majors under DEBIAN_ROOT, newest first (any number: 18, 19, … included). */
function debianMajors(): number[] {
  try {
    return fs
      .readdirSync(DEBIAN_ROOT)
      .filter((name) => /^\d+(\.\d+)?$/.test(name))
      .map(Number)
      .sort((a, b) => b - a);
  } catch {
    return [];
  }
}

const versionCache = new Map<string, number | undefined>();

/** Major version from `pg_dump (PostgreSQL) 15.18 (Debian ...)`; 9 for `9.6.24`. */
export function parseToolMajor(versionOutput: string): number | undefined {
  const match = /\(PostgreSQL\)\s+(\d+)/.exec(versionOutput);
  return match ? Number(match[1]) : undefined;
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function toolMajor(file: string): number | undefined {
  if (versionCache.has(file)) return versionCache.get(file);
  let major: number | undefined;
  try {
    const out = execFileSync(file, ["--version"], {
      encoding: "utf8",
      timeout: 5_000,
      stdio: ["ignore", "pipe", "ignore"],
      env: childEnv(),
    });
    major = parseToolMajor(out);
  } catch {
    major = undefined;
  }
  versionCache.set(file, major);
  return major;
}

function pgConfigBindir(): string | undefined {
  try {
    const out = execFileSync("pg_config", ["--bindir"], {
      encoding: "utf8",
      timeout: 5_000,
      stdio: ["ignore", "pipe", "ignore"],
      env: childEnv(),
    });
    return out.trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Directories that may hold pg_dump, most specific first (duplicates removed). */
function candidateDirs(): string[] {
  const dirs: string[] = [];
  const bindir = pgConfigBindir();
  if (bindir) dirs.push(bindir);
  for (const n of debianMajors()) dirs.push(`${DEBIAN_ROOT}/${n}/bin`);
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir) dirs.push(dir);
  }
  return [...new Set(dirs.map((d) => path.resolve(d)))];
}

/**
 * The newest pg_dump/pg_restore pair (same directory, same major) whose major is at least
 * `minMajor`, looking in `pg_config --bindir`, /usr/lib/postgresql/<N>/bin and PATH.
 * Undefined when none qualifies.
 */
export function findDumpTools(minMajor: number): DumpTools | undefined {
  let best: DumpTools | undefined;
  for (const dir of candidateDirs()) {
    const pgDump = path.join(dir, "pg_dump");
    const pgRestore = path.join(dir, "pg_restore");
    if (!isExecutable(pgDump) || !isExecutable(pgRestore)) continue;
    const major = toolMajor(pgDump);
    if (major === undefined || major < minMajor) continue;
    if (toolMajor(pgRestore) !== major) continue;
    if (!best || major > best.major) best = { pgDump, pgRestore, major };
  }
  return best;
}

/** The newest pair found at all, whatever its major (to tell the user what we did find). */
export function newestDumpTools(): DumpTools | undefined {
  return findDumpTools(0);
}

/** libpq conninfo naming only the database; host, user and password come from the environment. */
export function dbnameConninfo(database: string): string {
  return `dbname='${database.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

/** Where a tool run connects: the server, the database, and a private directory of ours. */
export interface ToolConnection {
  readonly endpoint: Endpoint;
  readonly database: string;
  /** A directory only we can read (mkdtemp), removed by the caller: the CA bundle goes there. */
  readonly privateDir: string;
}

/**
 * The environment of a tool run: the base environment plus, when it connects, the server's
 * libpq settings, its password and the root certificate our own connections trust. A tool that
 * does not connect (`pg_restore --list`) gets no password.
 */
export async function toolEnv(connection?: ToolConnection): Promise<NodeJS.ProcessEnv> {
  if (!connection) return childEnv();
  const { endpoint, database, privateDir } = connection;
  const rootCert = await libpqRootCert(endpoint, privateDir);
  return childEnv({
    // The password file is a path, not a secret: libpq falls back to it without a password.
    PGPASSFILE: process.env.PGPASSFILE,
    ...libpqEnv(endpoint, database, rootCert),
  });
}

const STDERR_LIMIT = 8_000;

/**
 * Runs pg_dump/pg_restore with `env` (see toolEnv); stdout is returned, a failure carries stderr
 * with `secrets` redacted.
 */
export async function runTool(
  bin: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  secrets: readonly (string | undefined)[],
  signal?: AbortSignal,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env, stdio: ["ignore", "pipe", "pipe"], signal });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      if (stderr.length < STDERR_LIMIT) stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code, killedBy) => {
      if (code === 0) return resolve(stdout);
      const tool = path.basename(bin);
      const why = redact(stderr.trim().slice(0, STDERR_LIMIT), secrets);
      reject(new Error(`${tool} exited with ${code ?? killedBy}: ${why}`));
    });
  });
}
