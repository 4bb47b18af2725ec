// The pgmigrate command line on real servers, driven only through `node dist/provider/cli/main.js`:
// an online migration from create to cutover, a killed worker brought back, the list grid,
// every bad-input exit code, and no password in ps, control tables, worker log or --json output.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { MigrationListItem } from "../../provider/api/index";
import type { DbDetails, MigrationOutputs } from "../../provider/spec/types";
import { compareDatabases } from "../support/checksum";
import { loadFixture, writeWorkload, type WorkloadCounts } from "../support/fixture";
import { count } from "../support/online";
import { startPostgres, type PgServer } from "../support/postgres";
import { until } from "../support/wait";
import { killWorkers, processGone, workerPids } from "../support/workers";

const MAIN = path.resolve(__dirname, "../../provider/cli/main.js");

interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI; passwords only ever travel in `env`. */
function cli(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 240_000,
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Every change of the workload is counted (a cross-partition UPDATE arrives as a DELETE and an
 * INSERT, cascades add more, so only the total is exact), and each kind of counter rose.
 */
function caughtUp(before: DbDetails, now: DbDetails, counts: WorkloadCounts): boolean {
  const total = (d: DbDetails): number =>
    d.cdcInsertCounter + d.cdcUpdateCounter + d.cdcDeleteCounter;
  return (
    total(now) >= total(before) + counts.inserts + counts.updates + counts.deletes &&
    (counts.inserts === 0 || now.cdcInsertCounter > before.cdcInsertCounter) &&
    (counts.updates === 0 || now.cdcUpdateCounter > before.cdcUpdateCounter) &&
    (counts.deletes === 0 || now.cdcDeleteCounter > before.cdcDeleteCounter)
  );
}

/** Sessions of `pgmigrate runtime` processes (their control-store pool) on the target. */
async function runtimeSessions(target: PgServer): Promise<number> {
  const rows = await target.query(
    "SELECT 1 FROM pg_stat_activity WHERE application_name = 'pgmigrate-runtime'",
  );
  return rows.length;
}

/** Every row of every control table, as text. */
async function controlTablesText(target: PgServer): Promise<string> {
  const tables = await target.query<{ name: string }>(
    "SELECT quote_ident(table_name) AS name FROM information_schema.tables WHERE table_schema = 'pgmigrate'",
  );
  assert.ok(tables.length >= 4, "the control schema exists");
  let text = "";
  for (const t of tables) {
    const rows = await target.query<{ row: string }>(
      `SELECT t::text AS row FROM pgmigrate.${t.name} t`,
    );
    text += rows.map((r) => r.row).join("\n");
  }
  return text;
}

describe("pgmigrate command line", function () {
  const suffix = randomBytes(3).toString("hex");
  const online = `cli-online-${suffix}`;
  const offline = `cli-offline-${suffix}`;
  const external = `cli-external-${suffix}`;
  let source: PgServer;
  let target: PgServer;
  let dir: string;
  let server: string;
  let env: NodeJS.ProcessEnv;
  let passwords: string[];
  const transcripts: string[] = [];
  const logFiles = new Set<string>();

  /** Runs the CLI with the test's credentials in the environment and keeps the transcript. */
  async function run(
    args: readonly string[],
    extraEnv: NodeJS.ProcessEnv = {},
  ): Promise<CliResult> {
    const merged: NodeJS.ProcessEnv = { ...env, ...extraEnv };
    for (const [key, value] of Object.entries(extraEnv))
      if (value === undefined) delete merged[key];
    const result = await cli(args, merged);
    transcripts.push(result.stdout, result.stderr);
    return result;
  }

  async function showJson(name: string): Promise<MigrationOutputs> {
    const result = await run(["show", "--server", server, "--migration-name", name, "--json"]);
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as MigrationOutputs;
  }

  /** Asserts exit code 2 with exactly one line on stderr matching `pattern`. */
  async function usageError(args: readonly string[], pattern: RegExp): Promise<void> {
    const result = await run(args);
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stdout}${result.stderr}`);
    assert.equal(result.stdout, "");
    const lines = result.stderr.trim().split("\n");
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0], pattern);
    assert.ok(!/\s+at \S+ \(/.test(result.stderr), "no stack trace");
  }

  function writeProperties(file: string, properties: Record<string, unknown>): string {
    const full = path.join(dir, file);
    fs.writeFileSync(full, JSON.stringify({ properties }, null, 2), { mode: 0o600 });
    return full;
  }

  before(async () => {
    [source, target] = await Promise.all([startPostgres(), startPostgres()]);
    passwords = [source.password, target.password];
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-cli-"));
    await loadFixture(source, "orders", { rows: 200 });
    await source.query("CREATE DATABASE ticketdb");
    await source.query(
      `CREATE TABLE tickets (id int PRIMARY KEY, title text NOT NULL);
       INSERT INTO tickets SELECT i, 'ticket ' || i FROM generate_series(1, 500) i`,
      [],
      "ticketdb",
    );
    server = `postgresql://${target.user}@${target.host}:${target.port}/postgres?sslmode=disable`;
    env = {
      PGPASSWORD: target.password,
      PGMIGRATE_SOURCE_PASSWORD: source.password,
      PGPASSFILE: path.join(dir, "no-pgpass"),
    };
  });

  after(async () => {
    killWorkers([online, offline, external, `cli-cancel-${suffix}`]);
    await Promise.all([source?.stop(), target?.stop()]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    for (const file of logFiles) fs.rmSync(file, { force: true });
    // Workers created without a log directory log to <tmpdir>/pgmigrate: leave it only if used.
    for (const logDir of new Set([...logFiles].map((f) => path.dirname(f)))) {
      if (fs.existsSync(logDir) && fs.readdirSync(logDir).length === 0) fs.rmdirSync(logDir);
    }
  });

  async function rememberLogs(): Promise<void> {
    const rows = await target.query<{ worker_log: string | null }>(
      "SELECT worker_log FROM pgmigrate.migrations",
    );
    for (const r of rows) if (r.worker_log) logFiles.add(r.worker_log);
  }

  it("creates an online migration and waits until it needs the cutover", async () => {
    const props = writeProperties("online.json", {
      SourceDBServerResourceId: `${source.host}:${source.port}@${source.user}`,
      SecretParameters: { AdminCredentials: { SourceServerPassword: source.password } },
      DBsToMigrate: ["orders"],
      OverwriteDBsInTarget: "true",
      sourceType: "OnPremises",
      sslMode: "Disable",
      SetupLogicalReplicationOnSourceDbIfNeeded: "true",
      Cutover: false,
      runtime: { logDir: path.join(dir, "worker-logs") },
    });
    const result = await run([
      "create",
      "--server",
      server,
      "--migration-name",
      online,
      "--migration-mode",
      "online",
      "--properties",
      props,
      "--wait",
      "--json",
    ]);
    assert.equal(result.code, 0, result.stderr);
    const outputs = JSON.parse(result.stdout) as MigrationOutputs;
    assert.equal(outputs.migrationName, online);
    assert.equal(outputs.state, "WaitingForUserAction");
    assert.equal(outputs.substate, "WaitingForCutoverTrigger");
    assert.equal(outputs.migrationMode, "Online");
    const shown = await showJson(online);
    assert.equal(shown.state, "WaitingForUserAction");
    assert.equal(shown.substate, "WaitingForCutoverTrigger");
    assert.equal(workerPids(online).length, 1, "one worker serves the migration");
    await rememberLogs();
  });

  it("replicates writes: counters rise and latency falls to ~0", async () => {
    const before = (await showJson(online)).dbDetails.orders;
    const counts = await writeWorkload(source, "orders", { transactions: 15 });
    await until(() => showJson(online), {
      what: `replication to catch up with ${JSON.stringify(counts)}`,
      accept: (last) =>
        caughtUp(before, last.dbDetails.orders, counts) &&
        last.dbDetails.orders.incomingChanges === 0 &&
        last.latencySeconds !== null &&
        last.latencySeconds < 5,
      timeoutMs: 90_000,
      intervalMs: 1000,
    });
  });

  it("keeps passwords out of ps, the control tables and the worker's log", async () => {
    const ps = execFileSync("ps", ["-eo", "args"], { encoding: "utf8" });
    assert.ok(
      ps.includes(`--migration-name ${online}`),
      "ps shows which migration a worker serves",
    );
    await rememberLogs();
    const tables = await controlTablesText(target);
    assert.ok(logFiles.size > 0, "the worker's log file is recorded");
    for (const password of passwords) {
      assert.ok(!ps.includes(password), "no password in ps output");
      assert.ok(!tables.includes(password), "no password in the control tables");
      for (const log of logFiles) {
        assert.ok(!fs.readFileSync(log, "utf8").includes(password), `no password in ${log}`);
      }
    }
  });

  it("brings a killed worker back on show, and the new worker carries on", async () => {
    const before = (await showJson(online)).dbDetails.orders;
    const [killed] = workerPids(online);
    process.kill(killed, "SIGKILL");
    await processGone(killed, "the killed worker to die");
    const counts = await writeWorkload(source, "orders", { transactions: 5 });
    // The dead worker is noticed at once, long before its heartbeat is stale, although its
    // spawner has exited and nobody reaps it (it stays a zombie where PID 1 reaps nothing).
    // Without the source's password (the control store keeps none) show warns, and still shows.
    const warned = await run(["show", "--server", server, "--migration-name", online, "--json"], {
      PGMIGRATE_SOURCE_PASSWORD: undefined,
    });
    assert.equal(warned.code, 0, warned.stderr);
    assert.equal((JSON.parse(warned.stdout) as MigrationOutputs).migrationName, online);
    assert.match(
      warned.stderr,
      /warning: .*cannot be restarted from here: set PGMIGRATE_SOURCE_PASSWORD/,
    );
    assert.deepEqual(workerPids(online), []);
    const shown = await until(
      async () => {
        const result = await run(["show", "--server", server, "--migration-name", online]);
        assert.equal(result.code, 0, result.stderr);
        assert.match(result.stdout, /Status:\s+(WaitingForUserAction|InProgress)/);
        return result;
      },
      {
        what: "show to start a new worker",
        accept: (result) => /started a new worker/.test(result.stderr),
        intervalMs: 2000,
      },
    );
    assert.match(shown.stderr, /started a new worker/);
    const revived = workerPids(online);
    assert.equal(revived.length, 1);
    assert.notEqual(revived[0], killed);
    // The successor logs where the migration was created to log.
    const [{ worker_log: log }] = await target.query<{ worker_log: string }>(
      "SELECT worker_log FROM pgmigrate.migrations WHERE name = $1",
      [online],
    );
    assert.equal(path.dirname(log), path.join(dir, "worker-logs"));
    assert.match(path.basename(log), new RegExp(`^${online}-[0-9a-f]{10}\\.log$`));
    await until(() => showJson(online), {
      what: `the new worker to carry on with ${JSON.stringify(counts)}`,
      accept: (last) =>
        last.state === "WaitingForUserAction" &&
        caughtUp(before, last.dbDetails.orders, counts) &&
        last.dbDetails.orders.incomingChanges === 0,
      timeoutMs: 120_000,
      intervalMs: 1000,
    });
    await rememberLogs();
  });

  it("refuses bad input with one line and exit code 2", async () => {
    const broken = path.join(dir, "broken.json");
    fs.writeFileSync(broken, `{"properties": {"DBsToMigrate": ["a",], "x": "${source.password}"}}`);
    const unknown = writeProperties("unknown.json", {
      DBsToMigrate: ["ticketdb"],
      Colour: "blue",
      Flavour: 1,
    });
    const duplicate = writeProperties("dup.json", {
      SourceDBServerResourceId: `${source.host}:${source.port}@${source.user}`,
      DBsToMigrate: ["ticketdb"],
      sslMode: "disable",
    });
    const create = (name: string, props: string): string[] => [
      "create",
      "--server",
      server,
      "--migration-name",
      name,
      "--properties",
      props,
    ];
    const column = fs.readFileSync(broken, "utf8").indexOf(",]") + 2;
    await usageError(
      create("cli-x", broken),
      new RegExp(`broken\\.json:1:${column}: malformed JSON`),
    );
    await usageError(
      create("cli-x", unknown),
      /unknown properties "properties\.Colour", "properties\.Flavour"/,
    );
    await usageError(create("Bad_Name", duplicate), /migration name "Bad_Name" may contain only/);
    await usageError(
      create(online, duplicate),
      new RegExp(`"${online}" is already running .* different settings`),
    );
    await usageError(
      ["show", "--server", server, "--migration-name", "nope"],
      new RegExp(`no migration named nope on ${target.host}:${target.port}`),
    );
    await usageError(
      ["update", "--server", server, "--migration-name", online],
      /exactly one of --cutover or --cancel/,
    );
    await usageError(["list", "--server", server, "--bogus"], /unknown option '--bogus'/);
  });

  it("lists migrations newest first with the reference service's columns", async () => {
    const props = writeProperties("offline.json", {
      SourceDBServerResourceId: `${source.host}:${source.port}@${source.user}`,
      DBsToMigrate: ["ticketdb"],
      sslMode: "disable",
      sourceType: "AWS_RDS",
    });
    const created = await run([
      "create",
      "--server",
      server,
      "--migration-name",
      offline,
      "--properties",
      props,
      "--wait",
      "--json",
    ]);
    assert.equal(created.code, 0, created.stderr);
    assert.equal((JSON.parse(created.stdout) as MigrationOutputs).state, "Succeeded");
    await rememberLogs();

    const all = await run(["list", "--server", server, "--filter", "All", "--json"]);
    assert.equal(all.code, 0, all.stderr);
    const items = JSON.parse(all.stdout) as MigrationListItem[];
    assert.deepEqual(
      items.map((m) => m.name),
      [offline, online],
    );
    const grid = await run(["list", "--server", server, "--filter", "all"]);
    const [header, first, second] = grid.stdout.trimEnd().split("\n");
    assert.match(
      header,
      /^Name\s+Status\s+Migration mode\s+Migration type\s+Source server\s+Source server type\s+Databases\s+Duration\s+Start time$/,
    );
    assert.match(
      first,
      new RegExp(
        `^${offline}\\s+Succeeded\\s+Offline\\s+ValidateAndMigrate\\s+${source.host}:${source.port}\\s+AWS_RDS\\s+ticketdb\\s`,
      ),
    );
    assert.match(
      second,
      new RegExp(
        `^${online}\\s+WaitingForUserAction\\s+Online\\s+ValidateAndMigrate\\s+${source.host}:${source.port}\\s+OnPremises\\s+orders\\s`,
      ),
    );
    // The target password found the libpq way, in a password file.
    const pgpass = path.join(dir, "pgpass");
    fs.writeFileSync(
      pgpass,
      `# test\n${target.host}:${target.port}:*:${target.user}:${target.password}\n`,
      {
        mode: 0o600,
      },
    );
    const active = await run(["list", "--server", server, "--json"], {
      PGPASSWORD: undefined,
      PGPASSFILE: pgpass,
    });
    assert.equal(active.code, 0, active.stderr);
    assert.deepEqual(
      (JSON.parse(active.stdout) as MigrationListItem[]).map((m) => m.name),
      [online],
    );

    await usageError(
      ["update", "--server", server, "--migration-name", offline, "--cancel"],
      /already ended \(Succeeded\)/,
    );
    await usageError(
      ["update", "--server", server, "--migration-name", offline, "--cutover"],
      /already ended/,
    );
  });

  it("never starts a local worker for an external runtime: it prints the command to run", async () => {
    await source.query("CREATE DATABASE extdb");
    await source.query(
      "CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes SELECT i, 'n' || i FROM generate_series(1, 300) i",
      [],
      "extdb",
    );
    const props = writeProperties("external.json", {
      SourceDBServerResourceId: `${source.host}:${source.port}@${source.user}`,
      DBsToMigrate: ["extdb"],
      sslMode: "disable",
      runtime: { kind: "external" },
    });
    const created = await run([
      "create",
      "--server",
      server,
      "--migration-name",
      external,
      "--properties",
      props,
    ]);
    assert.equal(created.code, 0, created.stderr);
    assert.deepEqual(workerPids(external), []);
    // Nobody has started `pgmigrate runtime` for a minute.
    await target.query(
      "UPDATE pgmigrate.migrations SET created_at = now() - interval '1 minute' WHERE name = $1",
      [external],
    );
    const shown = await run(["show", "--server", server, "--migration-name", external]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.doesNotMatch(shown.stderr, /started a new worker/);
    assert.deepEqual(workerPids(external), [], "no local worker for an external runtime");
    const command = /run `pgmigrate (runtime --server \S+ --migration-name \S+)`/.exec(
      shown.stderr,
    );
    assert.ok(command, shown.stderr);

    // The user runs exactly that (passwords in the environment); it migrates and exits.
    const args = command[1].split(" ");
    assert.deepEqual(args.slice(3), ["--migration-name", external]);
    const worker = await run(args, { PGMIGRATE_TARGET_PASSWORD: target.password });
    assert.equal(worker.code, 0, worker.stderr);
    const done = await showJson(external);
    assert.equal(done.state, "Succeeded", JSON.stringify(done));
    assert.deepEqual((await compareDatabases(source, "extdb", target, "extdb")).differences, []);
  });

  it("cancels an online migration with update --cancel and rolls the target back; delete forgets it", async () => {
    const name = `cli-cancel-${suffix}`;
    await source.query("CREATE DATABASE canceldb");
    await source.query(
      "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100)",
      [],
      "canceldb",
    );
    const props = writeProperties("cancel.json", {
      SourceDBServerResourceId: `${source.host}:${source.port}@${source.user}`,
      DBsToMigrate: ["canceldb"],
      sslMode: "disable",
      MigrationMode: "Online",
    });
    const created = await run([
      "create",
      "--server",
      server,
      "--migration-name",
      name,
      "--properties",
      props,
      "--wait",
    ]);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /Status:\s+WaitingForUserAction \(WaitingForCutoverTrigger\)/);
    // Without --wait: says the cancel was requested, then the state it has now.
    const requested = await run([
      "update",
      "--server",
      server,
      "--migration-name",
      name,
      "--cancel",
    ]);
    assert.equal(requested.code, 0, requested.stderr);
    assert.match(
      requested.stderr,
      /^pgmigrate: warning: canceling rolls the target back: dropping the target database canceldb on \S+ \(created by this migration\)/m,
    );
    assert.match(
      requested.stdout,
      new RegExp(`^cancel requested for migration ${name}; follow it with pgmigrate watch`),
    );
    await until(async () => (await showJson(name)).state === "Canceled", {
      what: "the worker to carry out the cancel",
    });
    const slots = await source.query(
      "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'pgmigrate%' AND database = 'canceldb'",
    );
    assert.deepEqual(slots, []);
    const dbs = await target.query("SELECT datname FROM pg_database WHERE datname = 'canceldb'");
    assert.deepEqual(dbs, [], "the database the migration created is dropped");
    await usageError(
      ["update", "--server", server, "--migration-name", name, "--cancel"],
      /already ended \(Canceled\)/,
    );
    await rememberLogs();

    // The reference service's shape, for scripts written against `az ... migration show`.
    const ours = await showJson(name);
    const azure = await run([
      "show",
      "--server",
      server,
      "--migration-name",
      name,
      "--output",
      "azure",
    ]);
    assert.equal(azure.code, 0, azure.stderr);
    const shown = JSON.parse(azure.stdout) as {
      name: string;
      type: string;
      properties: {
        migrationMode: string;
        currentStatus: {
          state: string;
          error: string;
          currentSubStateDetails: {
            currentSubState: string;
            dbDetails: Record<
              string,
              { databaseName: string; migrationState: string; fullLoadCompletedTables: number }
            >;
          };
        };
      };
    };
    assert.equal(shown.name, name);
    assert.equal(shown.type, "Microsoft.DBforPostgreSQL/flexibleServers/migrations");
    assert.equal(shown.properties.migrationMode, "Online");
    assert.equal(shown.properties.currentStatus.state, "Canceled");
    assert.equal(
      shown.properties.currentStatus.currentSubStateDetails.currentSubState,
      ours.substate,
    );
    const details = shown.properties.currentStatus.currentSubStateDetails.dbDetails.canceldb;
    assert.equal(details.databaseName, "canceldb");
    assert.equal(details.migrationState, ours.dbDetails.canceldb.migrationState);
    assert.equal(details.fullLoadCompletedTables, ours.dbDetails.canceldb.fullLoadCompletedTables);

    // delete: refuses a migration still running, forgets ended ones and never touches data.
    await usageError(
      ["delete", "--server", server, "--migration-name", online],
      new RegExp(
        `migration ${online} is WaitingForUserAction: delete removes only the record of an ended migration`,
      ),
    );
    const tickets = () => count(target, "ticketdb", "SELECT count(*) AS n FROM tickets");
    assert.equal(await tickets(), 500);
    for (const ended of [name, offline]) {
      const deleted = await run(["delete", "--server", server, "--migration-name", ended]);
      assert.equal(deleted.code, 0, deleted.stderr);
      assert.match(
        deleted.stdout,
        new RegExp(`^deleted the record of migration ${ended} \\((Canceled|Succeeded)\\)`),
      );
      await usageError(
        ["show", "--server", server, "--migration-name", ended],
        /no migration named/,
      );
    }
    assert.equal(await tickets(), 500, "the offline migration's data stays");
    const free = await run([
      "check-name-availability",
      "--server",
      server,
      "--migration-name",
      offline,
      "--json",
    ]);
    assert.equal((JSON.parse(free.stdout) as { available: boolean }).available, true);
    await usageError(
      ["delete", "--server", server, "--migration-name", offline],
      /no migration named/,
    );
  });

  it("watch redraws in place on a terminal and stops on Ctrl-C", async () => {
    // `script` gives the CLI a pseudo-terminal; Ctrl-C typed into it reaches pgmigrate as SIGINT.
    // `exec`: the shell `script` starts (dash on CI does not exec a lone command) must not stay in
    // between, or it dies of the same SIGINT and `script -e` reports 130 whatever pgmigrate does.
    const command = `exec ${process.execPath} ${MAIN} watch --server '${server}' --migration-name ${online}`;
    const child = spawn("script", ["-qfec", command, "/dev/null"], {
      env: { ...process.env, ...env, COLUMNS: "120", LINES: "40" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let screen = "";
    child.stdout.on("data", (c: Buffer) => (screen += c.toString()));
    child.stderr.resume();
    const exited = new Promise<number | null>((resolve) =>
      child.on("close", (code) => resolve(code)),
    );
    // Ctrl-C once it has drawn a frame over an earlier one, showing the migration.
    const status = new RegExp(`${online}\\s+WaitingForUserAction \\(WaitingForCutoverTrigger\\)`);
    await until(() => /\x1b\[\d+F\x1b\[J/.test(screen) && status.test(screen), {
      what: "watch to redraw its screen",
      intervalMs: 100,
    });
    child.stdin.write("\x03");
    assert.equal(await exited, 0, screen);
    transcripts.push(screen);
    assert.ok(
      screen.includes("\x1b[?25l") && screen.includes("\x1b[?25h"),
      "cursor hidden, then restored",
    );
    assert.match(screen, /\x1b\[\d+F\x1b\[J/, "later frames move up over the previous one");
    assert.match(screen, status);
    assert.match(screen, /latency \d+\.\d s\s+inserts \d+\s+updates \d+\s+deletes \d+/);
  });

  it("cuts over with update --cutover --wait, leaving identical data and no slot", async () => {
    const result = await run([
      "update",
      "--server",
      server,
      "--migration-name",
      online,
      "--cutover",
      "--wait",
      "--json",
    ]);
    assert.equal(result.code, 0, result.stderr);
    const outputs = JSON.parse(result.stdout) as MigrationOutputs;
    assert.equal(outputs.state, "Succeeded");
    const comparison = await compareDatabases(source, "orders", target, "orders");
    assert.deepEqual(comparison.differences, []);
    const slots = await source.query(
      "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'pgmigrate%'",
    );
    assert.deepEqual(slots, []);
    await usageError(
      ["update", "--server", server, "--migration-name", online, "--cutover"],
      /already ended/,
    );
    const watched = await run(["watch", "--server", server, "--migration-name", online]);
    assert.equal(watched.code, 0, watched.stderr);
    assert.match(watched.stdout, /Succeeded/);
    await rememberLogs();
  });

  it("stops `pgmigrate runtime` cleanly on SIGTERM (exit 0)", async () => {
    // The migrations' own workers have exited: the sessions counted next are this runtime's.
    await until(() => runtimeSessions(target), {
      what: "earlier workers to disconnect",
      accept: (n) => n === 0,
    });
    const child = spawn(process.execPath, [MAIN, "runtime", "--server", server], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.stdout.resume();
    // Stopped once it serves: its control-store pool is open.
    await until(() => runtimeSessions(target), {
      what: "pgmigrate runtime to connect",
      accept: (n) => n > 0,
    });
    const exited = new Promise<number | null>((resolve) =>
      child.on("close", (code) => resolve(code)),
    );
    child.kill("SIGTERM");
    assert.equal(await exited, 0, stderr);
  });

  it("never printed a password, in --json output or anywhere else", () => {
    const all = transcripts.join("\n");
    assert.ok(all.length > 0);
    for (const password of passwords) assert.ok(!all.includes(password), "a password was printed");
  });
});
