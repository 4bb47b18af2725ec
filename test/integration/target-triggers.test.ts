// Target triggers during an online migration: a replicated change already carries what the
// source's triggers did, so none may fire again on the target. A non-superuser target user
// (managed servers' admins) cannot set session_replication_role: its triggers are disabled while
// changes are applied; ENABLE ALWAYS / REPLICA triggers fire even under the replica role and are
// disabled in every case. At cutover (or cancel) every trigger is back exactly as it was.
import assert from "node:assert/strict";
import { Client } from "pg";
import {
  createMigration,
  getMigration,
  isEnded,
  isSettled,
  requestAction,
  waitForMigration,
} from "../../provider/api/index";
import { MigrationError, SQLSTATE } from "../../provider/pg/errors";
import { TARGET_BOOKKEEPING_SCHEMA } from "../../provider/pg/names";
import { restoreTargetTriggers, suspendTargetTriggers } from "../../provider/runtime/triggers";
import type {
  CheckResult,
  Endpoint,
  MigrationOutputs,
  MigrationSpec,
} from "../../provider/spec/types";
import { compareDatabases } from "../support/checksum";
import { loadFixture, writeWorkload } from "../support/fixture";
import { controlOf, count, onlineSpec, ourSourceObjects, Scenario } from "../support/online";
import type { PgServer } from "../support/postgres";

const DATABASE = "shop";
const APP_PASSWORD = "app-target-secret-7f3";
const AUDIT_ROWS = `SELECT count(*) AS n FROM "Sales".order_audit`;

// User triggers (partition clones included; foreign-key and constraint-index triggers, whose
// names carry OIDs, left out) by table and name, with pg_trigger.tgenabled.
const TRIGGER_STATES_SQL = `
SELECT format('%I.%I', n.nspname, c.relname) || ' ' || t.tgname AS name, t.tgenabled::text AS enabled
  FROM pg_trigger t
  JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE (NOT t.tgisinternal OR t.tgparentid <> 0)
   AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.oid = t.tgconstraint AND k.contype <> 't')
 ORDER BY 1`;

async function triggerStates(server: PgServer, database: string): Promise<Record<string, string>> {
  const rows = await server.query<{ name: string; enabled: string }>(
    TRIGGER_STATES_SQL,
    [],
    database,
  );
  return Object.fromEntries(rows.map((r) => [r.name, r.enabled]));
}

/** The source's trigger states with those in `firing` disabled. */
function whileApplying(
  source: Record<string, string>,
  firing: readonly string[],
): Record<string, string> {
  return Object.fromEntries(
    Object.entries(source).map(([name, enabled]) => [
      name,
      firing.includes(enabled) ? "D" : enabled,
    ]),
  );
}

function endpointAs(server: PgServer, username: string, password: string): Endpoint {
  return { host: server.host, port: server.port, username, password, sslMode: "disable" };
}

function dbCheck(o: MigrationOutputs, type: string): CheckResult {
  const found = o.validation?.databaseLevel
    .find((d) => d.databaseName === DATABASE)
    ?.summary.find((c) => c.type === type);
  assert.ok(found, `no ${type} check in ${JSON.stringify(o.validation, null, 1)}`);
  return found;
}

async function bookkeepingLeft(server: PgServer, database: string): Promise<number> {
  return count(
    server,
    database,
    `SELECT count(*) AS n FROM pg_namespace WHERE nspname = '${TARGET_BOOKKEEPING_SCHEMA}'`,
  );
}

/**
 * Online migration of the fixture: streaming, `inspect` while waiting for the cutover, the
 * fixture workload on the source, cutover. Returns the final outputs.
 */
async function migrateWithWorkload(
  s: Scenario,
  spec: MigrationSpec,
  inspect: (waiting: MigrationOutputs) => Promise<void>,
): Promise<MigrationOutputs> {
  const at = controlOf(spec);
  await createMigration(spec, { kind: "external" });
  const worker = s.runWorker(spec);
  const waiting = await waitForMigration(at, spec.migrationName, isSettled, {
    timeoutMs: 180_000,
  });
  assert.equal(waiting.error, null);
  assert.equal(waiting.state, "WaitingForUserAction");
  await inspect(waiting);

  const auditBefore = await count(s.source, DATABASE, AUDIT_ROWS);
  const written = await writeWorkload(s.source, DATABASE, { transactions: 40 });
  assert.equal(written.transactions, 40);
  assert.ok((await count(s.source, DATABASE, AUDIT_ROWS)) > auditBefore, "the source audited");
  await waitForMigration(
    at,
    spec.migrationName,
    (o) => isEnded(o.state) || o.dbDetails[DATABASE].cdcInsertCounter >= written.inserts,
    { timeoutMs: 120_000 },
  );

  await requestAction(at, spec.migrationName, "cutover");
  await worker;
  const done = (await getMigration(at, spec.migrationName)) as MigrationOutputs;
  assert.equal(done.error, null);
  assert.equal(done.state, "Succeeded");
  return done;
}

/** Same rows everywhere (no extra audit rows), same trigger states, nothing of ours left. */
async function assertIdentical(s: Scenario): Promise<void> {
  const comparison = await compareDatabases(s.source, DATABASE, s.target, DATABASE);
  assert.deepEqual(comparison.differences, []);
  assert.equal(
    await count(s.target, DATABASE, AUDIT_ROWS),
    await count(s.source, DATABASE, AUDIT_ROWS),
  );
  assert.deepEqual(
    await triggerStates(s.target, DATABASE),
    await triggerStates(s.source, DATABASE),
  );
  assert.deepEqual(await ourSourceObjects(s.source, DATABASE), []);
  assert.equal(await bookkeepingLeft(s.target, DATABASE), 0);
}

describe("target triggers during an online migration", function () {
  describe("a target user that is no superuser (PostgreSQL 15 → 15)", () => {
    const s = new Scenario();
    let app: Endpoint;
    before(async () => {
      await s.start(15, 15);
      await loadFixture(s.source, DATABASE, { rows: 400 });
      await s.target.query(`CREATE ROLE app LOGIN CREATEDB PASSWORD '${APP_PASSWORD}'`);
      // Room for the control schema, as a managed server's admin has.
      await s.target.query("GRANT CREATE ON DATABASE postgres TO app");
      app = endpointAs(s.target, "app", APP_PASSWORD);
    });
    after(() => s.stop());

    it("really cannot set session_replication_role", async () => {
      const client = new Client({
        host: app.host,
        port: app.port,
        user: app.username,
        password: APP_PASSWORD,
        database: "postgres",
      });
      await client.connect();
      try {
        await assert.rejects(client.query("SET session_replication_role = replica"), {
          code: SQLSTATE.insufficientPrivilege,
        });
      } finally {
        await client.end();
      }
    });

    it("disables the audit trigger while applying, restores it at cutover, no extra audit rows", async () => {
      const spec = onlineSpec(s.source, s.target, "trig-app", [DATABASE], { target: app });
      const source = await triggerStates(s.source, DATABASE);
      assert.equal(source['"Sales"."order" order_audit'], "O");

      const done = await migrateWithWorkload(s, spec, async (waiting) => {
        const check = dbCheck(waiting, "TargetTriggers");
        assert.equal(check.state, "Warning");
        assert.match(check.messages[0], /"app" may not set session_replication_role/);
        assert.match(check.messages[0], /order_audit on "Sales"\.order/);
        assert.equal(dbCheck(waiting, "PublicationPrivilege").state, "Succeeded");

        // While streaming: every trigger that fires in an origin session is off, its state recorded.
        assert.deepEqual(
          await triggerStates(s.target, DATABASE),
          whileApplying(source, ["O", "A"]),
        );
        const recorded = await s.target.query<{ trigger_name: string; enabled: string }>(
          `SELECT trigger_name, enabled FROM ${TARGET_BOOKKEEPING_SCHEMA}.suspended_triggers ORDER BY 1`,
          [],
          DATABASE,
        );
        assert.deepEqual(recorded, [
          { trigger_name: "items_search_key", enabled: "O" },
          { trigger_name: "order_audit", enabled: "O" },
        ]);
      });
      assert.equal(done.dbDetails[DATABASE].migrationState, "Succeeded");
      await assertIdentical(s);
    });

    it("puts the triggers back when a migration into an existing database is canceled", async () => {
      const schema = `
        CREATE TABLE public.account (id int PRIMARY KEY, balance numeric NOT NULL);
        CREATE TABLE public.account_log (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, account int);
        CREATE FUNCTION public.log_account() RETURNS trigger LANGUAGE plpgsql AS
          'BEGIN INSERT INTO public.account_log (account) VALUES (NEW.id); RETURN NEW; END';
        CREATE TRIGGER account_log AFTER INSERT ON public.account FOR EACH ROW EXECUTE FUNCTION public.log_account();
        CREATE TRIGGER account_always AFTER UPDATE ON public.account FOR EACH ROW EXECUTE FUNCTION public.log_account();
        ALTER TABLE public.account ENABLE ALWAYS TRIGGER account_always;
        INSERT INTO public.account SELECT g, 0 FROM generate_series(1, 50) g;`;
      await s.source.query("CREATE DATABASE kept");
      await s.source.query(schema, [], "kept");
      // The database exists (empty) before the migration: a cancel keeps it.
      await s.target.query("CREATE DATABASE kept OWNER app");
      const spec = onlineSpec(s.source, s.target, "trig-cancel", ["kept"], { target: app });
      const at = controlOf(spec);
      await createMigration(spec, { kind: "external" });
      const worker = s.runWorker(spec);
      await waitForMigration(at, spec.migrationName, isSettled, { timeoutMs: 120_000 });
      const source = await triggerStates(s.source, "kept");
      assert.deepEqual(source, {
        "public.account account_always": "A",
        "public.account account_log": "O",
      });
      assert.deepEqual(await triggerStates(s.target, "kept"), whileApplying(source, ["O", "A"]));

      await s.source.query("INSERT INTO public.account VALUES (51, 10)", [], "kept");
      await waitForMigration(
        at,
        spec.migrationName,
        (o) => isEnded(o.state) || o.dbDetails.kept.cdcInsertCounter >= 2,
        { timeoutMs: 60_000 },
      );
      await requestAction(at, spec.migrationName, "cancel");
      await worker;
      const canceled = (await getMigration(at, spec.migrationName)) as MigrationOutputs;
      assert.equal(canceled.error, null);
      assert.equal(canceled.state, "Canceled");
      // Kept, with its triggers as on the source and without our bookkeeping.
      assert.deepEqual(await triggerStates(s.target, "kept"), source);
      assert.equal(await bookkeepingLeft(s.target, "kept"), 0);
      const logRows = "SELECT count(*) AS n FROM public.account_log";
      assert.ok(
        (await count(s.target, "kept", logRows)) <= (await count(s.source, "kept", logRows)),
      );
      assert.deepEqual(await ourSourceObjects(s.source, "kept"), []);
    });

    it("fails clearly when the target user does not own a table whose trigger must be disabled", async () => {
      await s.target.query("CREATE ROLE other_owner");
      await s.target.query("CREATE DATABASE foreign_owned OWNER app");
      await s.target.query(
        `CREATE TABLE public.ledger (id int PRIMARY KEY, amount numeric);
         CREATE TABLE public.mine (id int PRIMARY KEY);
         CREATE FUNCTION public.noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
         CREATE TRIGGER ledger_noop BEFORE INSERT ON public.ledger FOR EACH ROW EXECUTE FUNCTION public.noop();
         CREATE TRIGGER mine_noop BEFORE INSERT ON public.mine FOR EACH ROW EXECUTE FUNCTION public.noop();
         ALTER TABLE public.ledger OWNER TO other_owner;
         ALTER TABLE public.mine OWNER TO app;`,
        [],
        "foreign_owned",
      );
      const spec = onlineSpec(s.source, s.target, "trig-owner", ["foreign_owned"], {
        target: app,
      });
      const before = await triggerStates(s.target, "foreign_owned");
      await assert.rejects(suspendTargetTriggers(spec, "foreign_owned"), (err: unknown) => {
        assert.ok(err instanceof MigrationError);
        assert.equal(err.code, SQLSTATE.insufficientPrivilege);
        assert.equal(err.phase, "replicate");
        assert.match(err.message, /"public"\."ledger"/);
        assert.doesNotMatch(err.message, /"mine"/);
        assert.match(err.message, /GRANT "other_owner" TO "app"/);
        assert.match(err.message, /SET ON PARAMETER session_replication_role/);
        assert.ok(!err.message.includes(APP_PASSWORD));
        return true;
      });
      // All or nothing: not even the table it owns was touched.
      assert.deepEqual(await triggerStates(s.target, "foreign_owned"), before);
      assert.equal(await restoreTargetTriggers(spec.target, "foreign_owned"), 0);
    });
  });

  describe("ENABLE ALWAYS and ENABLE REPLICA triggers, superuser target (PostgreSQL 13 → 16)", () => {
    const s = new Scenario();
    before(async () => {
      await s.start(13, 16);
      await loadFixture(s.source, DATABASE, { rows: 400 });
      await s.source.query(
        `ALTER TABLE "Sales"."order" ENABLE ALWAYS TRIGGER order_audit;
         -- An ALWAYS trigger on a partitioned table: its partitions' clones are ALWAYS too.
         CREATE TABLE public.event_log (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, partition text);
         CREATE FUNCTION public.log_event() RETURNS trigger LANGUAGE plpgsql AS
           'BEGIN INSERT INTO public.event_log (partition) VALUES (TG_TABLE_NAME); RETURN NEW; END';
         CREATE TRIGGER events_log AFTER INSERT ON public.events FOR EACH ROW EXECUTE FUNCTION public.log_event();
         ALTER TABLE public.events ENABLE ALWAYS TRIGGER events_log;
         -- Fires only in replica sessions: on the target's apply it would reject every insert.
         CREATE FUNCTION public.reject() RETURNS trigger LANGUAGE plpgsql AS
           'BEGIN RAISE EXCEPTION ''replicated customers must not pass this trigger''; END';
         CREATE TRIGGER replica_guard BEFORE INSERT ON public.customers FOR EACH ROW EXECUTE FUNCTION public.reject();
         ALTER TABLE public.customers ENABLE REPLICA TRIGGER replica_guard;
         CREATE TRIGGER switched_off BEFORE INSERT ON public.customers FOR EACH ROW EXECUTE FUNCTION public.reject();
         ALTER TABLE public.customers DISABLE TRIGGER switched_off;`,
        [],
        DATABASE,
      );
    });
    after(() => s.stop());

    it("disables only the triggers that fire under the replica role, and restores every state", async () => {
      const spec = onlineSpec(s.source, s.target, "trig-always", [DATABASE]);
      const source = await triggerStates(s.source, DATABASE);
      assert.equal(source["public.events_2024 events_log"], "A");
      assert.equal(source["public.customers replica_guard"], "R");
      assert.equal(source["public.customers switched_off"], "D");

      await migrateWithWorkload(s, spec, async (waiting) => {
        assert.equal(dbCheck(waiting, "TargetTriggers").state, "Succeeded");
        assert.match(dbCheck(waiting, "TargetTriggers").messages[0], /ENABLE ALWAYS/);
        assert.deepEqual(
          await triggerStates(s.target, DATABASE),
          whileApplying(source, ["A", "R"]),
        );
      });
      assert.ok(
        (await count(s.source, DATABASE, "SELECT count(*) AS n FROM public.event_log")) > 0,
      );
      await assertIdentical(s);
    });

    it("suspends and restores partition triggers one by one, idempotently", async () => {
      await s.target.query("CREATE DATABASE parts");
      await s.target.query(
        `CREATE TABLE m (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE TABLE m_2023 PARTITION OF m FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
         CREATE TABLE m_2024 PARTITION OF m FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')
           PARTITION BY RANGE (id);
         CREATE TABLE m_2024_low PARTITION OF m_2024 FOR VALUES FROM (0) TO (100);
         CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
         CREATE TRIGGER row_always AFTER INSERT ON m FOR EACH ROW EXECUTE FUNCTION noop();
         ALTER TABLE m ENABLE ALWAYS TRIGGER row_always;
         ALTER TABLE ONLY m_2023 ENABLE REPLICA TRIGGER row_always;
         CREATE TRIGGER stmt_origin AFTER INSERT ON m FOR EACH STATEMENT EXECUTE FUNCTION noop();`,
        [],
        "parts",
      );
      const spec = onlineSpec(s.source, s.target, "trig-parts", ["parts"]);
      const before = await triggerStates(s.target, "parts");
      assert.equal(before["public.m_2023 row_always"], "R");
      assert.equal(before["public.m_2024_low row_always"], "A");

      const first = await suspendTargetTriggers(spec, "parts");
      assert.equal(first.replicaRole, true);
      assert.equal(first.disabled.length, 4); // row_always on m, m_2023, m_2024, m_2024_low
      const suspended = await triggerStates(s.target, "parts");
      assert.equal(suspended["public.m stmt_origin"], "O");
      for (const table of ["m", "m_2023", "m_2024", "m_2024_low"]) {
        assert.equal(suspended[`public.${table} row_always`], "D", table);
      }
      const again = await suspendTargetTriggers(spec, "parts");
      assert.equal(again.disabled.length, 0);

      assert.equal(await restoreTargetTriggers(spec.target, "parts"), 4);
      assert.deepEqual(await triggerStates(s.target, "parts"), before);
      assert.equal(await restoreTargetTriggers(spec.target, "parts"), 0);
    });
  });
});
