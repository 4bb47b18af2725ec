// Two throwaway PostgreSQL servers for the quick start: initdb + pg_ctl from the local
// PostgreSQL installation (the one whose pg_dump the migration uses), logical replication on.
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

/** A running local server; `stop()` removes all its files. */
export interface LocalServer {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly version: number;
  stop(): void;
}

/** The newest local PostgreSQL bin directory that has both initdb and pg_dump. */
export function findBinDir(): string {
  const candidates: string[] = [];
  try {
    candidates.push(execFileSync("pg_config", ["--bindir"], { encoding: "utf8" }).trim());
  } catch {
    // no pg_config on PATH: look in the Debian layout below
  }
  const root = "/usr/lib/postgresql";
  if (fs.existsSync(root)) {
    const majors = fs.readdirSync(root).filter((d) => /^\d+$/.test(d));
    majors.sort((a, b) => Number(b) - Number(a));
    candidates.push(...majors.map((m) => path.join(root, m, "bin")));
  }
  const found = candidates.find((dir) =>
    ["initdb", "pg_ctl", "pg_dump"].every((bin) => fs.existsSync(path.join(dir, bin))),
  );
  if (!found) {
    throw new Error(
      "no local PostgreSQL found (initdb, pg_ctl, pg_dump): install it, e.g. apt-get install postgresql",
    );
  }
  return found;
}

// initdb and postgres refuse to run as root: run them as the postgres OS user then.
function osOwner(): { uid: number; gid: number } | undefined {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) return undefined;
  const line = fs
    .readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("postgres:"));
  if (!line) throw new Error("running as root, but there is no postgres OS user to run servers as");
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function run(binDir: string, bin: string, args: string[], cwd: string): void {
  const result = spawnSync(path.join(binDir, bin), args, {
    cwd,
    encoding: "utf8",
    env: { ...process.env, LC_ALL: "C.UTF-8", LANG: "C.UTF-8" },
    ...(osOwner() ?? {}),
  });
  if (result.status !== 0) {
    throw new Error(`${bin} failed: ${result.stderr || result.stdout || result.error?.message}`);
  }
}

const SETTINGS = [
  "listen_addresses = '127.0.0.1'",
  "wal_level = logical",
  "max_replication_slots = 10",
  "max_wal_senders = 10",
  "fsync = off",
  "shared_buffers = '64MB'",
];

/** Starts a server named `name` (password auth on TCP, a random superuser password). */
export async function startServer(name: string, binDir = findBinDir()): Promise<LocalServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pgmigrate-demo-${name}-`));
  const dataDir = path.join(dir, "data");
  const owner = osOwner();
  const password = randomBytes(12).toString("hex");
  let started = false;
  const stop = (): void => {
    if (started) {
      try {
        run(binDir, "pg_ctl", ["stop", "-D", dataDir, "-m", "fast", "-w"], dir);
      } catch {
        // already stopped; the files go either way
      }
      started = false;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    if (owner) fs.chownSync(dir, owner.uid, owner.gid);
    fs.chmodSync(dir, 0o700);
    const pwfile = path.join(dir, "pwfile");
    fs.writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    if (owner) fs.chownSync(pwfile, owner.uid, owner.gid);
    run(
      binDir,
      "initdb",
      [
        "-D",
        dataDir,
        "-U",
        "postgres",
        `--pwfile=${pwfile}`,
        "--auth-host=scram-sha-256",
        "--auth-local=trust",
        "--encoding=UTF8",
        "--no-sync",
      ],
      dir,
    );
    fs.rmSync(pwfile);
    fs.appendFileSync(path.join(dataDir, "postgresql.conf"), `\n${SETTINGS.join("\n")}\n`);
    const port = await freePort();
    const log = path.join(dir, "server.log");
    run(
      binDir,
      "pg_ctl",
      ["start", "-w", "-D", dataDir, "-l", log, "-o", `-p ${port} -k ${dir}`],
      dir,
    );
    started = true;
    const version = Number(/\/(\d+)\/bin/.exec(binDir)?.[1] ?? 0);
    return { name, host: "127.0.0.1", port, user: "postgres", password, version, stop };
  } catch (err) {
    stop();
    throw err;
  }
}
