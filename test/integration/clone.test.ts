// Offline clone 15 → 15 on real servers: the fixture arrives identical, with its objects and
// sequences; two databases at once; a snapshot-consistent copy under writes; failures and
// cancellation; target database preparation; roles.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  cloneDatabase,
  dropTargetDatabase,
  migrateRoles,
  prepareTargetDatabase,
  type CloneResult,
} from "../../provider/clone";
import { MigrationError } from "../../provider/pg/errors";
import { verifyDatabase } from "../../provider/verify";
import { filterToc, dbnameConninfo, makeDumpDir } from "../../provider/clone/schema";
import { splitSettingList } from "../../provider/clone/properties";
import type { MigrationInput } from "../../provider/spec/inputs";
import type {
  MigrationSpec,
  ProgressSink,
  TableLoadState,
  TableRef,
} from "../../provider/spec/types";
import { compareDatabases, sequenceStates } from "../support/checksum";
import { FIXTURE_TABLES, loadFixture } from "../support/fixture";
import { startPostgres, type PgServer } from "../support/postgres";
import { specOf } from "../support/spec";
import { until } from "../support/wait";

/** A spec for migrating `databases` from `source` to `target` (superusers, no TLS). */
function specFor(
  source: PgServer,
  target: PgServer,
  databases: string[],
  extra: Partial<MigrationInput> = {},
): MigrationSpec {
  return specOf(source, target, { databases, ...extra }, "clone-test");
}

interface Recorded {
  queued: (TableRef & { estimatedBytes: number })[][];
  states: { table: string; state: TableLoadState; rows?: number; bytes?: number; error?: string }[];
  events: string[];
}

/** A progress sink that remembers everything, with optional hooks to act at a given moment. */
function memoryProgress(
  hooks: {
    onQueued?: () => Promise<void>;
    onState?: (table: string, state: TableLoadState) => void;
  } = {},
): ProgressSink & { recorded: Recorded; last(table: string): TableLoadState | undefined } {
  const recorded: Recorded = { queued: [], states: [], events: [] };
  return {
    recorded,
    last(table) {
      return recorded.states.filter((s) => s.table === table).at(-1)?.state;
    },
    async event(_level, message) {
      recorded.events.push(message);
    },
    async tablesQueued(_db, tables) {
      recorded.queued.push(tables.map((t) => ({ ...t })));
      await hooks.onQueued?.();
    },
    async tableState(_db, table, state, detail) {
      const key = `${table.schema}.${table.name}`;
      recorded.states.push({ table: key, state, ...detail });
      hooks.onState?.(key, state);
    },
  };
}

/** Counts of schema objects, from the catalogs, to compare source and target. */
async function objectCounts(server: PgServer, database: string): Promise<Record<string, number>> {
  const user = "NOT IN ('pg_catalog', 'information_schema')";
  const [row] = await server.query<Record<string, string>>(
    `SELECT
       (SELECT count(*) FROM pg_views WHERE schemaname ${user}) AS views,
       (SELECT count(*) FROM pg_matviews WHERE ispopulated) AS populated_matviews,
       (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname ${user}
           -- not the constructors PostgreSQL makes for range (and, from 14, multirange) types
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                            AND d.objid = p.oid AND d.deptype = 'i')) AS functions,
       (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgparentid = 0) AS triggers,
       (SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conparentid = 0) AS foreign_keys,
       (SELECT count(*) FROM pg_constraint WHERE contype IN ('p', 'u', 'c', 'x') AND connamespace <> 'pg_catalog'::regnamespace) AS constraints,
       (SELECT count(*) FROM pg_indexes WHERE schemaname ${user}) AS indexes,
       (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE n.nspname ${user} AND (t.typtype IN ('e', 'd', 'r')
            OR t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')) AS types,
       (SELECT count(*) FROM pg_sequences WHERE schemaname ${user}) AS sequences,
       (SELECT count(*) FROM pg_description d JOIN pg_class c ON c.oid = d.objoid) AS comments`,
    [],
    database,
  );
  return Object.fromEntries(Object.entries(row).map(([k, v]) => [k, Number(v)]));
}

async function expectMigrationError(promise: Promise<unknown>): Promise<MigrationError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof MigrationError, `expected a MigrationError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected the promise to reject");
}

/** Sessions our clone left open on a server (there must be none once a clone has returned). */
async function pgmigrateSessions(server: PgServer): Promise<number> {
  const [row] = await server.query<{ n: string }>(
    "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name LIKE 'pgmigrate%'",
  );
  return Number(row.n);
}

/** A database name that needs quoting everywhere: SQL, libpq conninfo, pg_dump patterns. */
const SOUTH = `Süd 'quoted' "db" \\ x`;

describe("offline clone 15 → 15", function () {
  let source: PgServer;
  let target: PgServer;

  before(async () => {
    [source, target] = await Promise.all([
      startPostgres({ version: 15 }),
      startPostgres({ version: 15 }),
    ]);
    await loadFixture(source, "shop", { rows: 2000 });
  });
  after(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  describe("the fixture", () => {
    let result: CloneResult;
    let progress: ReturnType<typeof memoryProgress>;

    before(async () => {
      const spec = specFor(source, target, ["shop"]);
      assert.deepEqual(await prepareTargetDatabase(spec, "shop"), { created: true });
      progress = memoryProgress();
      result = await cloneDatabase({ spec, database: "shop", progress });
    });

    it("arrives with every table's rows identical", async () => {
      const comparison = await compareDatabases(source, "shop", target, "shop");
      assert.deepEqual(comparison.differences, []);
      assert.equal(comparison.equal, true);
    });

    it("reports every table queued once, then completed with its rows", async () => {
      const expected = FIXTURE_TABLES.map((t) => `${t.schema}.${t.name}`).sort();
      assert.equal(progress.recorded.queued.length, 1);
      assert.deepEqual(
        progress.recorded.queued[0].map((t) => `${t.schema}.${t.name}`).sort(),
        expected,
      );
      for (const key of expected) assert.equal(progress.last(key), "completed", key);
      assert.deepEqual(result.tables.map((t) => `${t.schema}.${t.name}`).sort(), expected);
      for (const table of result.tables) {
        const [row] = await source.query<{ n: string }>(
          `SELECT count(*) AS n FROM ONLY "${table.schema}"."${table.name.replace(/"/g, '""')}"`,
          [],
          "shop",
        );
        assert.equal(table.rows, Number(row.n), `${table.schema}.${table.name}`);
        if (table.rows > 0) assert.ok(table.bytes > 0);
      }
    });

    it("has the same views, matviews, functions, triggers, keys, indexes and comments", async () => {
      const [onSource, onTarget] = await Promise.all([
        objectCounts(source, "shop"),
        objectCounts(target, "shop"),
      ]);
      assert.deepEqual(onTarget, onSource);
      assert.ok(onSource.views >= 2 && onSource.populated_matviews >= 1 && onSource.triggers >= 1);
      assert.ok(onSource.foreign_keys >= 3 && onSource.indexes >= 10);
    });

    it("continues every sequence where the source stopped", async () => {
      assert.deepEqual(await sequenceStates(target, "shop"), await sequenceStates(source, "shop"));
      // An insert using the identity default does not collide with a copied row.
      const [maxId] = await target.query<{ id: string }>(
        "SELECT max(customer_id) AS id FROM public.customers",
        [],
        "shop",
      );
      const [inserted] = await target.query<{ id: string }>(
        `INSERT INTO public.customers (email, full_name, created_at) VALUES ('new@example.com', 'New', now())
         RETURNING customer_id AS id`,
        [],
        "shop",
      );
      assert.ok(BigInt(inserted.id) > BigInt(maxId.id));
    });

    it("keeps owners and privileges: every role the fixture names exists on the target", async () => {
      assert.deepEqual(
        result.warnings.filter((w) => /target user|not restored|could not apply/.test(w)),
        [],
      );
      const [row] = await target.query<{ owner: string }>(
        "SELECT nspowner::regrole::text AS owner FROM pg_namespace WHERE nspname = 'public'",
        [],
        "shop",
      );
      assert.equal(row.owner, "pg_database_owner");
    });

    it("left no session open", async () => {
      assert.equal(await pgmigrateSessions(source), 0);
      assert.equal(await pgmigrateSessions(target), 0);
    });
  });

  it("clones with a target user that is not a superuser", async () => {
    await source.query("CREATE DATABASE modest");
    await source.query(
      `CREATE TABLE note (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text);
       COMMENT ON TABLE note IS 'kept';
       INSERT INTO note (body) SELECT 'n' || i FROM generate_series(1, 100) i;
       CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN NEW.body := NEW.body || ''!''; RETURN NEW; END';
       CREATE TRIGGER note_stamp BEFORE INSERT ON note FOR EACH ROW EXECUTE FUNCTION stamp();`,
      [],
      "modest",
    );
    await target.query("CREATE ROLE migrator LOGIN CREATEDB PASSWORD 'migrator-secret'");
    const spec = specFor(source, target, ["modest"]);
    const asMigrator = {
      ...spec,
      target: { ...spec.target, username: "migrator", password: "migrator-secret" },
    };
    assert.deepEqual(await prepareTargetDatabase(asMigrator, "modest"), { created: true });
    await cloneDatabase({ spec: asMigrator, database: "modest", progress: memoryProgress() });
    assert.deepEqual((await compareDatabases(source, "modest", target, "modest")).differences, []);
    const [row] = await target.query<{ owner: string; comment: string; triggers: string }>(
      `SELECT tableowner AS owner, obj_description('note'::regclass) AS comment,
              (SELECT count(*)::text FROM pg_trigger WHERE tgname = 'note_stamp') AS triggers
         FROM pg_tables WHERE tablename = 'note'`,
      [],
      "modest",
    );
    assert.deepEqual(row, { owner: "migrator", comment: "kept", triggers: "1" });
  });

  it("clones two databases at once", async () => {
    await Promise.all([
      loadFixture(source, "north", { rows: 300 }),
      loadFixture(source, SOUTH, { rows: 400 }),
    ]);
    const spec = specFor(source, target, ["north", SOUTH]);
    await Promise.all(spec.databases.map((db) => prepareTargetDatabase(spec, db)));
    await Promise.all(
      spec.databases.map((database) =>
        cloneDatabase({ spec, database, progress: memoryProgress() }),
      ),
    );
    for (const db of spec.databases) {
      assert.deepEqual((await compareDatabases(source, db, target, db)).differences, [], db);
    }
  });

  it("copies one consistent snapshot while the source is being written", async () => {
    await source.query("CREATE DATABASE bank");
    await source.query(
      `CREATE TABLE account (id int PRIMARY KEY, balance bigint NOT NULL);
       INSERT INTO account SELECT i, 1000 FROM generate_series(1, 500) i;
       CREATE TABLE transfer (id bigint PRIMARY KEY, amount int NOT NULL, lines int NOT NULL);
       CREATE TABLE transfer_line (transfer_id bigint NOT NULL REFERENCES transfer, account_id int NOT NULL, delta int NOT NULL);
       INSERT INTO transfer SELECT i, 1, 2 FROM generate_series(1, 3000) i;
       INSERT INTO transfer_line SELECT i, 1 + i % 500, d FROM generate_series(1, 3000) i, (VALUES (1), (-1)) v(d);`,
      [],
      "bank",
    );
    // One writer, one transaction per transfer: ids are committed in order, every transfer has
    // its lines, and the balances always sum to 500,000.
    const writer = await source.connect("bank");
    let stop = false;
    let committed = 3000;
    const writing = (async () => {
      for (let id = 3001; !stop; id++) {
        const from = 1 + (id % 500);
        const to = 1 + ((id * 7) % 500);
        await writer.query("BEGIN");
        await writer.query("INSERT INTO transfer VALUES ($1, 5, 2)", [id]);
        await writer.query("INSERT INTO transfer_line VALUES ($1, $2, -5), ($1, $3, 5)", [
          id,
          from,
          to,
        ]);
        await writer.query("UPDATE account SET balance = balance - 5 WHERE id = $1", [from]);
        await writer.query("UPDATE account SET balance = balance + 5 WHERE id = $1", [to]);
        await writer.query("COMMIT");
        committed = id;
      }
    })();
    try {
      // The copy starts while transfers are committing.
      await until(() => committed >= 3020, { what: "20 transfers committed", intervalMs: 10 });
      const spec = specFor(source, target, ["bank"], { parallelism: { tables: 3, indexes: 2 } });
      await prepareTargetDatabase(spec, "bank");
      await cloneDatabase({ spec, database: "bank", progress: memoryProgress() });
    } finally {
      stop = true;
      await writing;
      await writer.end();
    }
    const [state] = await target.query<{
      total: string;
      transfers: string;
      max: string;
      orphans: string;
      incomplete: string;
    }>(
      `SELECT (SELECT sum(balance) FROM account)::text AS total,
              (SELECT count(*) FROM transfer)::text AS transfers,
              (SELECT max(id) FROM transfer)::text AS max,
              (SELECT count(*) FROM transfer_line l WHERE NOT EXISTS (SELECT 1 FROM transfer t WHERE t.id = l.transfer_id))::text AS orphans,
              (SELECT count(*) FROM transfer t WHERE t.lines <> (SELECT count(*) FROM transfer_line l WHERE l.transfer_id = t.id))::text AS incomplete`,
      [],
      "bank",
    );
    assert.equal(state.total, "500000");
    assert.equal(state.orphans, "0");
    assert.equal(state.incomplete, "0");
    // A prefix of the writer's transactions, taken while it was running.
    assert.equal(state.transfers, state.max);
    assert.ok(Number(state.max) > 3000, "the writer committed before the snapshot");
    assert.ok(Number(state.max) < committed, "the writer kept committing after the snapshot");
    // Every balance is 1000 plus exactly the copied transfers: accounts and lines come from the
    // same moment, although different workers copied them at different times.
    const [targetBalance] = await target.query<{ ok: boolean }>(
      `SELECT bool_and(a.balance = 1000 + COALESCE(s.delta, 0)) AS ok
         FROM account a LEFT JOIN (SELECT account_id, sum(delta) AS delta FROM transfer_line
                                    WHERE transfer_id > 3000 GROUP BY 1) s ON s.account_id = a.id`,
      [],
      "bank",
    );
    assert.equal(targetBalance.ok, true);
  });

  it("copies as of a snapshot it is given (online), leaving sequences to the cutover", async () => {
    await source.query("CREATE DATABASE given");
    await source.query(
      `CREATE TABLE item (id serial PRIMARY KEY, v text);
       INSERT INTO item (v) SELECT 'before ' || i FROM generate_series(1, 100) i;`,
      [],
      "given",
    );
    const holder = await source.connect("given");
    try {
      await holder.query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
      const [{ snapshot }] = (
        await holder.query<{ snapshot: string }>("SELECT pg_export_snapshot() AS snapshot")
      ).rows;
      await source.query(
        "INSERT INTO item (v) SELECT 'after ' || i FROM generate_series(1, 50) i",
        [],
        "given",
      );
      const spec = specFor(source, target, ["given"], { mode: "Online" });
      await prepareTargetDatabase(spec, "given");
      const result = await cloneDatabase({
        spec,
        database: "given",
        snapshot,
        progress: memoryProgress(),
      });
      assert.deepEqual(
        result.tables.map((t) => [t.name, t.rows]),
        [["item", 100]],
      );
    } finally {
      await holder.end();
    }
    const [onTarget] = await target.query<{ n: string; last: string }>(
      "SELECT count(*)::text AS n, (SELECT last_value::text FROM item_id_seq) AS last FROM item",
      [],
      "given",
    );
    assert.deepEqual(onTarget, { n: "100", last: "1" });
  });

  it("fails in phase schema when the restore fails, e.g. a policy for a role missing on the target", async () => {
    await source.query("CREATE ROLE ghost NOLOGIN");
    await source.query("CREATE DATABASE haunted");
    await source.query(
      `CREATE TABLE spooky (id int PRIMARY KEY); ALTER TABLE spooky OWNER TO ghost;
       CREATE POLICY seen ON spooky TO ghost USING (true)`,
      [],
      "haunted",
    );
    // Owners fall back to the target user, but a policy names its role in its own DDL, and
    // migrateRoles() was not run: "ghost" is missing on the target.
    const spec = specFor(source, target, ["haunted"], { migrateRoles: true });
    await prepareTargetDatabase(spec, "haunted");
    const err = await expectMigrationError(
      cloneDatabase({ spec, database: "haunted", progress: memoryProgress() }),
    );
    assert.equal(err.phase, "schema");
    assert.match(err.message, /role "ghost" does not exist/);
    assert.ok(!err.message.includes(source.password) && !err.message.includes(target.password));
    assert.equal(await pgmigrateSessions(source), 0);
    await dropTargetDatabase(spec, "haunted");
  });

  it("fails naming the table when a row cannot be loaded, and reports it errored", async () => {
    await source.query("CREATE DATABASE broken");
    await source.query(
      `CREATE TABLE good (id int PRIMARY KEY, v text);
       INSERT INTO good SELECT i, 'row ' || i FROM generate_series(1, 1000) i;
       CREATE TABLE bad (id int PRIMARY KEY, v text);
       INSERT INTO bad SELECT i, 'not a number ' || i FROM generate_series(1, 1000) i;`,
      [],
      "broken",
    );
    const spec = specFor(source, target, ["broken"]);
    await prepareTargetDatabase(spec, "broken");
    // After the pre-data schema and before the data: make one target column incompatible.
    const progress = memoryProgress({
      onQueued: async () => {
        await target.query("ALTER TABLE public.bad ALTER COLUMN v TYPE int USING 0", [], "broken");
      },
    });
    const err = await expectMigrationError(cloneDatabase({ spec, database: "broken", progress }));
    assert.equal(err.phase, "data");
    assert.equal(err.code, "22P02"); // invalid_text_representation
    assert.equal(err.pg.table, "bad");
    assert.equal(err.pg.schema, "public");
    assert.match(err.message, /public\.bad/);
    assert.equal(progress.last("public.bad"), "errored");
    const errored = progress.recorded.states.find(
      (s) => s.table === "public.bad" && s.state === "errored",
    );
    assert.match(errored?.error ?? "", /invalid input syntax/);
    assert.equal(await pgmigrateSessions(source), 0);
    assert.equal(await pgmigrateSessions(target), 0);
    await dropTargetDatabase(spec, "broken");
  });

  it("stops when canceled, releasing every connection", async () => {
    await source.query("CREATE DATABASE slow");
    await source.query(
      `CREATE TABLE big (id int PRIMARY KEY, pad text);
       INSERT INTO big SELECT i, repeat(md5(i::text), 10) FROM generate_series(1, 50000) i;
       CREATE TABLE other (id int PRIMARY KEY);
       INSERT INTO other SELECT generate_series(1, 1000);`,
      [],
      "slow",
    );
    const spec = specFor(source, target, ["slow"]);
    await prepareTargetDatabase(spec, "slow");
    const controller = new AbortController();
    const progress = memoryProgress({
      onState: (table, state) => {
        if (table === "public.big" && state === "loading") setTimeout(() => controller.abort(), 20);
      },
    });
    const err = await expectMigrationError(
      cloneDatabase({ spec, database: "slow", progress, signal: controller.signal }),
    );
    assert.equal(err.code, "PGM_CANCELED");
    assert.equal(progress.last("public.big"), "errored");
    const [rows] = await target.query<{ n: string }>(
      "SELECT count(*) AS n FROM public.big",
      [],
      "slow",
    );
    assert.equal(rows.n, "0", "the interrupted copy was rolled back");
    // Sessions whose socket we closed may take a moment to disappear on the server.
    await until(async () => (await pgmigrateSessions(source)) + (await pgmigrateSessions(target)), {
      what: "our sessions to end",
      accept: (n) => n === 0,
      timeoutMs: 5_000,
      intervalMs: 100,
    });
    assert.equal(await pgmigrateSessions(source), 0);
    assert.equal(await pgmigrateSessions(target), 0);
    await dropTargetDatabase(spec, "slow");
    await dropTargetDatabase(spec, "slow");
    const left = await target.query("SELECT 1 FROM pg_database WHERE datname = 'slow'");
    assert.equal(left.length, 0);
  });

  describe("prepareTargetDatabase", () => {
    before(async () => {
      await source.query(
        "CREATE DATABASE latin ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0",
      );
      await source.query(
        "CREATE TABLE words (id int PRIMARY KEY, w text); INSERT INTO words VALUES (1, 'Grüße'), (2, 'façade')",
        [],
        "latin",
      );
    });

    it("creates the database with the source's encoding and locale", async () => {
      const spec = specFor(source, target, ["latin"]);
      assert.deepEqual(await prepareTargetDatabase(spec, "latin"), { created: true });
      const [db] = await target.query<{ enc: string; datcollate: string; datctype: string }>(
        "SELECT pg_encoding_to_char(encoding) AS enc, datcollate, datctype FROM pg_database WHERE datname = 'latin'",
      );
      assert.deepEqual(db, { enc: "LATIN1", datcollate: "C", datctype: "C" });
      await cloneDatabase({ spec, database: "latin", progress: memoryProgress() });
      assert.deepEqual((await compareDatabases(source, "latin", target, "latin")).differences, []);
      const words = await target.query<{ w: string }>(
        "SELECT w FROM words ORDER BY id",
        [],
        "latin",
      );
      assert.deepEqual(
        words.map((r) => r.w),
        ["Grüße", "façade"],
      );
    });

    it("refuses a database that is not empty, unless overwriteDbsInTarget", async () => {
      const spec = specFor(source, target, ["latin"]);
      const err = await expectMigrationError(prepareTargetDatabase(spec, "latin"));
      assert.equal(err.code, "42P04");
      assert.match(err.message, /not empty.*overwriteDbsInTarget/);

      const overwrite = specFor(source, target, ["latin"], { overwriteDbsInTarget: true });
      assert.deepEqual(await prepareTargetDatabase(overwrite, "latin"), { created: true });
      const tables = await target.query(
        "SELECT 1 FROM pg_tables WHERE tablename = 'words'",
        [],
        "latin",
      );
      assert.equal(tables.length, 0, "the old contents are gone");
      // Empty now: used as is.
      assert.deepEqual(await prepareTargetDatabase(spec, "latin"), { created: false });
    });
  });

  describe("migrateRoles", () => {
    before(async () => {
      await source.query("CREATE ROLE app_owner NOLOGIN");
      await source.query("CREATE ROLE app_reader LOGIN PASSWORD 'reader-secret' CREATEDB");
      await source.query("GRANT app_owner TO app_reader");
      await source.query("CREATE DATABASE owned OWNER app_owner");
      await source.query(
        `CREATE SCHEMA app AUTHORIZATION app_owner;
         CREATE TABLE app.things (id int PRIMARY KEY, v text);
         ALTER TABLE app.things OWNER TO app_owner;
         INSERT INTO app.things VALUES (1, 'one');
         GRANT USAGE ON SCHEMA app TO app_reader;
         GRANT SELECT ON app.things TO app_reader;
         REVOKE ALL ON DATABASE owned FROM PUBLIC;
         GRANT CONNECT ON DATABASE owned TO app_reader;
         ALTER DATABASE owned SET search_path = app, public;`,
        [],
        "owned",
      );
    });

    it("creates the roles that own or are granted objects, and the clone keeps owners and grants", async () => {
      const spec = specFor(source, target, ["owned"], { migrateRoles: true });
      const roles = await migrateRoles(spec);
      assert.deepEqual(roles.created.sort(), ["app_owner", "app_reader"]);
      assert.ok(roles.warnings.some((w) => /app_reader.*without a password/.test(w)));
      assert.ok(roles.warnings.some((w) => /app_reader.*without CREATEDB/.test(w)));
      const created = await target.query<{
        rolname: string;
        rolcanlogin: boolean;
        rolcreatedb: boolean;
      }>(
        "SELECT rolname, rolcanlogin, rolcreatedb FROM pg_roles WHERE rolname LIKE 'app\\_%' ORDER BY 1",
      );
      assert.deepEqual(created, [
        { rolname: "app_owner", rolcanlogin: false, rolcreatedb: false },
        { rolname: "app_reader", rolcanlogin: true, rolcreatedb: false },
      ]);
      const [member] = await target.query<{ ok: boolean }>(
        "SELECT pg_has_role('app_reader', 'app_owner', 'MEMBER') AS ok",
      );
      assert.equal(member.ok, true);
      assert.deepEqual((await migrateRoles(spec)).created, [], "a second run creates nothing");

      await prepareTargetDatabase(spec, "owned");
      const result = await cloneDatabase({ spec, database: "owned", progress: memoryProgress() });
      assert.ok(!result.warnings.some((w) => /owned by the target user/.test(w)));
      const ownership = `SELECT (SELECT tableowner FROM pg_tables WHERE schemaname = 'app' AND tablename = 'things') AS table_owner,
              (SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'app') AS schema_owner,
              has_table_privilege('app_reader', 'app.things', 'SELECT') AS reader_select,
              (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()) AS db_owner,
              has_database_privilege('app_reader', current_database(), 'CONNECT') AS reader_connect,
              (SELECT setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
                WHERE d.datname = current_database() AND s.setrole = 0) AS settings`;
      const [onSource] = await source.query(ownership, [], "owned");
      const [onTarget] = await target.query(ownership, [], "owned");
      assert.deepEqual(onTarget, onSource);
      assert.equal(onTarget.table_owner, "app_owner");
      assert.deepEqual(onTarget.settings, ["search_path=app, public"]);
    });
  });
});

describe("offline clone 13 → 16", function () {
  let source: PgServer;
  let target: PgServer;

  before(async () => {
    [source, target] = await Promise.all([
      startPostgres({ version: 13 }),
      startPostgres({ version: 16 }),
    ]);
    await loadFixture(source, "shop", { rows: 1000 });
    const spec = specFor(source, target, ["shop"]);
    await prepareTargetDatabase(spec, "shop");
    await cloneDatabase({ spec, database: "shop", progress: memoryProgress() });
  });
  after(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  it("arrives with every table's rows identical", async () => {
    assert.deepEqual((await compareDatabases(source, "shop", target, "shop")).differences, []);
  });

  it("verifies with checksums that agree across versions", async () => {
    const tables = await verifyDatabase(specFor(source, target, ["shop"]), "shop", "checksum");
    assert.equal(tables.length, FIXTURE_TABLES.length);
    assert.deepEqual(
      tables.filter((t) => !t.match),
      [],
    );
  });

  it("has the same schema objects and sequence values", async () => {
    assert.deepEqual(await objectCounts(target, "shop"), await objectCounts(source, "shop"));
    assert.deepEqual(await sequenceStates(target, "shop"), await sequenceStates(source, "shop"));
    await target.query(
      `INSERT INTO public.customers (email, full_name, created_at) VALUES ('new@example.com', 'New', now())`,
      [],
      "shop",
    );
  });
});

describe("clone helpers", () => {
  it("filters our publications and plpgsql out of a pg_restore list, keeping the rest", () => {
    const list = [
      ";",
      "; Selected TOC Entries:",
      "4; 2615 2200 SCHEMA - public postgres",
      "3; 3079 13000 EXTENSION - plpgsql ",
      "3500; 0 0 COMMENT - EXTENSION plpgsql ",
      "202; 1259 16387 TABLE public t postgres",
      "2934; 6104 16400 PUBLICATION - pgmigrate_orders_1a2b3c4d postgres",
      "2935; 6106 16401 PUBLICATION TABLE public pgmigrate_orders_1a2b3c4d t postgres",
      "2936; 6104 16402 PUBLICATION - app_changes postgres",
    ].join("\n");
    assert.deepEqual(filterToc(list).split("\n"), [
      ";",
      "; Selected TOC Entries:",
      "4; 2615 2200 SCHEMA - public postgres",
      "202; 1259 16387 TABLE public t postgres",
      "2936; 6104 16402 PUBLICATION - app_changes postgres",
    ]);
  });

  it("quotes any database name for libpq and splits list settings as PostgreSQL prints them", () => {
    assert.equal(dbnameConninfo(`a 'b' \\c`), `dbname='a \\'b\\' \\\\c'`);
    assert.deepEqual(splitSettingList(`"$user", public, "odd ""name"", x"`), [
      "$user",
      "public",
      'odd "name", x',
    ]);
    assert.deepEqual(splitSettingList(""), []);
  });

  it("removes dump directories of dead processes when it makes its own", async () => {
    // Above Linux's pid_max: this process cannot exist.
    const stale = path.join(os.tmpdir(), "pgmigrate-clone-999999999-test");
    fs.mkdirSync(stale, { recursive: true });
    fs.writeFileSync(path.join(stale, "schema.dump"), "x");
    const dir = await makeDumpDir();
    try {
      assert.equal(fs.existsSync(stale), false);
      assert.ok(path.basename(dir).startsWith(`pgmigrate-clone-${process.pid}-`));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
