// The local spawner on real servers: createMigration starts a detached worker (no password on
// its command line or in its log); after SIGKILL, ensureWorker starts a successor that resumes
// streaming from the stored position, and the migration completes with identical data.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  createMigration,
  ensureWorker,
  getMigration,
  isEnded,
  isSettled,
  requestAction,
  waitForMigration,
  type RuntimeOptions,
} from "../../provider/api/index";
import { TARGET_BOOKKEEPING_SCHEMA } from "../../provider/pg/names";
import { processAlive } from "../../provider/pg/process";
import { parseOwnerId } from "../../provider/runtime/lease";
import { logFileName } from "../../provider/runtime/log-file";
import type { MigrationOutputs, MigrationSpec } from "../../provider/spec/types";
import { compareDatabases } from "../support/checksum";
import { startPostgres, type PgServer } from "../support/postgres";
import { until } from "../support/wait";
import { processGone } from "../support/workers";
import { specOf } from "../support/spec";

const DATABASE = "spawned_db";
const RESTART_DATABASE = "restart_db";
const CUTOVER_DATABASE = "cutover_db";

function specFor(
  source: PgServer,
  target: PgServer,
  name = "spawned",
  database = DATABASE,
): MigrationSpec {
  return specOf(source, target, {
    migrationName: name,
    databases: [database],
    mode: "Online",
    option: "Migrate",
  });
}

async function leaseHolderPid(target: PgServer, name = "spawned"): Promise<number | undefined> {
  const [row] = await target.query<{ lease_owner: string | null }>(
    "SELECT lease_owner FROM pgmigrate.migrations WHERE name = $1",
    [name],
  );
  return row?.lease_owner ? parseOwnerId(row.lease_owner)?.pid : undefined;
}

function commandLine(pid: number): string {
  return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
}

describe("runtime spawner", function () {
  let source: PgServer;
  let target: PgServer;
  let logDir: string;
  const pids = new Set<number>();

  before(async () => {
    [source, target] = await Promise.all([startPostgres(), startPostgres()]);
    logDir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-spawn-test-"));
    for (const database of [DATABASE, RESTART_DATABASE, CUTOVER_DATABASE]) {
      await source.query(`CREATE DATABASE ${database}`);
      await source.query(
        `CREATE TABLE items (id serial PRIMARY KEY, label text NOT NULL, qty int NOT NULL);
         INSERT INTO items (label, qty) SELECT 'item ' || i, i FROM generate_series(1, 500) i;`,
        [],
        database,
      );
    }
  });
  after(async () => {
    // Workers we spawned must not outlive the test, whatever happened.
    for (const pid of pids) if (processAlive(pid)) process.kill(pid, "SIGKILL");
    await Promise.all([source?.stop(), target?.stop()]);
    fs.rmSync(logDir, { recursive: true, force: true });
  });

  it("runs a detached worker, survives its SIGKILL, and completes with identical data", async () => {
    const spec = specFor(source, target);
    const runtime: RuntimeOptions = { kind: "local", logDir };
    const at = { target: spec.target, controlDatabase: spec.controlDatabase };
    const wait = (done: (o: MigrationOutputs) => boolean) =>
      waitForMigration(at, "spawned", done, { timeoutMs: 120_000, spec, runtime });

    const created = await createMigration(spec, runtime);
    assert.equal(created.attached, false);
    const settled = await wait(isSettled);
    assert.equal(settled.error, null);
    assert.equal(settled.state, "WaitingForUserAction");

    const firstPid = await until(() => leaseHolderPid(target), {
      what: "the first worker's lease",
    });
    pids.add(firstPid);
    const argv = commandLine(firstPid);
    assert.match(argv, /runtime --server postgresql:\/\/\S+ --migration-name spawned/);
    assert.ok(!argv.includes(source.password) && !argv.includes(target.password));
    // A live worker is left alone.
    assert.equal(await ensureWorker(spec, runtime), false);

    await source.query("UPDATE items SET qty = qty + 1 WHERE id <= 100", [], DATABASE);
    await wait((o) => o.dbDetails[DATABASE].cdcUpdateCounter >= 100);

    process.kill(firstPid, "SIGKILL");
    await processGone(firstPid, "the worker to die");
    await source.query(
      `INSERT INTO items (label, qty) SELECT 'late ' || i, 0 FROM generate_series(1, 40) i;
       DELETE FROM items WHERE id BETWEEN 401 AND 420;`,
      [],
      DATABASE,
    );
    assert.equal(await ensureWorker(spec, runtime), true);
    const secondPid = await until(
      async () => {
        const pid = await leaseHolderPid(target);
        return pid !== undefined && pid !== firstPid ? pid : undefined;
      },
      { what: "a successor's lease" },
    );
    pids.add(secondPid);

    // Counters continue from the first worker's; the backlog arrives exactly once.
    const resumed = await wait(
      (o) =>
        o.dbDetails[DATABASE].cdcInsertCounter >= 40 &&
        o.dbDetails[DATABASE].cdcDeleteCounter >= 20,
    );
    assert.equal(resumed.dbDetails[DATABASE].cdcUpdateCounter, 100);
    assert.equal(resumed.dbDetails[DATABASE].cdcInsertCounter, 40);

    // A restart (new passwords) stops the live worker with SIGTERM and starts a successor.
    assert.equal(await ensureWorker(spec, runtime, { restart: true }), true);
    const thirdPid = await until(
      async () => {
        const pid = await leaseHolderPid(target);
        return pid !== undefined && pid !== secondPid ? pid : undefined;
      },
      { what: "the restarted worker's lease" },
    );
    pids.add(thirdPid);
    await processGone(secondPid, "the old worker to stop");

    await requestAction(at, "spawned", "cutover");
    const done = await wait((o) => isEnded(o.state));
    assert.equal(done.error, null);
    assert.equal(done.state, "Succeeded");
    assert.deepEqual((await compareDatabases(source, DATABASE, target, DATABASE)).differences, []);
    const [{ n }] = await target.query<{ n: string }>(
      "SELECT count(*) AS n FROM items",
      [],
      DATABASE,
    );
    assert.equal(Number(n), 520);
    const slots = await source.query("SELECT slot_name FROM pg_replication_slots");
    assert.deepEqual(slots, []);

    // The worker exits once the migration has ended.
    await processGone(thirdPid, "the worker to exit");
    const events = await target.query<{ message: string }>(
      "SELECT message FROM pgmigrate.events WHERE migration = 'spawned' ORDER BY id",
    );
    const log = path.join(logDir, logFileName(specFor(source, target)));
    assert.ok(
      events.some((e) => e.message.includes(log)),
      "the log file is named in an event",
    );
    const text = fs.readFileSync(log, "utf8");
    assert.match(text, /Replicating changes/);
    assert.ok(!text.includes(source.password) && !text.includes(target.password));
    assert.equal((await getMigration(at, "spawned"))?.state, "Succeeded");
  });

  it("restarts a copy interrupted by SIGKILL from a new snapshot on an emptied target", async () => {
    // The target database exists (empty) with an event trigger that stalls the schema restore,
    // so the worker is certainly mid-copy when it is killed. The restart re-creates the
    // database, which also removes the trigger. The function lives in our own bookkeeping schema
    // (excluded by exact name) so the database still counts as empty.
    await target.query(`CREATE DATABASE ${RESTART_DATABASE}`);
    await target.query(
      `CREATE SCHEMA ${TARGET_BOOKKEEPING_SCHEMA};
       CREATE FUNCTION ${TARGET_BOOKKEEPING_SCHEMA}.stall() RETURNS event_trigger LANGUAGE plpgsql
         AS $$ BEGIN IF tg_tag = 'CREATE TABLE' THEN PERFORM pg_sleep(60); END IF; END $$;
       CREATE EVENT TRIGGER stall ON ddl_command_start EXECUTE FUNCTION ${TARGET_BOOKKEEPING_SCHEMA}.stall();`,
      [],
      RESTART_DATABASE,
    );
    const spec = specFor(source, target, "restarted", RESTART_DATABASE);
    const runtime: RuntimeOptions = { kind: "local", logDir };
    const at = { target: spec.target, controlDatabase: spec.controlDatabase };
    await createMigration(spec, runtime);
    await waitForMigration(
      at,
      "restarted",
      (o) => /Copying/.test(o.dbDetails[RESTART_DATABASE].message),
      { timeoutMs: 60_000 },
    );
    const firstPid = await until(() => leaseHolderPid(target, "restarted"), {
      what: "the worker's lease",
    });
    pids.add(firstPid);
    process.kill(firstPid, "SIGKILL");
    await processGone(firstPid, "the worker to die");
    await source.query(
      "INSERT INTO items (label, qty) VALUES ('during restart', 1)",
      [],
      RESTART_DATABASE,
    );

    assert.equal(await ensureWorker(spec, runtime), true);
    const settled = await waitForMigration(at, "restarted", isSettled, {
      timeoutMs: 120_000,
      spec,
      runtime,
    });
    const secondPid = await leaseHolderPid(target, "restarted");
    if (secondPid) pids.add(secondPid);
    assert.equal(settled.error, null);
    assert.equal(settled.state, "WaitingForUserAction");
    const events = await target.query<{ message: string }>(
      "SELECT message FROM pgmigrate.events WHERE migration = 'restarted' ORDER BY id",
    );
    assert.ok(events.some((e) => /copy was interrupted/.test(e.message)));

    await requestAction(at, "restarted", "cutover");
    const done = await waitForMigration(at, "restarted", (o) => isEnded(o.state), {
      timeoutMs: 120_000,
      spec,
      runtime,
    });
    assert.equal(done.error, null);
    assert.equal(done.state, "Succeeded");
    assert.deepEqual(
      (await compareDatabases(source, RESTART_DATABASE, target, RESTART_DATABASE)).differences,
      [],
    );
    assert.deepEqual(await source.query("SELECT slot_name FROM pg_replication_slots"), []);
  });

  it("finishes a cutover whose worker was SIGKILLed in the middle of it", async () => {
    const name = "cut-kill";
    const spec = specFor(source, target, name, CUTOVER_DATABASE);
    const runtime: RuntimeOptions = { kind: "local", logDir };
    const at = { target: spec.target, controlDatabase: spec.controlDatabase };
    const wait = (done: (o: MigrationOutputs) => boolean) =>
      waitForMigration(at, name, done, { timeoutMs: 120_000, spec, runtime });
    await createMigration(spec, runtime);
    assert.equal((await wait(isSettled)).state, "WaitingForUserAction");
    const firstPid = await until(() => leaseHolderPid(target, name), {
      what: "the worker's lease",
    });
    pids.add(firstPid);

    // A lock on the target holds the apply, so the cutover is still draining when it is killed.
    const locker = await target.connect(CUTOVER_DATABASE);
    try {
      await locker.query("BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE");
      await source.query(
        `UPDATE items SET qty = qty * 2 WHERE id % 3 = 0;
         INSERT INTO items (label, qty) SELECT 'cutover ' || i, i FROM generate_series(1, 30) i;
         DELETE FROM items WHERE id BETWEEN 10 AND 19;`,
        [],
        CUTOVER_DATABASE,
      );
      await requestAction(at, name, "cutover");
      await waitForMigration(at, name, (o) => o.substate === "CompletingMigration", {
        timeoutMs: 60_000,
      });
      await until(
        async () => {
          const [row] = await target.query<{ n: string }>(
            "SELECT count(*) AS n FROM pgmigrate.databases WHERE migration = $1 AND cutover_lsn IS NOT NULL",
            [name],
          );
          return Number(row.n) > 0 ? true : undefined;
        },
        { what: "the cutover position to be recorded" },
      );
      process.kill(firstPid, "SIGKILL");
      await processGone(firstPid, "the worker to die");
      assert.equal((await getMigration(at, name))?.substate, "CompletingMigration");
    } finally {
      await locker.query("COMMIT").catch(() => undefined);
      await locker.end();
    }

    // The successor resumes the cutover: the stream from the stored position, then the rest.
    assert.equal(await ensureWorker(spec, runtime), true);
    const done = await wait((o) => isEnded(o.state));
    const secondPid = await leaseHolderPid(target, name);
    if (secondPid) pids.add(secondPid);
    assert.equal(done.error, null);
    assert.equal(done.state, "Succeeded");
    assert.equal(done.verification?.status, "Succeeded");
    assert.deepEqual(
      (await compareDatabases(source, CUTOVER_DATABASE, target, CUTOVER_DATABASE)).differences,
      [],
    );
    // Each change applied once: 166 updates (ids divisible by 3), 30 inserts, 10 deletes.
    const details = done.dbDetails[CUTOVER_DATABASE];
    assert.deepEqual(
      [details.cdcUpdateCounter, details.cdcInsertCounter, details.cdcDeleteCounter],
      [166, 30, 10],
    );
    assert.deepEqual(await source.query("SELECT slot_name FROM pg_replication_slots"), []);
    const bookkeeping = await target.query(
      "SELECT 1 FROM pg_namespace WHERE nspname = 'pgmigrate_apply'",
      [],
      CUTOVER_DATABASE,
    );
    assert.deepEqual(bookkeeping, [], "our bookkeeping is gone from the target");
  });
});
