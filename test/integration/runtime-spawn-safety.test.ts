// The spawner as a hostile machine sees it: a log directory planted by another local user (or a
// symlink at the log file's name) is refused, never followed, and the file the link points at is
// unchanged; a worker that cannot be started fails the call naming the cause, and the migration is
// picked up by the next call once the cause is gone. `show` prints where the log is.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { logFileName } from "../../provider/runtime/log-file";
import type { MigrationOutputs } from "../../provider/spec/types";
import { compareDatabases } from "../support/checksum";
import { runCli, type CliResult } from "../support/cli";
import { startPostgres, type PgServer } from "../support/postgres";
import { specOf } from "../support/spec";
import { until } from "../support/wait";
import { killWorkers } from "../support/workers";

const DATABASE = "safe_db";
const VICTIM_TEXT = "the operator's file, not a log\n";

/** The uid of the `postgres` OS user: "another local user" when the tests run as root. */
function otherUid(): number | undefined {
  const line = fs
    .readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("postgres:"));
  return line ? Number(line.split(":")[2]) : undefined;
}

describe("runtime spawner: private logs and failed spawns", function () {
  let source: PgServer;
  let target: PgServer;
  let dir: string;
  let victim: string;
  const names: string[] = [];

  before(async () => {
    [source, target] = await Promise.all([startPostgres(), startPostgres()]);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-spawn-safety-"));
    victim = path.join(dir, "victim.txt");
    fs.writeFileSync(victim, VICTIM_TEXT, { mode: 0o644 });
    await source.query(`CREATE DATABASE ${DATABASE}`);
    await source.query(
      `CREATE TABLE item (id int PRIMARY KEY, label text NOT NULL);
       INSERT INTO item SELECT i, 'item ' || i FROM generate_series(1, 200) i`,
      [],
      DATABASE,
    );
  });
  after(async () => {
    killWorkers(names);
    await Promise.all([source?.stop(), target?.stop()]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const server = (): string =>
    `postgresql://${target.user}@${target.host}:${target.port}/postgres?sslmode=disable`;

  function propertiesFile(name: string, logDir?: string, sourcePassword?: string): string {
    const file = path.join(dir, `${name}.json`);
    const props: Record<string, unknown> = {
      ...(sourcePassword
        ? { SecretParameters: { AdminCredentials: { SourceServerPassword: sourcePassword } } }
        : {}),
      SourceDBServerResourceId: `${source.host}:${source.port}@${source.user}`,
      DBsToMigrate: [DATABASE],
      OverwriteDBsInTarget: "true",
      sslMode: "Disable",
    };
    if (logDir) props.runtime = { logDir };
    fs.writeFileSync(file, JSON.stringify({ properties: props }), { mode: 0o600 });
    return file;
  }

  function env(stateHome: string): NodeJS.ProcessEnv {
    return {
      PGMIGRATE_SOURCE_PASSWORD: source.password,
      PGMIGRATE_TARGET_PASSWORD: target.password,
      XDG_STATE_HOME: stateHome,
    };
  }

  async function create(
    name: string,
    e: NodeJS.ProcessEnv,
    logDir?: string,
    sourcePassword?: string,
  ): Promise<CliResult> {
    names.push(name);
    return runCli(
      [
        "create",
        "--server",
        server(),
        "--migration-name",
        name,
        "--properties",
        propertiesFile(name, logDir, sourcePassword),
      ],
      e,
    );
  }

  function show(name: string, e: NodeJS.ProcessEnv, json = false): Promise<CliResult> {
    return runCli(
      ["show", "--server", server(), "--migration-name", name, ...(json ? ["--json"] : [])],
      e,
    );
  }

  /** The row's spawn bookkeeping: a failed spawn must not hold the next caller back. */
  async function spawnRow(
    name: string,
  ): Promise<{ state: string; spawned: boolean; pid: number | null }> {
    const [row] = await target.query<{ state: string; spawned: boolean; pid: number | null }>(
      `SELECT state, spawned_at IS NOT NULL AS spawned, worker_pid AS pid
         FROM pgmigrate.migrations WHERE name = $1`,
      [name],
    );
    return row;
  }

  async function succeeded(name: string, e: NodeJS.ProcessEnv): Promise<MigrationOutputs> {
    return until(
      async () => {
        const r = await show(name, e, true);
        assert.equal(r.code, 0, r.stderr);
        return JSON.parse(r.stdout) as MigrationOutputs;
      },
      { what: `${name} to succeed`, timeoutMs: 90_000, accept: (o) => o.state !== "InProgress" },
    );
  }

  async function sameData(): Promise<void> {
    const comparison = await compareDatabases(source, DATABASE, target, DATABASE);
    assert.deepEqual(comparison.differences, []);
    const [{ n }] = await target.query<{ n: string }>(
      "SELECT count(*) AS n FROM item",
      [],
      DATABASE,
    );
    assert.equal(Number(n), 200);
  }

  function logName(name: string): string {
    return logFileName(
      specOf(source, target, { migrationName: name, databases: [DATABASE], runtime: {} }),
    );
  }

  it("refuses a log directory another user planted, leaves the victim file alone, and resumes once it is gone", async () => {
    const name = "planted-dir";
    const stateHome = path.join(dir, "state-planted");
    fs.mkdirSync(stateHome, { mode: 0o700 });
    const planted = path.join(stateHome, "pgmigrate");
    fs.mkdirSync(planted);
    fs.chmodSync(planted, 0o777);
    const uid = otherUid();
    if (process.getuid?.() === 0 && uid !== undefined) fs.chownSync(planted, uid, uid);
    fs.symlinkSync(victim, path.join(planted, logName(name)));
    fs.symlinkSync(victim, path.join(planted, `${name}.log`));

    const refused = await create(name, env(stateHome));
    assert.notEqual(refused.code, 0, refused.stdout);
    assert.match(
      refused.stderr,
      /the worker log directory .*state-planted\/pgmigrate (belongs to uid \d+, not to this user|is open to other users)/,
    );
    assert.doesNotMatch(refused.stderr, /reading the pgmigrate control store/);
    assert.equal(fs.readFileSync(victim, "utf8"), VICTIM_TEXT);
    // Nothing runs, and nothing waits for a worker that never started.
    assert.deepEqual(await spawnRow(name), { state: "InProgress", spawned: false, pid: null });

    fs.rmSync(planted, { recursive: true, force: true });
    const shown = await show(name, env(stateHome));
    assert.equal(shown.code, 0, shown.stderr);
    const log = path.join(planted, logName(name));
    assert.match(
      shown.stdout,
      new RegExp(`^Log: +${log.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`, "m"),
    );
    const done = await succeeded(name, env(stateHome));
    assert.equal(done.state, "Succeeded", done.error ?? "");
    assert.equal(done.workerLog, log);
    assert.equal(fs.statSync(planted).mode & 0o777, 0o700);
    assert.equal(fs.statSync(log).mode & 0o777, 0o600);
    assert.ok(fs.readFileSync(log, "utf8").length > 0);
    assert.equal(fs.readFileSync(victim, "utf8"), VICTIM_TEXT);
    await sameData();
  });

  it("does not follow a symlink at the log file's name in the user's own log directory", async () => {
    const name = "planted-link";
    const logDir = path.join(dir, "own-logs");
    fs.mkdirSync(logDir, { mode: 0o700 });
    const link = path.join(logDir, logName(name));
    fs.symlinkSync(victim, link);

    const refused = await create(name, env(dir), logDir);
    assert.notEqual(refused.code, 0, refused.stdout);
    assert.match(refused.stderr, /cannot open the worker log file .*: it is a symbolic link/);
    assert.equal(fs.readFileSync(victim, "utf8"), VICTIM_TEXT);
    assert.deepEqual(await spawnRow(name), { state: "InProgress", spawned: false, pid: null });

    fs.unlinkSync(link);
    const done = await succeeded(name, env(dir));
    assert.equal(done.state, "Succeeded", done.error ?? "");
    assert.equal(done.workerLog, link);
    assert.ok(fs.lstatSync(link).isFile());
    assert.equal(fs.readFileSync(victim, "utf8"), VICTIM_TEXT);
  });

  it("fails a spawn the OS refuses (E2BIG) with its cause, and the next call starts the worker", async () => {
    const name = "too-big";
    const stateHome = path.join(dir, "state-big");
    fs.mkdirSync(stateHome, { mode: 0o700 });
    // A password (from the properties file) that makes one environment string of the worker
    // longer than Linux allows (MAX_ARG_STRLEN, 128 KiB).
    const refused = await create(name, env(stateHome), undefined, "p".repeat(200_000));
    assert.notEqual(refused.code, 0, refused.stdout);
    assert.match(
      refused.stderr,
      /could not start a local worker: its environment, which carries the passwords, is larger than the operating system allows \(E2BIG\)/,
    );
    assert.doesNotMatch(refused.stderr, /reading the pgmigrate control store|p{100}/);
    assert.deepEqual(await spawnRow(name), { state: "InProgress", spawned: false, pid: null });
    const [event] = await target.query<{ message: string }>(
      "SELECT message FROM pgmigrate.events WHERE migration = $1 AND level = 'error'",
      [name],
    );
    assert.match(event.message, /E2BIG/);

    const done = await succeeded(name, env(stateHome));
    assert.equal(done.state, "Succeeded", done.error ?? "");
    await sameData();
  });

  it("tells a CREATEDB-only target user to name a control database of its own", async () => {
    const password = "creator-secret-5";
    await target.query(`CREATE ROLE creator LOGIN CREATEDB PASSWORD '${password}'`);
    const as = (database: string): string =>
      `postgresql://creator@${target.host}:${target.port}/${database}?sslmode=disable`;
    const e = { ...env(dir), PGMIGRATE_TARGET_PASSWORD: password };
    const args = (database: string, name: string): string[] => {
      names.push(name);
      return [
        "create",
        "--server",
        as(database),
        "--migration-name",
        name,
        "--migration-option",
        "Validate",
        "--properties",
        propertiesFile(name),
        "--wait",
      ];
    };
    const refused = await runCli(args("postgres", "no-control"), e);
    assert.notEqual(refused.code, 0);
    assert.match(
      refused.stderr,
      // Installed there by an earlier test's superuser (may not use it) or not yet (may not
      // create it): the same advice either way.
      /target user "creator" may not (create|use) the pgmigrate control schema in database "postgres" \(permission denied for (database postgres|schema pgmigrate)\): set controlDatabase to a database the user owns/,
    );
    assert.ok(!refused.stderr.includes(password));

    // As advised: a database of its own, which pgmigrate creates.
    const validated = await runCli(args("pgmigrate", "own-control"), e);
    assert.equal(validated.code, 0, validated.stderr + validated.stdout);
    const [owner] = await target.query<{ owner: string }>(
      "SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = 'pgmigrate'",
    );
    assert.equal(owner.owner, "creator");
    const [row] = await target.query<{ state: string }>(
      "SELECT state FROM pgmigrate.migrations WHERE name = 'own-control'",
      [],
      "pgmigrate",
    );
    assert.equal(row.state, "Succeeded");
  });
});
