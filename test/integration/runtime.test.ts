// The runtime worker in-process on real servers: an offline migration to the end, an online one
// through WaitingForCutoverTrigger and cutover, a second worker kept out by the lease, a worker
// that loses its lease, cancels while waiting and during the copy, and no password left behind.
import assert from "node:assert/strict";
import {
  createMigration,
  getMigration,
  requestAction,
  waitForMigration,
  isSettled,
} from "../../provider/api/index";
import { TARGET_BOOKKEEPING_SCHEMA } from "../../provider/pg/names";
import { runWorker } from "../../provider/runtime/worker";
import type { MigrationOutputs, MigrationSpec } from "../../provider/spec/types";
import { compareDatabases } from "../support/checksum";
import { startPostgres, type PgServer } from "../support/postgres";
import { specOf } from "../support/spec";

const SCHEMA = `
  CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, note text);
  CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers,
    amount numeric(10, 2) NOT NULL,
    placed_at timestamptz NOT NULL DEFAULT '2024-01-01 00:00:00.123456+00');
  INSERT INTO customers (name, note) SELECT 'customer ' || i, repeat('n', i % 7) FROM generate_series(1, 200) i;
  INSERT INTO orders (customer_id, amount) SELECT 1 + i % 200, i * 1.25 FROM generate_series(1, 1000) i;`;

const DATABASES = [
  "offline_db",
  "online_db",
  "online_db2",
  "cancel_db",
  "copy_cancel_db",
  "fail_db",
  "validate_db",
];

async function sourceDatabase(server: PgServer, database: string): Promise<void> {
  await server.query(`CREATE DATABASE ${database}`);
  await server.query(SCHEMA, [], database);
}

function specFor(
  source: PgServer,
  target: PgServer,
  overrides: Record<string, unknown>,
): MigrationSpec {
  return specOf(source, target, overrides);
}

describe("runtime worker", function () {
  let source: PgServer;
  let target: PgServer;

  before(async () => {
    [source, target] = await Promise.all([startPostgres(), startPostgres()]);
    for (const db of DATABASES) {
      await sourceDatabase(source, db);
    }
  });
  after(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  const at = () => ({
    target: specFor(source, target, { databases: ["x"], migrationName: "x" }).target,
    controlDatabase: "postgres",
  });

  function worker(spec: MigrationSpec, signal?: AbortSignal): Promise<void> {
    return runWorker({
      target: spec.target,
      controlDatabase: spec.controlDatabase,
      migrationName: spec.migrationName,
      sourcePassword: spec.source.password,
      signal,
      heartbeatMs: 500,
    });
  }

  async function waitFor(
    name: string,
    until: (o: MigrationOutputs) => boolean,
  ): Promise<MigrationOutputs> {
    return waitForMigration(at(), name, until, { timeoutMs: 120_000 });
  }

  async function ourSourceObjects(): Promise<string[]> {
    const slots = await source.query<{ slot_name: string }>(
      "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'pgmigrate\\_%'",
    );
    const publications: string[] = [];
    for (const db of DATABASES) {
      const rows = await source.query<{ pubname: string }>(
        "SELECT pubname FROM pg_publication",
        [],
        db,
      );
      publications.push(...rows.map((r) => `${db}:${r.pubname}`));
    }
    return [...slots.map((s) => s.slot_name), ...publications];
  }

  async function targetDatabases(): Promise<string[]> {
    const rows = await target.query<{ datname: string }>("SELECT datname FROM pg_database");
    return rows.map((r) => r.datname);
  }

  it("migrates offline to the end with verification and table counters", async () => {
    const spec = specFor(source, target, {
      migrationName: "offline-run",
      databases: ["offline_db"],
      verify: "checksum",
    });
    await createMigration(spec, { kind: "external" });
    await worker(spec);
    const o = (await getMigration(at(), "offline-run")) as MigrationOutputs;
    assert.equal(o.error, null);
    assert.equal(o.state, "Succeeded");
    assert.equal(o.substate, "Completed");
    assert.ok(o.endedOn);
    assert.notEqual(o.validation?.status, "Failed");
    const db = o.dbDetails.offline_db;
    assert.equal(db.migrationState, "Succeeded");
    assert.equal(db.fullLoadCompletedTables, 2);
    assert.equal(db.fullLoadQueuedTables + db.fullLoadLoadingTables + db.fullLoadErroredTables, 0);
    assert.ok(db.startedOn && db.endedOn);
    assert.equal(o.verification?.status, "Succeeded");
    assert.deepEqual(
      o.verification?.tables.map((t) => [t.table, t.method, t.sourceRows, t.targetRows, t.match]),
      [
        ["public.customers", "snapshot", 200, 200, true],
        ["public.orders", "snapshot", 1000, 1000, true],
      ],
    );
    const comparison = await compareDatabases(source, "offline_db", target, "offline_db");
    assert.deepEqual(comparison.differences, []);
  });

  it("replicates two databases online, keeps a second worker out, and cuts over", async () => {
    const spec = specFor(source, target, {
      migrationName: "online-run",
      databases: ["online_db", "online_db2"],
      mode: "Online",
    });
    await createMigration(spec, { kind: "external" });
    const first = worker(spec);
    const waiting = await waitFor("online-run", isSettled);
    assert.equal(waiting.error, null);
    assert.equal(waiting.state, "WaitingForUserAction");
    assert.equal(waiting.substate, "WaitingForCutoverTrigger");
    assert.equal(waiting.dbDetails.online_db.migrationState, "WaitingForCutoverTrigger");
    assert.equal(waiting.dbDetails.online_db2.migrationState, "WaitingForCutoverTrigger");

    // A second worker for the same migration finds the lease taken and leaves.
    await worker(spec);
    const serving = await target.query(
      "SELECT 1 FROM pgmigrate.events WHERE migration = 'online-run' AND message LIKE 'worker % serving%'",
    );
    assert.equal(serving.length, 1);

    await source.query(
      `INSERT INTO customers (name) SELECT 'late ' || i FROM generate_series(1, 50) i;
       UPDATE orders SET amount = amount + 1 WHERE id <= 30;
       DELETE FROM orders WHERE id > 990;`,
      [],
      "online_db",
    );
    const streamed = await waitFor(
      "online-run",
      (o) =>
        o.dbDetails.online_db.cdcDeleteCounter >= 10 &&
        o.dbDetails.online_db.cdcInsertCounter >= 50,
    );
    assert.equal(streamed.dbDetails.online_db.cdcUpdateCounter, 30);
    assert.equal(streamed.dbDetails.online_db2.cdcInsertCounter, 0);
    // One source transaction of 90 changes, applied: a running total, and no backlog left.
    assert.equal(streamed.dbDetails.online_db.appliedChanges, 90);
    assert.equal(streamed.dbDetails.online_db.incomingChanges, 0);
    assert.equal(typeof streamed.latencySeconds, "number");

    await requestAction(at(), "online-run", "cutover");
    await first;
    const done = (await getMigration(at(), "online-run")) as MigrationOutputs;
    assert.equal(done.error, null);
    assert.equal(done.state, "Succeeded");
    assert.equal(done.substate, "Completed");
    assert.equal(done.dbDetails.online_db.migrationState, "Succeeded");
    assert.equal(done.dbDetails.online_db2.migrationState, "Succeeded");
    // Each table twice: under the copy's snapshot, then counted at cutover.
    assert.deepEqual(done.verification?.tables.map((t) => t.method).sort(), [
      "counts",
      "counts",
      "counts",
      "counts",
      "snapshot",
      "snapshot",
      "snapshot",
      "snapshot",
    ]);
    assert.equal(done.verification?.status, "Succeeded");
    assert.deepEqual(
      (await compareDatabases(source, "online_db", target, "online_db")).differences,
      [],
    );
    assert.deepEqual(
      (await compareDatabases(source, "online_db2", target, "online_db2")).differences,
      [],
    );
    // Sequences continue where the source stopped.
    const [next] = await target.query<{ id: number }>(
      "INSERT INTO customers (name) VALUES ('after cutover') RETURNING id",
      [],
      "online_db",
    );
    assert.equal(next.id, 251);
    assert.deepEqual(await ourSourceObjects(), []);
    const bookkeeping = await target.query(
      "SELECT 1 FROM pg_namespace WHERE nspname = 'pgmigrate_apply'",
      [],
      "online_db",
    );
    assert.equal(bookkeeping.length, 0);
  });

  it("stops a worker that lost its lease; a successor resumes and obeys a cancel", async () => {
    const spec = specFor(source, target, {
      migrationName: "cancel-run",
      databases: ["cancel_db"],
      mode: "Online",
      option: "Migrate",
    });
    await createMigration(spec, { kind: "external" });
    const first = worker(spec);
    await waitFor("cancel-run", isSettled);
    assert.ok((await targetDatabases()).includes("cancel_db"));

    await target.query(
      "UPDATE pgmigrate.migrations SET lease_owner = 'elsewhere:1:00' WHERE name = 'cancel-run'",
    );
    await first;
    assert.equal((await getMigration(at(), "cancel-run"))?.state, "WaitingForUserAction");
    assert.equal((await ourSourceObjects()).length, 2, "slot and publication kept for a successor");

    await target.query(
      "UPDATE pgmigrate.migrations SET lease_owner = NULL WHERE name = 'cancel-run'",
    );
    const second = worker(spec);
    await source.query("INSERT INTO customers (name) VALUES ('while resumed')", [], "cancel_db");
    await waitFor("cancel-run", (o) => o.dbDetails.cancel_db.cdcInsertCounter >= 1);
    await requestAction(at(), "cancel-run", "cancel");
    await second;
    const canceled = (await getMigration(at(), "cancel-run")) as MigrationOutputs;
    assert.equal(canceled.state, "Canceled");
    assert.ok(canceled.endedOn);
    assert.equal(canceled.dbDetails.cancel_db.migrationState, "Canceled");
    assert.ok(
      !(await targetDatabases()).includes("cancel_db"),
      "the created target database is dropped",
    );
    assert.deepEqual(await ourSourceObjects(), []);
  });

  it("obeys a cancel that arrives during the copy", async () => {
    // An event trigger on a pre-created target database stalls the schema restore, so the copy
    // is certainly running when the cancel arrives (its function lives in our own bookkeeping
    // schema, excluded by exact name, which does not make the database "not empty").
    await target.query("CREATE DATABASE copy_cancel_db");
    await target.query(
      `CREATE SCHEMA ${TARGET_BOOKKEEPING_SCHEMA};
       CREATE FUNCTION ${TARGET_BOOKKEEPING_SCHEMA}.stall() RETURNS event_trigger LANGUAGE plpgsql
         AS $$ BEGIN IF tg_tag = 'CREATE TABLE' THEN PERFORM pg_sleep(30); END IF; END $$;
       CREATE EVENT TRIGGER stall ON ddl_command_start EXECUTE FUNCTION ${TARGET_BOOKKEEPING_SCHEMA}.stall();`,
      [],
      "copy_cancel_db",
    );
    const spec = specFor(source, target, {
      migrationName: "copy-cancel",
      databases: ["copy_cancel_db"],
      mode: "Online",
      option: "Migrate",
    });
    await createMigration(spec, { kind: "external" });
    const run = worker(spec);
    await waitFor("copy-cancel", (o) => /Copying/.test(o.dbDetails.copy_cancel_db.message));
    const started = Date.now();
    await requestAction(at(), "copy-cancel", "cancel");
    await run;
    assert.ok(Date.now() - started < 20_000, "the copy was interrupted, not waited for");
    const o = (await getMigration(at(), "copy-cancel")) as MigrationOutputs;
    assert.equal(o.state, "Canceled");
    assert.deepEqual(await ourSourceObjects(), []);
    // It existed before the migration: a cancel leaves it in place.
    assert.ok((await targetDatabases()).includes("copy_cancel_db"));
  });

  it("stores the validation report: Validate ends there, a failed check stops the migration", async () => {
    const validateOnly = specFor(source, target, {
      migrationName: "validate-only",
      databases: ["validate_db"],
      option: "Validate",
    });
    await createMigration(validateOnly, { kind: "external" });
    await worker(validateOnly);
    const checked = (await getMigration(at(), "validate-only")) as MigrationOutputs;
    assert.equal(checked.state, "Succeeded");
    assert.equal(checked.substate, "Completed");
    assert.notEqual(checked.validation?.status, "Failed");
    assert.ok((checked.validation?.serverLevel.length ?? 0) > 0);

    const missing = specFor(source, target, {
      migrationName: "validate-missing",
      databases: ["no_such_db"],
    });
    await createMigration(missing, { kind: "external" });
    await worker(missing);
    const refused = (await getMigration(at(), "validate-missing")) as MigrationOutputs;
    assert.equal(refused.state, "ValidationFailed");
    assert.equal(refused.substate, "Failed");
    assert.equal(refused.validation?.status, "Failed");
    assert.equal(refused.validation?.databaseLevel[0].databaseName, "no_such_db");
    assert.ok(!(await targetDatabases()).includes("no_such_db"));
  });

  it("fails with the error and drops the slot when the stream cannot apply", async () => {
    const spec = specFor(source, target, {
      migrationName: "fail-run",
      databases: ["fail_db"],
      mode: "Online",
      option: "Migrate",
    });
    await createMigration(spec, { kind: "external" });
    const run = worker(spec);
    await waitFor("fail-run", isSettled);
    // Someone drops a migrated table on the target: the next change cannot be applied.
    await target.query("DROP TABLE orders", [], "fail_db");
    await source.query("INSERT INTO orders (customer_id, amount) VALUES (1, 9.99)", [], "fail_db");
    await run;
    const o = (await getMigration(at(), "fail-run")) as MigrationOutputs;
    assert.equal(o.state, "Failed");
    assert.equal(o.substate, "Failed");
    assert.match(o.error ?? "", /orders/);
    assert.equal(o.dbDetails.fail_db.migrationState, "Failed");
    assert.deepEqual(await ourSourceObjects(), []);
    // Failed leaves a clear state: no bookkeeping in the target database, which is kept for
    // inspection, and the statement that removes it is in the error and the events.
    const [bookkeeping] = await target.query<{ n: string }>(
      "SELECT count(*) AS n FROM pg_namespace WHERE nspname = $1",
      [TARGET_BOOKKEEPING_SCHEMA],
      "fail_db",
    );
    assert.equal(Number(bookkeeping.n), 0);
    assert.match(o.error ?? "", /left on the target for inspection: database\(s\) "fail_db"/);
    const drop = /DROP DATABASE [^;]+;/.exec(o.error ?? "")?.[0];
    assert.equal(drop, 'DROP DATABASE "fail_db";');
    assert.ok(o.warnings.some((w) => w.message.includes(drop)));
    await target.query(drop);
    assert.ok(!(await targetDatabases()).includes("fail_db"));
  });

  it("leaves no password in the control tables", async () => {
    for (const table of ["migrations", "databases", "tables", "events"]) {
      const rows = await target.query<{ t: string }>(
        `SELECT t::text AS t FROM pgmigrate.${table} t`,
      );
      assert.ok(rows.length > 0);
      for (const { t } of rows) {
        assert.ok(!t.includes(source.password), `source password in pgmigrate.${table}`);
        assert.ok(!t.includes(target.password), `target password in pgmigrate.${table}`);
      }
    }
  });
});
