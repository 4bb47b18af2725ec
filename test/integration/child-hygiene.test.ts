// Least privilege for the processes we start: the worker's environment is built, not inherited
// (a caller's FOO_SECRET or stray PGSERVICE never reaches it), and each pg_dump/pg_restore gets
// only what it needs: the password of the server it connects to, and none at all for
// `--version` and `pg_restore --list`. Read from /proc/<pid>/environ of the live worker and of
// every tool run, through a PATH shim that records its environment and runs the real tool.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { findDumpTools } from "../../provider/pg/dump-tools";
import type { MigrationOutputs } from "../../provider/spec/types";
import { compareDatabases } from "../support/checksum";
import { runCli } from "../support/cli";
import { startPostgres, type PgServer } from "../support/postgres";
import { until } from "../support/wait";
import { killWorkers } from "../support/workers";

const DATABASE = "hygiene_db";
const NAME = "hygiene";
const CALLER_SECRET = "foo-secret-value-4711";

/** One recorded tool run: its arguments and environment. */
interface ToolRun {
  readonly tool: string;
  readonly args: string;
  readonly env: Map<string, string>;
}

function readEnviron(file: string): Map<string, string> {
  const env = new Map<string, string>();
  for (const entry of fs.readFileSync(file, "utf8").split("\0")) {
    const eq = entry.indexOf("=");
    if (eq > 0) env.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  return env;
}

describe("child processes get only what they need", function () {
  let source: PgServer;
  let target: PgServer;
  let dir: string;
  let shim: string;
  let calls: string;

  before(async () => {
    [source, target] = await Promise.all([startPostgres(), startPostgres()]);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-hygiene-"));
    shim = path.join(dir, "bin");
    calls = path.join(dir, "calls");
    fs.mkdirSync(shim);
    fs.mkdirSync(calls);
    const real = findDumpTools(0);
    assert.ok(real, "pg_dump and pg_restore are needed");
    // pg_config names the shim directory as the bindir, so the engine picks these tools.
    fs.writeFileSync(path.join(shim, "pg_config"), `#!/bin/sh\necho ${shim}\n`, { mode: 0o755 });
    for (const [tool, bin] of [
      ["pg_dump", real.pgDump],
      ["pg_restore", real.pgRestore],
    ]) {
      fs.writeFileSync(
        path.join(shim, tool),
        `#!/bin/sh\ncp /proc/$$/environ ${calls}/${tool}.$$.env\n` +
          `printf '%s ' "$@" > ${calls}/${tool}.$$.args\nexec ${bin} "$@"\n`,
        { mode: 0o755 },
      );
    }
    await source.query(`CREATE DATABASE ${DATABASE}`);
    await source.query(
      `CREATE TABLE note (id int PRIMARY KEY, body text NOT NULL);
       INSERT INTO note SELECT i, 'note ' || i FROM generate_series(1, 300) i`,
      [],
      DATABASE,
    );
  });
  after(async () => {
    killWorkers([NAME]);
    await Promise.all([source?.stop(), target?.stop()]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const server = (): string =>
    `postgresql://${target.user}@${target.host}:${target.port}/postgres?sslmode=disable`;

  function callerEnv(): NodeJS.ProcessEnv {
    return {
      PATH: `${shim}${path.delimiter}${process.env.PATH ?? ""}`,
      PGMIGRATE_SOURCE_PASSWORD: source.password,
      PGMIGRATE_TARGET_PASSWORD: target.password,
      XDG_STATE_HOME: path.join(dir, "state"),
      // Nothing of the caller's own must reach a child: a secret, and a libpq variable that
      // would redirect pg_dump to a service that does not exist.
      FOO_SECRET: CALLER_SECRET,
      PGSERVICE: "pgmigrate_no_such_service",
    };
  }

  function recordedRuns(): ToolRun[] {
    return fs
      .readdirSync(calls)
      .filter((f) => f.endsWith(".env"))
      .map((f) => {
        const base = f.slice(0, -".env".length);
        const argsFile = path.join(calls, `${base}.args`);
        return {
          tool: base.split(".")[0],
          args: fs.existsSync(argsFile) ? fs.readFileSync(argsFile, "utf8") : "",
          env: readEnviron(path.join(calls, f)),
        };
      });
  }

  async function outputs(): Promise<MigrationOutputs> {
    const r = await runCli(
      ["show", "--server", server(), "--migration-name", NAME, "--json"],
      callerEnv(),
    );
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as MigrationOutputs;
  }

  it("gives the worker a built environment and each tool only its own server's password", async () => {
    const properties = path.join(dir, "props.json");
    fs.writeFileSync(
      properties,
      JSON.stringify({
        properties: {
          SourceDBServerResourceId: `${source.host}:${source.port}@${source.user}`,
          DBsToMigrate: [DATABASE],
          OverwriteDBsInTarget: "true",
          sslMode: "Disable",
        },
      }),
      { mode: 0o600 },
    );
    const created = await runCli(
      [
        "create",
        "--server",
        server(),
        "--migration-name",
        NAME,
        "--migration-mode",
        "online",
        "--properties",
        properties,
      ],
      callerEnv(),
    );
    assert.equal(created.code, 0, created.stderr);
    const waiting = await until(outputs, {
      what: "the base copy",
      timeoutMs: 90_000,
      accept: (o) => o.state !== "InProgress",
    });
    assert.equal(waiting.state, "WaitingForUserAction", waiting.error ?? "");

    // The live worker: what it reads, and nothing else of the caller's.
    const [lease] = await target.query<{ pid: number }>(
      "SELECT worker_pid AS pid FROM pgmigrate.migrations WHERE name = $1",
      [NAME],
    );
    const worker = readEnviron(`/proc/${lease.pid}/environ`);
    assert.equal(worker.get("PGMIGRATE_SOURCE_PASSWORD"), source.password);
    assert.equal(worker.get("PGMIGRATE_TARGET_PASSWORD"), target.password);
    assert.equal(worker.get("PATH"), callerEnv().PATH);
    assert.ok(
      !worker.has("FOO_SECRET") && !worker.has("PGSERVICE") && !worker.has("XDG_STATE_HOME"),
    );
    assert.ok(
      [...worker.keys()].every((k) =>
        /^(PATH|HOME|LANG|LANGUAGE|TZ|TMPDIR|NODE_EXTRA_CA_CERTS|PGPASSFILE|PGMIGRATE_(SOURCE|TARGET)_PASSWORD|LC_\w+)$/.test(
          k,
        ),
      ),
      [...worker.keys()].join(" "),
    );

    const runs = recordedRuns();
    const kinds = (tool: string, test: (args: string) => boolean): ToolRun[] =>
      runs.filter((r) => r.tool === tool && test(r.args));
    const versions = runs.filter((r) => r.args.trim() === "--version");
    const probe = kinds("pg_dump", (a) => a.includes("--exclude-schema=*"));
    const dump = kinds("pg_dump", (a) => a.includes("--snapshot="));
    const list = kinds("pg_restore", (a) => a.startsWith("--list "));
    const restore = kinds("pg_restore", (a) => a.includes("--section="));
    assert.ok(versions.length >= 2, runs.map((r) => `${r.tool} ${r.args}`).join("\n"));
    assert.equal(probe.length, 1, "validation connects with pg_dump once");
    assert.equal(dump.length, 1);
    assert.equal(list.length, 1);
    assert.equal(restore.length, 2, "pre-data and post-data");
    for (const run of runs) {
      const what = `${run.tool} ${run.args}`;
      assert.ok(!run.env.has("FOO_SECRET"), what);
      assert.ok(!run.env.has("PGSERVICE"), what);
      assert.ok(!run.env.has("PGMIGRATE_SOURCE_PASSWORD"), what);
      assert.ok(!run.env.has("PGMIGRATE_TARGET_PASSWORD"), what);
      assert.ok(![...run.env.values()].includes(CALLER_SECRET), what);
    }
    // No password where nothing connects; the source's for pg_dump, the target's for the restore.
    for (const run of [...versions, ...list]) assert.ok(!run.env.has("PGPASSWORD"), run.args);
    for (const run of [...probe, ...dump]) {
      assert.equal(run.env.get("PGPASSWORD"), source.password);
      assert.equal(run.env.get("PGPORT"), String(source.port));
    }
    for (const run of restore) {
      assert.equal(run.env.get("PGPASSWORD"), target.password);
      assert.equal(run.env.get("PGPORT"), String(target.port));
    }

    // The migration those tools made is exact; cancel cleans up.
    const comparison = await compareDatabases(source, DATABASE, target, DATABASE);
    assert.deepEqual(comparison.differences, []);
    const canceled = await runCli(
      ["update", "--server", server(), "--migration-name", NAME, "--cancel", "--wait"],
      callerEnv(),
    );
    assert.equal(canceled.code, 0, canceled.stderr + canceled.stdout);
    assert.equal((await outputs()).state, "Canceled");
    const slots = await source.query("SELECT slot_name FROM pg_replication_slots");
    assert.deepEqual(slots, []);
  });
});
