// The Pulumi provider driven directly, as the dynamic-provider host would, on real servers:
// an online migration created, refreshed (a dead worker replaced), cut over and forgotten with
// its data kept; another one destroyed while waiting and rolled back; a failed validation.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import * as engine from "../../provider/api/index";
import { createMigrationProvider } from "../../provider/pulumi/index";
import { publicationName, slotName } from "../../provider/pg/names";
import { providerImplementation } from "../../provider/pulumi/operations";
import { silent } from "../../provider/pulumi/diagnostics";
import { UNKNOWN, type ResourceState } from "../../provider/pulumi/state";
import { compareDatabases } from "../support/checksum";
import { loadFixture, writeWorkload } from "../support/fixture";
import { startPostgres, type PgServer } from "../support/postgres";
import { until } from "../support/wait";
import { killWorkers, workerPids } from "../support/workers";

type Inputs = Record<string, unknown>;

const RUNTIME_MAIN = path.join(__dirname, "..", "..", "provider", "runtime", "main.js");

/** The slot and publication of migration `name` still on the source database `database`. */
async function sourceLeftovers(
  source: PgServer,
  name: string,
  database: string,
): Promise<string[]> {
  const slots = await source.query<{ name: string }>(
    "SELECT slot_name AS name FROM pg_replication_slots WHERE slot_name = $1",
    [slotName(name, database)],
  );
  const pubs = await source.query<{ name: string }>(
    "SELECT pubname AS name FROM pg_publication WHERE pubname = $1",
    [publicationName(name)],
    database,
  );
  return [...slots, ...pubs].map((r) => r.name);
}

describe("Pulumi provider on real servers", function () {
  const suffix = randomBytes(3).toString("hex");
  const names = {
    online: `prov-online-${suffix}`,
    cancel: `prov-cancel-${suffix}`,
    invalid: `prov-invalid-${suffix}`,
  } as Record<string, string>;
  let source: PgServer;
  let target: PgServer;
  let logDir: string;

  const endpoint = (server: PgServer): Inputs => ({
    host: server.host,
    port: server.port,
    username: server.user,
    password: server.password,
    sslMode: "disable",
  });
  const inputsFor = (name: string, databases: string[], extra: Inputs = {}): Inputs => ({
    source: endpoint(source),
    target: endpoint(target),
    databases,
    mode: "Online",
    migrationName: name,
    runtime: { kind: "local", logDir },
    __provider: "exports.handler = ...",
    ...extra,
  });
  const remembered = () => ({ sourcePassword: source.password, targetPassword: target.password });
  const at = (): engine.ControlLocation => ({
    target: {
      host: target.host,
      port: target.port,
      username: target.user,
      password: target.password,
      sslMode: "disable",
    },
    controlDatabase: "postgres",
  });

  before(async () => {
    [source, target] = await Promise.all([startPostgres(), startPostgres()]);
    logDir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-provider-"));
    await loadFixture(source, "shop", { rows: 300 });
    await source.query("CREATE DATABASE stock");
    await source.query(
      `CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
       INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 2000) i`,
      [],
      "stock",
    );
  });

  after(async () => {
    killWorkers(Object.values(names));
    await Promise.all([source?.stop(), target?.stop()]);
    if (logDir) fs.rmSync(logDir, { recursive: true, force: true });
  });

  it("create (online) → refresh → cutover → delete: data migrated and kept", async () => {
    const provider = createMigrationProvider({ get: remembered });
    const inputs = inputsFor(names.online, ["shop"]);
    const checked = await provider.check!({}, inputs);
    assert.deepEqual(checked.failures, []);

    const created = await provider.create(inputs);
    assert.equal(created.id, names.online);
    const outs = created.outs as ResourceState;
    assert.equal(outs.state, "WaitingForUserAction");
    assert.equal(outs.substate, "WaitingForCutoverTrigger");
    assert.equal(outs.migrationMode, "Online");
    assert.equal(outs.dbDetails.shop.fullLoadCompletedTables > 0, true);
    const stateText = JSON.stringify(outs);
    for (const password of [source.password, target.password]) {
      assert.ok(!stateText.includes(password), "no password in the outputs");
    }

    // The application keeps writing; its worker dies; `pulumi refresh` brings a new one.
    const written = await writeWorkload(source, "shop", { transactions: 15 });
    assert.equal(written.transactions, 15);
    const [first] = workerPids(names.online);
    assert.ok(first, "a worker serves the migration");
    process.kill(first, "SIGKILL");
    await until(() => !workerPids(names.online).includes(first), {
      what: "the killed worker is gone",
      intervalMs: 250,
    });
    const refreshed = await provider.read!(names.online, outs);
    assert.equal(refreshed.id, names.online);
    const live = refreshed.props as ResourceState;
    assert.equal(live.state, "WaitingForUserAction");
    await until(() => workerPids(names.online).some((p) => p !== first), {
      what: "a new worker runs",
      intervalMs: 250,
    });

    // `cutover: true`: an in-place update that drains and ends Succeeded.
    const cutoverInputs = { ...inputs, cutover: true };
    const diff = await provider.diff!(names.online, live, cutoverInputs);
    assert.deepEqual(diff, { changes: true, replaces: [], deleteBeforeReplace: false });
    const updated = await provider.update!(names.online, live, cutoverInputs);
    const done = updated.outs as ResourceState;
    assert.equal(done.state, "Succeeded");
    assert.equal(done.spec.cutover, true);
    const comparison = await compareDatabases(source, "shop", target, "shop");
    assert.deepEqual(comparison.differences, []);
    assert.deepEqual(await sourceLeftovers(source, names.online, "shop"), []);

    // Destroying a finished migration forgets it; the migrated data stays.
    await provider.delete!(names.online, done);
    assert.equal(await engine.getMigration(at(), names.online), undefined);
    assert.ok((await compareDatabases(source, "shop", target, "shop")).equal);
    // After a forget, a refresh reports the resource gone.
    assert.deepEqual(await provider.read!(names.online, done), {});
    await until(() => workerPids(names.online).length === 0, {
      what: "the worker exits",
      intervalMs: 250,
    });
  });

  it("create with runtime pool: no local worker; a pool runtime process copies every unit; ended, no runtime listed", async () => {
    await source.query("CREATE DATABASE pooled");
    await source.query(
      `CREATE TABLE parts (id int PRIMARY KEY, name text NOT NULL);
       INSERT INTO parts SELECT i, 'part ' || i FROM generate_series(1, 3000) i;
       CREATE TABLE bins (id int PRIMARY KEY, label text);
       INSERT INTO bins SELECT i, 'bin ' || i FROM generate_series(1, 500) i;`,
      [],
      "pooled",
    );
    const name = `prov-pool-${suffix}`;
    names.pool = name;
    const url = `postgresql://${target.user}@${target.host}:${target.port}/postgres?sslmode=disable`;
    const runtime = spawn(process.execPath, [RUNTIME_MAIN, "runtime", "--server", url], {
      env: {
        ...process.env,
        PGMIGRATE_TARGET_PASSWORD: target.password,
        PGMIGRATE_SOURCE_PASSWORD: source.password,
      },
      stdio: "ignore",
    });
    try {
      const provider = createMigrationProvider({ get: remembered });
      const inputs = inputsFor(name, ["pooled"], { mode: "Offline", runtime: { kind: "pool" } });
      assert.deepEqual((await provider.check!({}, inputs)).failures, []);
      const created = await provider.create(inputs);
      const outs = created.outs as ResourceState;
      assert.equal(outs.state, "Succeeded", outs.error ?? "");
      assert.deepEqual(workerPids(name), [], "no local worker for a pool migration");
      assert.deepEqual(
        (await compareDatabases(source, "pooled", target, "pooled")).differences,
        [],
      );
      const owners = await target.query<{ owner: string }>(
        "SELECT DISTINCT owner FROM pgmigrate.work_units WHERE migration = $1 AND kind = 'copy'",
        [name],
      );
      assert.deepEqual(
        owners.map((o) => o.owner.split(":").at(-2)),
        [String(runtime.pid)],
      );
      // Ended: no runtime serves it any more.
      assert.deepEqual(outs.runtimes, []);
      await provider.delete!(name, outs);
      assert.equal(await engine.getMigration(at(), name), undefined);
    } finally {
      runtime.kill("SIGKILL");
    }
  });

  it("create → delete while waiting: canceled and rolled back, nothing left behind", async () => {
    // Both destructive steps are announced as warnings of the resource, naming the databases.
    const warnings: string[] = [];
    const implementation = providerImplementation({
      info: () => undefined,
      warn: (message) => warnings.push(message),
    });
    // A target database in the way: overwriteDbsInTarget drops and recreates it.
    await target.query("CREATE DATABASE stock");
    await target.query("CREATE TABLE in_the_way (id int)", [], "stock");
    const created = await implementation.create(
      inputsFor(names.cancel, ["stock"], { overwriteDbsInTarget: true }),
    );
    assert.equal(created.outs?.state, "WaitingForUserAction");
    const hostPort = `${target.host}:${target.port}`;
    assert.deepEqual(warnings, [
      `pgmigrate ${names.cancel}: overwriteDbsInTarget: dropping the target database stock on ${hostPort} and recreating it from the source`,
    ]);
    const inTheWay = await target.query(
      "SELECT 1 FROM pg_class WHERE relname = 'in_the_way'",
      [],
      "stock",
    );
    assert.equal(inTheWay.length, 0, "the database was recreated");
    assert.equal(
      (await sourceLeftovers(source, names.cancel, "stock")).length,
      2,
      "slot and publication exist",
    );
    const [{ n: copied }] = await target.query<{ n: string }>(
      "SELECT count(*) AS n FROM items",
      [],
      "stock",
    );
    assert.equal(Number(copied), 2000);

    const last = await implementation.delete(
      names.cancel,
      created.outs as ResourceState,
      remembered(),
    );
    assert.equal(last?.state, "Canceled");
    assert.equal(
      warnings[1],
      `pgmigrate ${names.cancel}: destroy before the cutover: canceling rolls the target back: dropping the target database stock on ${hostPort} (created by this migration) and the source's replication slot and publication`,
    );
    const databases = await target.query("SELECT 1 FROM pg_database WHERE datname = 'stock'");
    assert.equal(databases.length, 0, "the target database the migration created is dropped");
    assert.deepEqual(await sourceLeftovers(source, names.cancel, "stock"), []);
    assert.equal(await engine.getMigration(at(), names.cancel), undefined);
    await until(() => workerPids(names.cancel).length === 0, {
      what: "the worker exits",
      intervalMs: 250,
    });
  });

  it("create with a failed validation lists the failed checks and leaves nothing", async () => {
    const implementation = providerImplementation(silent);
    await assert.rejects(
      implementation.create(inputsFor(names.invalid, ["no_such_db"], { mode: "Offline" })),
      (err: Error) => {
        assert.match(err.message, /ended ValidationFailed/);
        assert.match(err.message, /no_such_db/);
        assert.ok(!err.message.includes(source.password) && !err.message.includes(target.password));
        return true;
      },
    );
    assert.equal(
      await engine.getMigration(at(), names.invalid),
      undefined,
      "a retry can start afresh",
    );
    const slots = await source.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", [
      slotName(names.invalid, "no_such_db"),
    ]);
    assert.equal(slots.length, 0);
  });

  it("preview (check of a new migration) reports what pulumi up would find, never for long", async () => {
    await source.query("CREATE DATABASE nokey");
    await source.query("CREATE TABLE events (at timestamptz, body text)", [], "nokey");
    const said: string[] = [];
    const implementation = providerImplementation(
      { info: (m) => said.push(`info ${m}`), warn: (m) => said.push(`warning ${m}`) },
      { previewTimeoutMs: 2_000 },
    );
    const name = `prov-preview-${suffix}`;
    const news = inputsFor(name, ["nokey", "absent_db"]);
    const checked = await implementation.check({}, news);
    assert.deepEqual(checked.failures, [], "server findings are diagnostics, not input errors");
    const prefix = `warning pgmigrate ${name}: pulumi up will fail validation: `;
    assert.ok(
      said.some((l) => l.startsWith(`${prefix}database "absent_db" DatabaseExists Failed`)),
      said.join("\n"),
    );
    assert.ok(
      said.some(
        (l) =>
          l.startsWith(`${prefix}database "nokey" ReplicaIdentity Failed`) &&
          l.includes("public.events"),
      ),
      said.join("\n"),
    );
    assert.ok(!said.join("\n").includes(source.password), "no password in a diagnostic");
    assert.equal(await engine.getMigration(at(), name), undefined, "preview created nothing");

    // A migration that exists, or servers whose passwords are not known yet: no connection.
    said.length = 0;
    await implementation.check(news, { ...news, cutover: true });
    const unknownPassword = { ...endpoint(target), password: UNKNOWN };
    await implementation.check({}, { ...news, target: unknownPassword });
    assert.deepEqual(said, []);

    // A server that accepts connections and never answers holds the preview 2 s, not more.
    const silentServer = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silentServer.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = silentServer.address() as net.AddressInfo;
      const started = Date.now();
      const slow = await implementation.check(
        {},
        {
          ...news,
          source: { ...endpoint(source), host: "127.0.0.1", port },
        },
      );
      const took = Date.now() - started;
      assert.deepEqual(slow.failures, []);
      assert.ok(took < 4_000, `check took ${took} ms`);
      assert.deepEqual(said, [
        `warning pgmigrate ${name}: the servers did not answer the premigration checks within 2 s; pulumi up runs them again`,
      ]);
    } finally {
      silentServer.close();
    }
  });
});
