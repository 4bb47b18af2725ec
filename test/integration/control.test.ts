// The control store on a real server: versioned install (idempotent), the migration rows the
// facade writes and reads, requested actions and their refusals, and no password anywhere.
import assert from "node:assert/strict";
import {
  checkNameAvailability,
  createMigration,
  forgetMigration,
  getMigration,
  listMigrations,
  requestAction,
  specHash,
} from "../../provider/engine";
import {
  appliedVersions,
  installControlSchema,
  schemaMigrations,
} from "../../provider/control/schema";
import { withControl } from "../../provider/control/db";
import { setState } from "../../provider/control/migrations";
import { claimLease } from "../../provider/control/lease";
import { resolveSpec } from "../../provider/inputs";
import { MigrationError } from "../../provider/pg/errors";
import type { MigrationSpec } from "../../provider/types";
import { startPostgres, type PgServer } from "../support/postgres";

const CONTROL_TABLES = ["migrations", "databases", "tables", "events", "schema_version"];

function specFor(
  source: PgServer,
  target: PgServer,
  overrides: Record<string, unknown> = {},
): MigrationSpec {
  const endpoint = (s: PgServer) => ({
    host: s.host,
    port: s.port,
    username: s.user,
    password: s.password,
    sslMode: "disable",
  });
  const resolved = resolveSpec({
    source: endpoint(source),
    target: endpoint(target),
    databases: ["shop"],
    migrationName: "m",
    ...overrides,
  });
  if (!resolved.ok) throw new Error(JSON.stringify(resolved.problems));
  return resolved.spec;
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
      assert.ok(await setState(db, "offline-one", "test:1:ab", "Succeeded", "Completed"));
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
