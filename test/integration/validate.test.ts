// Premigration validation on real servers: a clean migration passes, and each problem a user can
// run into (wrong password, missing database, old target, missing extension, ...) is a clear check.
import assert from "node:assert/strict";
import net from "node:net";
import type {
  CheckResult,
  Endpoint,
  MigrationSpec,
  ValidationReport,
} from "../../provider/spec/types";
import {
  findDumpTools,
  tablesWithoutReplicaIdentity,
  validateMigration,
} from "../../provider/validate";
import { addTableWithoutPrimaryKey, loadFixture } from "../support/fixture";
import { startPostgres, type PgServer } from "../support/postgres";

function endpoint(server: PgServer, overrides: Partial<Endpoint> = {}): Endpoint {
  return {
    host: server.host,
    port: server.port,
    username: server.user,
    password: server.password,
    sslMode: "prefer",
    ...overrides,
  };
}

function makeSpec(
  source: PgServer,
  target: PgServer,
  overrides: Partial<MigrationSpec> = {},
): MigrationSpec {
  return {
    migrationName: "validate-test",
    source: endpoint(source),
    target: endpoint(target),
    databases: ["app"],
    mode: "Online",
    option: "Validate",
    overwriteDbsInTarget: false,
    cutover: false,
    parallelism: { tables: 2, indexes: 2 },
    migrateRoles: false,
    verify: "counts",
    controlDatabase: "postgres",
    ...overrides,
  };
}

function serverCheck(report: ValidationReport, type: string): CheckResult {
  const found = report.serverLevel.find((c) => c.type === type);
  assert.ok(found, `no server-level check ${type} in ${JSON.stringify(report, null, 1)}`);
  return found;
}

function dbCheck(report: ValidationReport, database: string, type: string): CheckResult {
  const db = report.databaseLevel.find((d) => d.databaseName === database);
  const found = db?.summary.find((c) => c.type === type);
  assert.ok(found, `no check ${type} for ${database} in ${JSON.stringify(report, null, 1)}`);
  return found;
}

function assertNoSecrets(report: ValidationReport, ...secrets: string[]): void {
  const text = JSON.stringify(report);
  for (const secret of secrets)
    assert.ok(!text.includes(secret), "a password leaked into the report");
}

const allPasswords = new Set<string>();

/** Validates, and checks that no password (the spec's or any test server's) is in the report. */
async function validate(spec: MigrationSpec): Promise<ValidationReport> {
  const report = await validateMigration(spec);
  for (const p of [spec.source.password, spec.target.password]) if (p) allPasswords.add(p);
  assertNoSecrets(report, ...allPasswords);
  return report;
}

/** A database with one small table that has a primary key. */
async function createDatabase(server: PgServer, name: string, ddl = ""): Promise<void> {
  await server.query(`CREATE DATABASE ${name}`);
  await server.query(
    `CREATE TABLE items (id int PRIMARY KEY, label text);
     INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g; ${ddl}`,
    [],
    name,
  );
}

async function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

describe("premigration validation", () => {
  let pg15: PgServer;
  let pg15target: PgServer;
  let pg13: PgServer;
  let pg16: PgServer;

  before(async () => {
    [pg15, pg15target, pg13, pg16] = await Promise.all([
      startPostgres({ version: 15 }),
      startPostgres({ version: 15 }),
      startPostgres({ version: 13, settings: { work_mem: "'64MB'" } }),
      startPostgres({ version: 16, settings: { work_mem: "'4MB'" } }),
    ]);
    for (const server of [pg15, pg15target, pg13, pg16]) allPasswords.add(server.password);
    await Promise.all([
      createDatabase(pg15, "app"),
      createDatabase(pg13, "app13"),
      createDatabase(pg16, "app16"),
    ]);
  });
  after(async () => {
    await Promise.all([pg15?.stop(), pg15target?.stop(), pg13?.stop(), pg16?.stop()]);
  });

  it("passes a clean 15 → 15 online migration, every check Succeeded", async () => {
    const report = await validate(makeSpec(pg15, pg15target));
    assert.equal(report.status, "Succeeded", JSON.stringify(report, null, 1));
    const types = report.serverLevel.map((c) => c.type);
    for (const type of [
      "SourceConnectivity",
      "TargetConnectivity",
      "SourceVersion",
      "TargetVersion",
      "LogicalReplication",
      "ReplicationSlots",
      "WalSenders",
      "ReplicationPrivilege",
      "DumpTools",
      "CreateDatabasePrivilege",
      "TargetReadOnly",
      "ServerParameters",
    ]) {
      assert.ok(types.includes(type), `missing ${type}`);
    }
    assert.deepEqual(
      report.databaseLevel[0].summary.map((c) => c.type),
      [
        "DatabaseExists",
        "TargetDatabase",
        "Extensions",
        "Collations",
        "Encoding",
        "ReplicaIdentity",
        "PublicationPrivilege",
        "TargetTriggers",
        "Privileges",
        "UnsupportedObjects",
        "ReadOnlyDatabase",
        "Money",
      ],
    );
    assert.match(
      serverCheck(report, "SourceConnectivity").messages[0],
      /PostgreSQL 15\.\d+, SSL off/,
    );
    assert.match(dbCheck(report, "app", "TargetDatabase").messages[0], /will be created/);
    assertNoSecrets(report, pg15.password, pg15target.password);
  });

  it("passes 13 → 16 and lists server parameters that differ", async () => {
    const report = await validate(makeSpec(pg13, pg16, { databases: ["app13"] }));
    assert.equal(report.status, "Succeeded", JSON.stringify(report, null, 1));
    assert.match(serverCheck(report, "TargetVersion").messages[0], /target runs PostgreSQL 16/);
    const params = serverCheck(report, "ServerParameters");
    assert.equal(params.state, "Succeeded");
    assert.ok(
      params.messages.includes("work_mem: source 64MB, target 4MB"),
      params.messages.join("\n"),
    );
  });

  it("fails 16 → 13 on TargetVersion", async () => {
    const report = await validate(makeSpec(pg16, pg13, { databases: ["app16"] }));
    assert.equal(report.status, "Failed");
    const version = serverCheck(report, "TargetVersion");
    assert.equal(version.state, "Failed");
    assert.match(version.messages[0], /older than the source.*must be 16 or later/);
    // Only a pg_dump 16 or later can read a 16 source; the machine may not have one.
    assert.equal(
      serverCheck(report, "DumpTools").state,
      findDumpTools(16) ? "Succeeded" : "Failed",
    );
  });

  it("reports a wrong source password as failed authentication, without any password", async () => {
    const wrong = "not-the-password-4711";
    const spec = makeSpec(pg15, pg15target, { source: endpoint(pg15, { password: wrong }) });
    const report = await validate(spec);
    assert.equal(report.status, "Failed");
    const conn = serverCheck(report, "SourceConnectivity");
    assert.equal(conn.state, "Failed");
    assert.equal(
      conn.messages[0],
      `authentication failed for user "postgres" on 127.0.0.1:${pg15.port}: check the password (and that the user exists)`,
    );
    assert.equal(serverCheck(report, "TargetConnectivity").state, "Succeeded");
    assertNoSecrets(report, wrong, pg15.password, pg15target.password);
  });

  it("reports an unreachable target quickly, naming host and port", async () => {
    const port = await closedPort();
    const started = Date.now();
    const report = await validate(
      makeSpec(pg15, pg15target, { target: { ...endpoint(pg15target), port } }),
    );
    assert.ok(Date.now() - started < 15_000, "validation of an unreachable host took too long");
    const conn = serverCheck(report, "TargetConnectivity");
    assert.equal(conn.state, "Failed");
    assert.match(conn.messages[0], new RegExp(`127\\.0\\.0\\.1:${port}`));
    assert.match(conn.messages[0], /connection refused/);
    assert.equal(report.status, "Failed");
  });

  it("fails when sslMode require meets a server without SSL", async () => {
    const spec = makeSpec(pg15, pg15target, { source: endpoint(pg15, { sslMode: "require" }) });
    const conn = serverCheck(await validate(spec), "SourceConnectivity");
    assert.equal(conn.state, "Failed");
    assert.match(conn.messages[0], /does not accept SSL connections but sslMode is "require"/);
  });

  it("fails a database missing on the source and still checks the server", async () => {
    const report = await validate(makeSpec(pg15, pg15target, { databases: ["app", "no_such_db"] }));
    assert.equal(report.status, "Failed");
    assert.equal(serverCheck(report, "SourceConnectivity").state, "Succeeded");
    const missing = dbCheck(report, "no_such_db", "DatabaseExists");
    assert.equal(missing.state, "Failed");
    assert.match(
      missing.messages[0],
      /database "no_such_db" does not exist on the source 127\.0\.0\.1:\d+/,
    );
    assert.match(missing.messages[0], /databases there: .*app/);
    assert.equal(dbCheck(report, "app", "DatabaseExists").state, "Succeeded");
  });

  it("fails a non-empty target database, and warns when overwriting it", async () => {
    await createDatabase(pg15, "orders");
    await createDatabase(pg15target, "orders");
    const spec = makeSpec(pg15, pg15target, { databases: ["orders"], mode: "Offline" });
    const refused = dbCheck(await validate(spec), "orders", "TargetDatabase");
    assert.equal(refused.state, "Failed");
    assert.match(
      refused.messages[0],
      /already exists on the target and has 1 table\(s\) \(public\.items\)/,
    );
    assert.match(refused.messages[0], /overwriteDbsInTarget/);

    const overwrite = await validate({ ...spec, overwriteDbsInTarget: true });
    const warned = dbCheck(overwrite, "orders", "TargetDatabase");
    assert.equal(warned.state, "Warning");
    assert.match(warned.messages[0], /will be dropped and recreated/);
    assert.equal(overwrite.status, "Warning");
  });

  it("accepts an existing empty target database", async () => {
    await createDatabase(pg15, "empty_target");
    await pg15target.query("CREATE DATABASE empty_target");
    const spec = makeSpec(pg15, pg15target, { databases: ["empty_target"] });
    const check = dbCheck(await validate(spec), "empty_target", "TargetDatabase");
    assert.equal(check.state, "Succeeded");
    assert.match(check.messages[0], /has no tables/);
  });

  it("fails an extension the target does not have (pltcl: 13 → system 15)", async () => {
    const [available] = await pg13.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_available_extensions WHERE name = 'pltcl'",
    );
    const [onTarget] = await pg15target.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_available_extensions WHERE name = 'pltcl'",
    );
    assert.equal(available.n, 1, "the PostgreSQL 13 binaries ship pltcl");
    assert.equal(onTarget.n, 0, "the system PostgreSQL 15 has no pltcl");
    await createDatabase(pg13, "tcl", "CREATE EXTENSION pltcl; CREATE EXTENSION citext;");
    const report = await validate(makeSpec(pg13, pg15target, { databases: ["tcl"] }));
    const ext = dbCheck(report, "tcl", "Extensions");
    assert.equal(ext.state, "Failed");
    assert.equal(ext.messages.length, 1, ext.messages.join("\n"));
    assert.match(
      ext.messages[0],
      /extension "pltcl" 1\.0 is installed on the source but not available on the target/,
    );
    assert.equal(report.status, "Failed");
  });

  it("fails a collation the target lacks, but not a user-defined one pg_dump recreates", async () => {
    // The system 15 and the embedded 16 are built with different ICU versions.
    const target = new Set(
      (
        await pg16.query<{ collname: string }>(
          "SELECT collname FROM pg_collation WHERE collprovider = 'i'",
        )
      ).map((r) => r.collname),
    );
    const sourceOnly = (
      await pg15.query<{ collname: string }>(
        "SELECT collname FROM pg_collation WHERE collprovider = 'i' ORDER BY collname",
      )
    )
      .map((r) => r.collname)
      .find((name) => !target.has(name));
    assert.ok(sourceOnly, "expected an ICU collation that only the source has");
    await createDatabase(
      pg15,
      "coll",
      `CREATE COLLATION my_c FROM "C";
       CREATE TABLE people (id int PRIMARY KEY, name text COLLATE "${sourceOnly}", code text COLLATE my_c);`,
    );
    const report = await validate(makeSpec(pg15, pg16, { databases: ["coll"] }));
    const coll = dbCheck(report, "coll", "Collations");
    assert.equal(coll.state, "Failed");
    assert.equal(coll.messages.length, 1, coll.messages.join("\n"));
    assert.ok(
      coll.messages[0].includes(`collation "${sourceOnly}" (icu) does not exist on the target`),
    );
    assert.match(coll.messages[0], /used by public\.people\.name/);
    assert.equal(dbCheck(report, "coll", "Encoding").state, "Succeeded");
  });

  it("fails a source user without REPLICATION, and accepts rds_replication on AWS", async () => {
    const password = "repl-user-secret-1";
    await pg15.query(`CREATE ROLE app_reader LOGIN PASSWORD '${password}'`);
    await pg15.query("GRANT CONNECT ON DATABASE app TO app_reader");
    await pg15.query("GRANT SELECT ON ALL TABLES IN SCHEMA public TO app_reader", [], "app");
    const source = endpoint(pg15, { username: "app_reader", password });
    const report = await validate(makeSpec(pg15, pg15target, { source }));
    const priv = serverCheck(report, "ReplicationPrivilege");
    assert.equal(priv.state, "Failed");
    assert.match(
      priv.messages[0],
      /"app_reader" has neither the REPLICATION attribute nor superuser/,
    );
    assert.match(priv.messages[0], /ALTER ROLE "app_reader" WITH REPLICATION/);
    assertNoSecrets(report, password);

    await pg15.query("CREATE ROLE rds_replication");
    await pg15.query("GRANT rds_replication TO app_reader");
    const aws = await validate(
      makeSpec(pg15, pg15target, { source: { ...source, serverType: "AWS_RDS" } }),
    );
    assert.equal(serverCheck(aws, "ReplicationPrivilege").state, "Succeeded");
  });

  it("fails a target user without CREATEDB", async () => {
    const password = "no-createdb-secret-2";
    await pg15target.query(`CREATE ROLE plain_user LOGIN PASSWORD '${password}'`);
    const spec = makeSpec(pg15, pg15target, {
      target: endpoint(pg15target, { username: "plain_user", password }),
    });
    const report = await validate(spec);
    const check = serverCheck(report, "CreateDatabasePrivilege");
    assert.equal(check.state, "Failed");
    assert.match(
      check.messages[0],
      /"plain_user" may not create databases: run ALTER ROLE "plain_user" CREATEDB;/,
    );
    assertNoSecrets(report, password);
  });

  it("fails a target where default_transaction_read_only is on", async () => {
    const password = "read-only-secret-3";
    await pg15target.query(`CREATE ROLE ro_admin LOGIN CREATEDB PASSWORD '${password}'`);
    await pg15target.query("ALTER ROLE ro_admin SET default_transaction_read_only = on");
    const spec = makeSpec(pg15, pg15target, {
      target: endpoint(pg15target, { username: "ro_admin", password }),
    });
    const report = await validate(spec);
    const check = serverCheck(report, "TargetReadOnly");
    assert.equal(check.state, "Failed");
    assert.match(check.messages[0], /default_transaction_read_only is on/);
    assert.equal(serverCheck(report, "CreateDatabasePrivilege").state, "Succeeded");
  });

  it("fails online tables without a primary key, and warns with fixReplicaIdentity", async () => {
    await createDatabase(
      pg15,
      "nopk",
      `CREATE TABLE events (at timestamptz, payload text);
       CREATE TABLE tags (id int PRIMARY KEY, name text);
       ALTER TABLE tags REPLICA IDENTITY NOTHING;
       CREATE TABLE keyed (code text NOT NULL, note text);
       CREATE UNIQUE INDEX keyed_code ON keyed (code);
       ALTER TABLE keyed REPLICA IDENTITY USING INDEX keyed_code;`,
    );
    const spec = makeSpec(pg15, pg15target, { databases: ["nopk"] });
    const report = await validate(spec);
    const check = dbCheck(report, "nopk", "ReplicaIdentity");
    assert.equal(check.state, "Failed");
    assert.match(
      check.messages[0],
      /^tables without a primary key or replica identity: public\.events, public\.tags\./,
    );
    assert.match(check.messages[0], /reject their UPDATE and DELETE/);

    const fixed = await validate({ ...spec, fixReplicaIdentity: "full" });
    const warned = dbCheck(fixed, "nopk", "ReplicaIdentity");
    assert.equal(warned.state, "Warning");
    assert.match(
      warned.messages[0],
      /^REPLICA IDENTITY FULL will be applied to: public\.events, public\.tags /,
    );
    assert.equal(fixed.status, "Warning");
    // Validation only looks.
    const [events] = await pg15.query<{ r: string }>(
      "SELECT relreplident AS r FROM pg_class WHERE relname = 'events'",
      [],
      "nopk",
    );
    assert.equal(events.r, "d");

    const offline = await validate({ ...spec, mode: "Offline" });
    assert.ok(!offline.databaseLevel[0].summary.some((c) => c.type === "ReplicaIdentity"));

    assert.deepEqual(await tablesWithoutReplicaIdentity(endpoint(pg15), "nopk"), [
      { schema: "public", name: "events" },
      { schema: "public", name: "tags" },
    ]);
  });

  it("warns about unlogged tables, large objects, user-defined casts and base types", async () => {
    await createDatabase(
      pg15,
      "extras",
      `CREATE UNLOGGED TABLE cache (k text PRIMARY KEY, v text);
       SELECT lo_from_bytea(0, 'hello');
       CREATE TYPE mood AS ENUM ('sad', 'happy');
       CREATE FUNCTION mood_rank(mood) RETURNS int LANGUAGE sql AS 'SELECT 1';
       CREATE CAST (mood AS int) WITH FUNCTION mood_rank(mood);
       CREATE TYPE mytext;
       CREATE FUNCTION mytext_in(cstring) RETURNS mytext LANGUAGE internal IMMUTABLE STRICT AS 'textin';
       CREATE FUNCTION mytext_out(mytext) RETURNS cstring LANGUAGE internal IMMUTABLE STRICT AS 'textout';
       CREATE TYPE mytext (INPUT = mytext_in, OUTPUT = mytext_out, LIKE = text);`,
    );
    const report = await validate(makeSpec(pg15, pg15target, { databases: ["extras"] }));
    const check = dbCheck(report, "extras", "UnsupportedObjects");
    assert.equal(check.state, "Warning");
    assert.deepEqual(check.messages, [
      "1 large object(s) (pg_largeobject) are copied as of the snapshot; changes to large objects after it are not replicated (as with PostgreSQL's logical replication): stop changing them before the migration starts, or copy them again after the cutover",
      "unlogged tables are copied in the base copy, but their later changes are not replicated (logical replication does not see them): public.cache",
      // Names print schema-qualified: our sessions' search_path is pg_catalog only.
      "user-defined casts are not migrated: public.mood AS integer",
      "user-defined base types are not migrated (they need their C functions on the target): public.mytext",
    ]);
    assert.equal(report.status, "Warning");
  });

  it("validates the foundation fixture 13 → 16 online, and names its table without a primary key", async () => {
    await loadFixture(pg13, "fixture", { rows: 200 });
    const spec = makeSpec(pg13, pg16, { databases: ["fixture"] });
    const clean = await validate(spec);
    assert.equal(clean.status, "Succeeded", JSON.stringify(clean, null, 1));
    const table = await addTableWithoutPrimaryKey(pg13, "fixture");
    const report = await validate(spec);
    const check = dbCheck(report, "fixture", "ReplicaIdentity");
    assert.equal(check.state, "Failed");
    assert.ok(check.messages[0].includes(`${table.schema}.${table.name}`), check.messages[0]);
    assert.deepEqual(await tablesWithoutReplicaIdentity(endpoint(pg13), "fixture"), [table]);
  });
});

describe("premigration validation of a source not set up for logical replication", () => {
  let source: PgServer;
  let target: PgServer;

  before(async () => {
    [source, target] = await Promise.all([
      startPostgres({
        version: 15,
        settings: { wal_level: "replica", max_replication_slots: 2, max_wal_senders: 1 },
      }),
      startPostgres({ version: 15 }),
    ]);
    await createDatabase(source, "one");
    await createDatabase(source, "two");
    // A physical slot someone else uses: only one of the two slots is left.
    await source.query("SELECT pg_create_physical_replication_slot('standby_1')");
  });
  after(async () => {
    await source?.query("SELECT pg_drop_replication_slot('standby_1')").catch(() => undefined);
    await Promise.all([source?.stop(), target?.stop()]);
  });

  it("fails wal_level, free replication slots and wal senders for an online migration", async () => {
    const report = await validate(makeSpec(source, target, { databases: ["one", "two"] }));
    assert.equal(report.status, "Failed");
    const wal = serverCheck(report, "LogicalReplication");
    assert.equal(wal.state, "Failed");
    assert.match(wal.messages[0], /wal_level is "replica".*set wal_level = logical/);
    const slots = serverCheck(report, "ReplicationSlots");
    assert.equal(slots.state, "Failed");
    assert.match(
      slots.messages[0],
      /max_replication_slots is 2 and 1 are in use, so 1 are free but 2 are needed/,
    );
    const senders = serverCheck(report, "WalSenders");
    assert.equal(senders.state, "Failed");
    assert.match(senders.messages[0], /max_wal_senders is 1 but 2 are needed/);
  });

  it("skips the replication checks for an offline migration", async () => {
    const report = await validate(
      makeSpec(source, target, { databases: ["one", "two"], mode: "Offline" }),
    );
    assert.equal(report.status, "Succeeded", JSON.stringify(report, null, 1));
    for (const type of [
      "LogicalReplication",
      "ReplicationSlots",
      "WalSenders",
      "ReplicationPrivilege",
    ]) {
      assert.ok(!report.serverLevel.some((c) => c.type === type), `${type} should not run offline`);
    }
  });

  it("lists an AWS-specific fix for wal_level", async () => {
    const spec = makeSpec(source, target, { databases: ["one"] });
    const report = await validate({
      ...spec,
      source: { ...spec.source, serverType: "AWS_AURORA" },
    });
    assert.match(
      serverCheck(report, "LogicalReplication").messages[0],
      /rds\.logical_replication = 1/,
    );
  });
});
