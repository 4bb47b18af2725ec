// The control store on a real server: versioned install (idempotent), the migration rows the
// facade writes and reads, requested actions and their refusals, and no password anywhere.
import assert from "node:assert/strict";
import {
  checkNameAvailability,
  createMigration,
  ensureWorker,
  forgetMigration,
  getMigration,
  getStoredSpec,
  getTableProgress,
  listMigrations,
  requestAction,
  specHash,
  waitForMigration,
} from "../../provider/api/index";
import {
  appliedVersions,
  installControlSchema,
  schemaMigrations,
} from "../../provider/control/schema";
import { withControl } from "../../provider/control/db";
import { setState } from "../../provider/control/migrations";
import { claimLease, type LeaseFence } from "../../provider/control/lease";
import { queueTables, setTableState } from "../../provider/control/progress";
import { MigrationError } from "../../provider/pg/errors";
import type { MigrationSpec } from "../../provider/spec/types";
import { startPostgres, type PgServer } from "../support/postgres";
import { specOf } from "../support/spec";

const CONTROL_TABLES = [
  "migrations",
  "databases",
  "tables",
  "events",
  "latency_samples",
  "runtimes",
  "work_units",
  "schema_version",
];

function specFor(
  source: PgServer,
  target: PgServer,
  overrides: Record<string, unknown> = {},
): MigrationSpec {
  return specOf(source, target, { databases: ["shop"], migrationName: "m", ...overrides });
}

/** A worker's fence for writes made by hand (a lost lease would throw before `lost` matters). */
function fence(migration: string, owner: string): LeaseFence {
  return { migration, owner, lost: () => undefined };
}

async function rejectsWith(promise: Promise<unknown>, code: string, text: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof MigrationError, String(err));
    assert.equal(err.code, code);
    assert.match(err.message, text);
    return true;
  });
}

describe("control store", () => {
  let source: PgServer;
  let target: PgServer;

  before(async () => {
    [source, target] = await Promise.all([startPostgres(), startPostgres()]);
  });
  after(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  it("installs its versioned schema once, however often it is installed", async () => {
    const at = { target: specFor(source, target).target, controlDatabase: "pgmigrate_ctl" };
    const [first, second] = [await installControlSchema(at), await installControlSchema(at)];
    const versions = schemaMigrations().map((m) => m.version);
    assert.deepEqual(first.applied, versions);
    assert.deepEqual(second.applied, []);
    // Concurrent installers serialise on the advisory lock.
    const concurrent = await Promise.all([installControlSchema(at), installControlSchema(at)]);
    assert.deepEqual(
      concurrent.map((c) => c.applied),
      [[], []],
    );
    assert.deepEqual(await withControl(at, appliedVersions), versions);
    const tables = await target.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'pgmigrate' ORDER BY 1",
      [],
      "pgmigrate_ctl",
    );
    assert.deepEqual(tables.map((t) => t.table_name).sort(), [...CONTROL_TABLES].sort());
  });

  it("reads nothing before anything was created", async () => {
    const at = { target: specFor(source, target).target, controlDatabase: "never_created" };
    assert.equal(await getMigration(at, "orders"), undefined);
    assert.deepEqual(await listMigrations(at, "All"), []);
    assert.deepEqual(await checkNameAvailability(at, "orders"), { available: true });
    assert.equal(await getStoredSpec(at, "orders"), undefined);
    assert.deepEqual(await getTableProgress(at, "orders"), {});
  });

  it("upgrades a version-1 store in place: its migrations keep being looked after locally", async () => {
    const at = { target: specFor(source, target).target, controlDatabase: "ctl_v1" };
    await target.query("CREATE DATABASE ctl_v1");
    const [v1] = schemaMigrations();
    await target.query(
      `CREATE SCHEMA pgmigrate;
       CREATE TABLE pgmigrate.schema_version (version integer PRIMARY KEY, name text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now());
       ${v1.sql};
       INSERT INTO pgmigrate.schema_version (version, name) VALUES (1, 'init');
       INSERT INTO pgmigrate.migrations (name, spec, spec_hash, mode, option, state, substate)
       VALUES ('older', '{}', 'h', 'Offline', 'Migrate', 'InProgress', 'MigratingData');`,
      [],
      "ctl_v1",
    );
    const upgrade = await installControlSchema(at);
    assert.deepEqual(
      upgrade.applied,
      schemaMigrations()
        .map((m) => m.version)
        .filter((v) => v > 1),
    );
    const rows = await target.query<{ runtime_kind: string; runtime_log_dir: string | null }>(
      "SELECT runtime_kind, runtime_log_dir FROM pgmigrate.migrations",
      [],
      "ctl_v1",
    );
    assert.deepEqual(rows, [{ runtime_kind: "local", runtime_log_dir: null }]);
  });

  it("creates a migration, attaches to the same spec and refuses a different one", async () => {
    const spec = specFor(source, target, { migrationName: "orders", databases: ["shop", "crm"] });
    const created = await createMigration(spec, { kind: "external" });
    assert.equal(created.attached, false);
    const o = created.outputs;
    assert.equal(o.migrationName, "orders");
    assert.equal(o.state, "InProgress");
    assert.equal(o.substate, "PerformingPreRequisiteSteps");
    assert.equal(o.migrationMode, "Offline");
    assert.equal(o.migrationOption, "ValidateAndMigrate");
    assert.deepEqual(Object.keys(o.dbDetails), ["shop", "crm"]);
    assert.equal(o.dbDetails.shop.fullLoadQueuedTables, 0);
    assert.equal(o.latencySeconds, null);
    assert.ok(o.startedOn && !Number.isNaN(Date.parse(o.startedOn)));

    // Same spec with other passwords and cutover: the same migration.
    const again = specFor(source, target, {
      migrationName: "orders",
      databases: ["shop", "crm"],
      mode: "Offline",
    });
    const attachedSpec = { ...again, source: { ...again.source, password: "other" } };
    assert.equal(specHash(attachedSpec), specHash(spec));
    assert.equal((await createMigration(attachedSpec, { kind: "external" })).attached, true);

    const different = specFor(source, target, { migrationName: "orders", databases: ["shop"] });
    await rejectsWith(
      createMigration(different, { kind: "external" }),
      "PGM_DUPLICATE_NAME",
      /different settings/,
    );

    const availability = await checkNameAvailability(
      { target: spec.target, controlDatabase: "postgres" },
      "orders",
    );
    assert.equal(availability.available, false);
    assert.match(availability.reason ?? "", /already exists/);
    const bad = await checkNameAvailability(
      { target: spec.target, controlDatabase: "postgres" },
      "-Bad",
    );
    assert.equal(bad.available, false);
  });

  it("records requested actions and refuses the impossible ones", async () => {
    const at = { target: specFor(source, target).target, controlDatabase: "postgres" };
    const offline = specFor(source, target, { migrationName: "offline-one" });
    await createMigration(offline, { kind: "external" });
    await rejectsWith(
      requestAction(at, "offline-one", "cutover"),
      "PGM_INVALID_ACTION",
      /Online migrations only/,
    );
    await rejectsWith(requestAction(at, "missing", "cancel"), "PGM_NOT_FOUND", /no migration/);

    const online = specFor(source, target, { migrationName: "online-one", mode: "Online" });
    await createMigration(online, { kind: "external" });
    await rejectsWith(
      requestAction(at, "online-one", "cutover"),
      "PGM_INVALID_ACTION",
      /PerformingPreRequisiteSteps/,
    );
    await requestAction(at, "online-one", "cancel");
    await requestAction(at, "online-one", "cancel");
    await rejectsWith(
      requestAction(at, "online-one", "cutover"),
      "PGM_INVALID_ACTION",
      /being canceled/,
    );
    const [row] = await target.query<{ requested_action: string }>(
      "SELECT requested_action FROM pgmigrate.migrations WHERE name = 'online-one'",
    );
    assert.equal(row.requested_action, "cancel");

    // Once it has ended, nothing more can be asked of it; it can then be forgotten.
    await rejectsWith(forgetMigration(at, "offline-one"), "PGM_INVALID_ACTION", /cancel it before/);
    await withControl(at, async (db) => {
      assert.ok(await claimLease(db, "offline-one", "test:1:ab", { pid: 1, host: "test" }));
      await setState(db, fence("offline-one", "test:1:ab"), "Succeeded", "Completed");
    });
    await rejectsWith(
      requestAction(at, "offline-one", "cancel"),
      "PGM_INVALID_ACTION",
      /already ended/,
    );
    await rejectsWith(
      createMigration(offline, { kind: "external" }),
      "PGM_DUPLICATE_NAME",
      /ended/,
    );
    const ended = await getMigration(at, "offline-one");
    assert.equal(ended?.state, "Succeeded");
    assert.ok(ended?.endedOn);

    const active = await listMigrations(at, "Active");
    assert.ok(!active.some((m) => m.name === "offline-one"));
    const all = await listMigrations(at, "All");
    assert.deepEqual(
      all.map((m) => m.name),
      ["online-one", "offline-one", "orders"],
    );
    assert.equal(all[0].sourceServer, `${source.host}:${source.port}`);
    assert.deepEqual(all[0].databases, ["shop"]);

    await forgetMigration(at, "offline-one");
    assert.equal(await getMigration(at, "offline-one"), undefined);
    const events = await target.query(
      "SELECT 1 FROM pgmigrate.events WHERE migration = 'offline-one'",
    );
    assert.equal(events.length, 0);
  });

  it("a pool migration gets no local worker and, with no runtime alive, says it waits for one", async () => {
    const spec = specFor(source, target, { migrationName: "pooled", controlDatabase: "ctl_pool" });
    const at = { target: spec.target, controlDatabase: "ctl_pool" };
    const query = <R extends Record<string, unknown>>(sql: string) =>
      target.query<R>(sql, [], "ctl_pool");
    await createMigration(spec, { kind: "pool" });
    assert.deepEqual((await getStoredSpec(at, "pooled"))?.runtime, { kind: "pool" });
    assert.equal(await ensureWorker(spec), false);
    assert.deepEqual(
      await query("SELECT spawned_at, worker_pid FROM pgmigrate.migrations WHERE name = 'pooled'"),
      [{ spawned_at: null, worker_pid: null }],
    );
    assert.equal((await getMigration(at, "pooled"))?.runtimes.length, 0);
    await query("UPDATE pgmigrate.migrations SET created_at = now() - interval '61 s'");
    const warning = (await getStoredSpec(at, "pooled"))?.worker.warning ?? "";
    assert.match(
      warning,
      /runs on a pool of runtimes and no worker has picked it up in 6\d s: waiting for a runtime/,
    );
    const command = `pgmigrate runtime --server postgresql://${target.user}@${target.host}:${target.port}/ctl_pool?sslmode=disable\``;
    assert.ok(warning.includes(`\`${command} (no --migration-name)`), warning);
    assert.ok(!warning.includes(target.password));
  });

  it("stores the runtime: an external migration never gets a local worker, a silent one is reported", async () => {
    const spec = specFor(source, target, { migrationName: "ext", controlDatabase: "ctl_runtime" });
    const at = { target: spec.target, controlDatabase: "ctl_runtime" };
    const query = <R extends Record<string, unknown>>(sql: string) =>
      target.query<R>(sql, [], "ctl_runtime");
    await createMigration(spec, { kind: "external" });

    const stored = await getStoredSpec(at, "ext");
    assert.ok(stored);
    assert.deepEqual(stored.runtime, { kind: "external" });
    assert.equal(stored.ended, false);
    assert.deepEqual(stored.spec.databases, ["shop"]);
    assert.ok(!("password" in stored.spec.source) && !("password" in stored.spec.target));
    assert.ok(!JSON.stringify(stored).includes(source.password));
    // Just created: the user is still starting `pgmigrate runtime`.
    assert.equal(stored.worker.status, "dead");
    assert.equal(stored.worker.warning, undefined);

    // Whoever looks after it without a runtime of their own goes by the stored one.
    assert.equal(await ensureWorker(spec), false);
    assert.equal(await ensureWorker(spec, undefined, { restart: true }), false);
    const spawns = () =>
      query<{ spawned_at: Date | null; worker_pid: number | null }>(
        "SELECT spawned_at, worker_pid FROM pgmigrate.migrations WHERE name = 'ext'",
      );
    assert.deepEqual(await spawns(), [{ spawned_at: null, worker_pid: null }]);

    // A minute later still no worker: say what to run, once in the event log.
    await query("UPDATE pgmigrate.migrations SET created_at = now() - interval '61 s'");
    const command =
      `pgmigrate runtime --server postgresql://${target.user}@${target.host}:${target.port}` +
      "/ctl_runtime?sslmode=disable --migration-name ext";
    const silent = await getStoredSpec(at, "ext");
    assert.match(silent?.worker.warning ?? "", /no worker has picked it up in 6\d s/);
    assert.ok(silent?.worker.warning?.includes(`\`${command}\``), silent?.worker.warning);
    const warnings: string[] = [];
    let polls = 0;
    await waitForMigration(at, "ext", () => ++polls > 2, {
      spec,
      onWarning: (message) => warnings.push(message),
      timeoutMs: 10_000,
    });
    assert.equal(warnings.length, 1, "warned once, not on every poll");
    assert.ok(warnings[0].includes(command));
    assert.equal(await ensureWorker(spec), false);
    assert.deepEqual(await spawns(), [{ spawned_at: null, worker_pid: null }]);
    const events = await query<{ message: string }>(
      "SELECT message FROM pgmigrate.events WHERE level = 'warning' AND migration = 'ext'",
    );
    assert.equal(events.length, 1);
    assert.ok(events[0].message.includes(command));

    // A worker elsewhere that went quiet 40 s ago; then one that heartbeats.
    await withControl(at, (db) =>
      claimLease(db, "ext", "vm-7:4242:ab", { pid: 4242, host: "vm-7" }),
    );
    await query("UPDATE pgmigrate.migrations SET heartbeat_at = now() - interval '40 s'");
    assert.match(
      (await getStoredSpec(at, "ext"))?.worker.warning ?? "",
      /no worker has a heartbeat for 4\d s; run `pgmigrate runtime/,
    );
    await query("UPDATE pgmigrate.migrations SET heartbeat_at = now()");
    const alive = await getStoredSpec(at, "ext");
    assert.equal(alive?.worker.status, "alive");
    assert.equal(alive?.worker.warning, undefined);

    // A caller configured otherwise (a Pulumi program's runtime input) is recorded.
    const logDir = "/var/log/pgmigrate";
    assert.equal(await ensureWorker(spec, { kind: "external", logDir }), false);
    assert.deepEqual((await getStoredSpec(at, "ext"))?.runtime, { kind: "external", logDir });
    const [created] = await query<{ runtime_kind: string }>(
      "SELECT runtime_kind FROM pgmigrate.migrations WHERE name = 'ext'",
    );
    assert.equal(created.runtime_kind, "external");
  });

  it("reads per-table copy progress through the facade, largest tables first", async () => {
    const spec = specFor(source, target, {
      migrationName: "progress",
      controlDatabase: "ctl_runtime",
      databases: ["shop", "crm"],
    });
    const at = { target: spec.target, controlDatabase: "ctl_runtime" };
    await createMigration(spec, { kind: "external" });
    await withControl(at, async (db) => {
      const worker = fence("progress", "test:2:cd");
      assert.ok(await claimLease(db, "progress", worker.owner, { pid: 2, host: "test" }));
      await queueTables(db, worker, "shop", [
        { schema: "public", name: "small", estimatedBytes: 10 },
        { schema: "public", name: "big", estimatedBytes: 9000 },
      ]);
      await setTableState(db, worker, "shop", { schema: "public", name: "big" }, "completed", {
        rows: 120,
        bytes: 8800,
      });
    });
    const progress = await getTableProgress(at, "progress");
    assert.deepEqual(Object.keys(progress), ["shop", "crm"]);
    assert.deepEqual(progress.crm, []);
    assert.deepEqual(
      progress.shop.map((t) => [t.schema, t.name, t.state, t.rows, t.bytes, t.estimatedBytes]),
      [
        ["public", "big", "completed", 120, 8800, 9000],
        ["public", "small", "queued", null, null, 10],
      ],
    );
    assert.deepEqual(Object.keys(await getTableProgress(at, "progress", ["crm"])), ["crm"]);
    assert.deepEqual(await getTableProgress(at, "missing"), {});
  });

  it("keeps no password in any control table", async () => {
    for (const table of CONTROL_TABLES) {
      const rows = await target.query<{ t: string }>(
        `SELECT t::text AS t FROM pgmigrate.${table} t`,
      );
      for (const { t } of rows) {
        assert.ok(!t.includes(source.password), `source password in pgmigrate.${table}`);
        assert.ok(!t.includes(target.password), `target password in pgmigrate.${table}`);
      }
    }
  });
});
