// Fidelity on real servers, through the in-process worker: the base copy is proved under its
// own snapshot (and a target that differs fails naming the table and key), materialized views
// are refreshed at cutover, replica identities come back, and large objects are copied.
import assert from "node:assert/strict";
import {
  createMigration,
  getMigration,
  isSettled,
  requestAction,
  waitForMigration,
} from "../../provider/api/index";
import { runWorker } from "../../provider/runtime/worker";
import type { MigrationOutputs, MigrationSpec } from "../../provider/spec/types";
import { startPostgres, type PgServer } from "../support/postgres";
import { specOf } from "../support/spec";

const SCHEMA = `
  CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric(12, 2));
  CREATE TABLE audit (at timestamptz, note text);
  INSERT INTO accounts SELECT i, 'owner ' || i, i * 1.5 FROM generate_series(1, 300) i;
  INSERT INTO audit SELECT '2024-01-01'::timestamptz + i * interval '1 hour', 'n' || i FROM generate_series(1, 40) i;`;

describe("fidelity", function () {
  let source: PgServer;
  let target: PgServer;

  before(async () => {
    [source, target] = await Promise.all([startPostgres(), startPostgres()]);
  });
  after(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  const at = () => ({
    target: specOf(source, target, { databases: ["x"] }, "x").target,
    controlDatabase: "postgres",
  });

  async function sourceDatabase(database: string, extra = ""): Promise<void> {
    await source.query(`CREATE DATABASE ${database}`);
    await source.query(SCHEMA + extra, [], database);
  }

  function worker(spec: MigrationSpec): Promise<void> {
    return runWorker({
      target: spec.target,
      controlDatabase: spec.controlDatabase,
      migrationName: spec.migrationName,
      sourcePassword: spec.source.password,
      heartbeatMs: 500,
    });
  }

  async function run(
    input: Record<string, unknown>,
  ): Promise<{ spec: MigrationSpec; done: Promise<void> }> {
    const spec = specOf(source, target, input);
    await createMigration(spec, { kind: "external" });
    return { spec, done: worker(spec) };
  }

  async function outputs(name: string): Promise<MigrationOutputs> {
    return (await getMigration(at(), name)) as MigrationOutputs;
  }

  async function identities(server: PgServer, database: string): Promise<Record<string, string>> {
    const rows = await server.query<{ name: string; identity: string }>(
      `SELECT c.relname AS name, c.relreplident AS identity FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' ORDER BY 1`,
      [],
      database,
    );
    return Object.fromEntries(rows.map((r) => [r.name, r.identity]));
  }

  // A materialized view reading another one through a plain view: refreshed in that order.
  const MATVIEWS = `
    CREATE MATERIALIZED VIEW rich AS SELECT id, balance FROM accounts WHERE balance > 400;
    CREATE VIEW rich_view AS SELECT * FROM rich;
    CREATE MATERIALIZED VIEW rich_total AS SELECT count(*) AS n, sum(balance) AS total FROM rich_view;
    CREATE MATERIALIZED VIEW never_filled AS SELECT 1 AS one WITH NO DATA;`;

  async function matview(server: PgServer, database: string, name: string): Promise<string> {
    const [row] = await server.query<{ rows: string }>(
      `SELECT coalesce(string_agg(m::text, ';' ORDER BY m::text), '') AS rows FROM ${name} m`,
      [],
      database,
    );
    return row.rows;
  }

  const rowsByMethod = (o: MigrationOutputs) =>
    o.verification?.tables.map((t) => [t.method, t.table, t.sourceRows, t.targetRows, t.match]);

  describe("verification under the copy's snapshot (the default)", () => {
    it("proves an offline copy: every table hashed, with its row count", async () => {
      await sourceDatabase("snap_offline", MATVIEWS);
      const { done } = await run({ migrationName: "snap-offline", databases: ["snap_offline"] });
      await done;
      const o = await outputs("snap-offline");
      assert.equal(o.error, null);
      assert.equal(o.state, "Succeeded");
      assert.equal(o.verification?.status, "Succeeded");
      assert.deepEqual(rowsByMethod(o), [
        ["snapshot", "public.accounts", 300, 300, true],
        ["snapshot", "public.audit", 40, 40, true],
      ]);
      // Materialized views hold what the copied tables give (the post-data restore refreshed them).
      for (const name of ["rich", "rich_total"]) {
        assert.equal(
          await matview(target, "snap_offline", name),
          await matview(source, "snap_offline", name),
        );
      }
      const [unfilled] = await target.query<{ populated: boolean }>(
        "SELECT ispopulated AS populated FROM pg_matviews WHERE matviewname = 'never_filled'",
        [],
        "snap_offline",
      );
      assert.equal(unfilled.populated, false);
    });

    it('counts after an offline copy with verify: "counts", as before', async () => {
      await sourceDatabase("counts_offline");
      const { done } = await run({
        migrationName: "counts-offline",
        databases: ["counts_offline"],
        verify: "counts",
      });
      await done;
      const o = await outputs("counts-offline");
      assert.equal(o.state, "Succeeded");
      assert.deepEqual(rowsByMethod(o), [
        ["counts", "public.accounts", 300, 300, true],
        ["counts", "public.audit", 40, 40, true],
      ]);
    });

    it("proves an online copy before applying changes, and counts again at cutover", async () => {
      await sourceDatabase("snap_online");
      const { done } = await run({
        migrationName: "snap-online",
        databases: ["snap_online"],
        mode: "Online",
        fixReplicaIdentity: "full",
      });
      const waiting = await waitForMigration(at(), "snap-online", isSettled, {
        timeoutMs: 120_000,
      });
      assert.equal(waiting.state, "WaitingForUserAction");
      // Verified at the snapshot: the rows the copy saw, not what arrived later.
      assert.deepEqual(rowsByMethod(waiting), [
        ["snapshot", "public.accounts", 300, 300, true],
        ["snapshot", "public.audit", 40, 40, true],
      ]);
      await source.query("INSERT INTO accounts VALUES (301, 'late', 1)", [], "snap_online");
      await waitForMigration(
        at(),
        "snap-online",
        (o) => o.dbDetails.snap_online.cdcInsertCounter >= 1,
        {
          timeoutMs: 60_000,
        },
      );
      await requestAction(at(), "snap-online", "cutover");
      await done;
      const o = await outputs("snap-online");
      assert.equal(o.error, null);
      assert.equal(o.state, "Succeeded");
      assert.deepEqual(rowsByMethod(o), [
        ["snapshot", "public.accounts", 300, 300, true],
        ["snapshot", "public.audit", 40, 40, true],
        ["counts", "public.accounts", 301, 301, true],
        ["counts", "public.audit", 40, 40, true],
      ]);
    });

    it("fails a copy the target changed as it was written, naming the table and the key", async () => {
      // A generated column whose "immutable" function answers differently on the target's
      // port: the row with id 7 is written differently there than it reads on the source.
      await sourceDatabase(
        "snap_drift",
        `CREATE FUNCTION public.tag(id int) RETURNS text LANGUAGE sql IMMUTABLE
           AS $$ SELECT CASE WHEN id = 7 AND current_setting('port') = '${target.port}' THEN 'drifted' ELSE 'same' END $$;
         ALTER TABLE accounts ADD COLUMN tag text GENERATED ALWAYS AS (public.tag(id)) STORED;`,
      );
      const { done } = await run({
        migrationName: "snap-drift",
        databases: ["snap_drift"],
        mode: "Online",
        fixReplicaIdentity: "full",
      });
      await done;
      const o = await outputs("snap-drift");
      assert.equal(o.state, "Failed");
      assert.match(
        o.error ?? "",
        /snap_drift\.public\.accounts \(source 300 rows, target 300; the row with key \(7\) differs\)/,
      );
      assert.equal(o.verification?.status, "Failed");
      assert.deepEqual(
        o.verification?.tables.filter((t) => !t.match).map((t) => [t.table, t.difference]),
        [["public.accounts", "the row with key (7) differs"]],
      );
      // Failed before any change was streamed: nothing left on the source.
      const slots = await source.query("SELECT 1 FROM pg_replication_slots");
      assert.equal(slots.length, 0);
      assert.equal(o.dbDetails.snap_drift.cdcInsertCounter, 0);
      // The failure put the identity fixReplicaIdentity changed back.
      assert.deepEqual(await identities(source, "snap_drift"), { accounts: "d", audit: "d" });
    });
  });

  describe("materialized views", () => {
    it("are refreshed on the target at cutover, in dependency order, after a refresh on the source", async () => {
      await sourceDatabase("mv_online", MATVIEWS);
      const { done } = await run({
        migrationName: "mv-online",
        databases: ["mv_online"],
        mode: "Online",
        fixReplicaIdentity: "full",
      });
      await waitForMigration(at(), "mv-online", isSettled, { timeoutMs: 120_000 });
      const before = await matview(source, "mv_online", "rich_total");
      await source.query(
        `UPDATE accounts SET balance = balance + 1000 WHERE id <= 20;
         INSERT INTO accounts VALUES (1001, 'new', 5000);
         REFRESH MATERIALIZED VIEW rich; REFRESH MATERIALIZED VIEW rich_total;`,
        [],
        "mv_online",
      );
      assert.notEqual(await matview(source, "mv_online", "rich_total"), before);
      await waitForMigration(
        at(),
        "mv-online",
        (o) => o.dbDetails.mv_online.cdcUpdateCounter >= 20,
        {
          timeoutMs: 60_000,
        },
      );
      // Replicated rows do not reach a materialized view: still the copy's contents.
      assert.equal(await matview(target, "mv_online", "rich_total"), before);
      await requestAction(at(), "mv-online", "cutover");
      await done;
      const o = await outputs("mv-online");
      assert.equal(o.error, null);
      assert.equal(o.state, "Succeeded");
      for (const name of ["rich", "rich_total"]) {
        assert.equal(
          await matview(target, "mv_online", name),
          await matview(source, "mv_online", name),
          name,
        );
      }
      const [unfilled] = await target.query<{ populated: boolean }>(
        "SELECT ispopulated AS populated FROM pg_matviews WHERE matviewname = 'never_filled'",
        [],
        "mv_online",
      );
      assert.equal(unfilled.populated, false);
    });
  });

  describe("large objects", () => {
    // One small object readable by everyone, one of 2.5 MB (several chunks) owned by a role
    // both servers have, one owned by a role only the source has; a column refers to them.
    const LARGE_OBJECTS = `
      CREATE TABLE documents (id int PRIMARY KEY, body oid);
      SELECT lo_from_bytea(424242, 'hello, large object');
      GRANT SELECT ON LARGE OBJECT 424242 TO PUBLIC;
      SELECT lo_from_bytea(424243, convert_to(repeat('0123456789abcdef', 163840), 'UTF8'));
      ALTER LARGE OBJECT 424243 OWNER TO lo_owner;
      GRANT UPDATE ON LARGE OBJECT 424243 TO lo_reader;
      SELECT lo_from_bytea(424244, decode('00ff00', 'hex'));
      ALTER LARGE OBJECT 424244 OWNER TO lo_ghost;
      INSERT INTO documents VALUES (1, 424242), (2, 424243), (3, 424244);`;

    interface ObjectState {
      oid: number;
      owner: string;
      acl: string | null;
      bytes: number;
      md5: string;
    }

    async function objects(server: PgServer, database: string): Promise<ObjectState[]> {
      return server.query<ObjectState & Record<string, unknown>>(
        `SELECT m.oid::int AS oid, pg_get_userbyid(m.lomowner) AS owner, m.lomacl::text AS acl,
                length(lo_get(m.oid)) AS bytes, md5(lo_get(m.oid)) AS md5
           FROM pg_largeobject_metadata m ORDER BY m.oid`,
        [],
        database,
      );
    }

    before(async () => {
      await source.query("CREATE ROLE lo_owner; CREATE ROLE lo_reader; CREATE ROLE lo_ghost");
      await target.query("CREATE ROLE lo_owner; CREATE ROLE lo_reader");
    });

    async function assertCopied(database: string, o: MigrationOutputs): Promise<void> {
      assert.equal(o.error, null);
      assert.equal(o.state, "Succeeded");
      const expected = (await objects(source, database)).map((lo) =>
        lo.owner === "lo_ghost" ? { ...lo, owner: target.user } : lo,
      );
      assert.equal(expected.length, 3);
      assert.equal(expected[1].bytes, 2_621_440);
      assert.deepEqual(await objects(target, database), expected);
      assert.deepEqual(
        o.verification?.tables.filter((t) => t.table === "pg_catalog.pg_largeobject"),
        [
          {
            databaseName: database,
            table: "pg_catalog.pg_largeobject",
            method: "snapshot",
            sourceRows: 3,
            targetRows: 3,
            match: true,
          },
        ],
      );
      const events = await target.query<{ message: string }>(
        "SELECT message FROM pgmigrate.events WHERE database = $1 AND message LIKE '%large objects owned%'",
        [database],
      );
      assert.match(events[0]?.message ?? "", /roles missing on the target \(lo_ghost\)/);
    }

    it("are identical after an offline migration: OIDs, bytes, owners and grants", async () => {
      await sourceDatabase("lo_offline", LARGE_OBJECTS);
      const { done } = await run({ migrationName: "lo-offline", databases: ["lo_offline"] });
      await done;
      await assertCopied("lo_offline", await outputs("lo-offline"));
    });

    it("are identical after an online migration, with the validation warning", async () => {
      await sourceDatabase("lo_online", LARGE_OBJECTS);
      const { done } = await run({
        migrationName: "lo-online",
        databases: ["lo_online"],
        mode: "Online",
        fixReplicaIdentity: "full",
      });
      const waiting = await waitForMigration(at(), "lo-online", isSettled, { timeoutMs: 120_000 });
      const check = waiting.validation?.databaseLevel[0].summary.find(
        (c) => c.type === "UnsupportedObjects",
      );
      assert.equal(check?.state, "Warning");
      assert.match(
        check?.messages[0] ?? "",
        /3 large object\(s\).*changes to large objects after it are not replicated/,
      );
      await requestAction(at(), "lo-online", "cutover");
      await done;
      await assertCopied("lo_online", await outputs("lo-online"));
    });
  });

  describe("replica identity (fixReplicaIdentity: full)", () => {
    it("is FULL while replicating, and the original again after cutover, on both sides", async () => {
      await sourceDatabase(
        "ident_done",
        "CREATE TABLE quiet (v int); ALTER TABLE quiet REPLICA IDENTITY NOTHING;",
      );
      const { done } = await run({
        migrationName: "ident-done",
        databases: ["ident_done"],
        mode: "Online",
        fixReplicaIdentity: "full",
      });
      await waitForMigration(at(), "ident-done", isSettled, { timeoutMs: 120_000 });
      assert.deepEqual(await identities(source, "ident_done"), {
        accounts: "d",
        audit: "f",
        quiet: "f",
      });
      await source.query("UPDATE audit SET note = 'changed' WHERE note = 'n3'", [], "ident_done");
      await waitForMigration(
        at(),
        "ident-done",
        (o) => o.dbDetails.ident_done.cdcUpdateCounter >= 1,
        {
          timeoutMs: 60_000,
        },
      );
      await requestAction(at(), "ident-done", "cutover");
      await done;
      const o = await outputs("ident-done");
      assert.equal(o.error, null);
      assert.equal(o.state, "Succeeded");
      const original = { accounts: "d", audit: "d", quiet: "n" };
      assert.deepEqual(await identities(source, "ident_done"), original);
      assert.deepEqual(await identities(target, "ident_done"), original);
      const [changed] = await target.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM audit WHERE note = 'changed'",
        [],
        "ident_done",
      );
      assert.equal(changed.n, 1);
    });

    it("is the original again after a cancel, on the source and on a kept target database", async () => {
      await sourceDatabase("ident_cancel");
      // Created beforehand: a cancel keeps it, so its identities can be read afterwards.
      await target.query("CREATE DATABASE ident_cancel");
      const { done } = await run({
        migrationName: "ident-cancel",
        databases: ["ident_cancel"],
        mode: "Online",
        fixReplicaIdentity: "full",
      });
      await waitForMigration(at(), "ident-cancel", isSettled, { timeoutMs: 120_000 });
      assert.deepEqual(await identities(target, "ident_cancel"), { accounts: "d", audit: "f" });
      await requestAction(at(), "ident-cancel", "cancel");
      await done;
      assert.equal((await outputs("ident-cancel")).state, "Canceled");
      assert.deepEqual(await identities(source, "ident_cancel"), { accounts: "d", audit: "d" });
      assert.deepEqual(await identities(target, "ident_cancel"), { accounts: "d", audit: "d" });
    });
  });
});
