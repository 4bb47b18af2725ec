// What the change stream touches and what validation refuses: an UPDATE ONLY / DELETE FROM ONLY
// on an inheritance parent leaves the children alone (keyed and FULL identity), a value the
// target column cannot hold fails the migration naming the column, a source frozen read-only
// still cuts over, a user schema called pgmigrate_archive is migrated, and read-only targets,
// SQL_ASCII sources and differing lc_monetary are reported before anything is copied.
import assert from "node:assert/strict";
import { getMigration, isEnded, requestAction, waitForMigration } from "../../provider/api/index";
import { TARGET_BOOKKEEPING_SCHEMA } from "../../provider/pg/names";
import type { CheckResult, MigrationOutputs } from "../../provider/spec/types";
import { compareDatabases } from "../support/checksum";
import { controlOf, onlineSpec, ourSourceObjects, Scenario } from "../support/online";
import type { PgServer } from "../support/postgres";
import { specOf } from "../support/spec";

/** Runs `statements` on `database` in one session that may write although the database is read-only. */
async function write(server: PgServer, database: string, statements: string[]): Promise<void> {
  const client = await server.connect(database);
  try {
    await client.query("SET default_transaction_read_only = off");
    for (const statement of statements) await client.query(statement);
  } finally {
    await client.end();
  }
}

async function rows(server: PgServer, database: string, sql: string): Promise<string[]> {
  const result = await server.query<{ r: string }>(sql, [], database);
  return result.map((r) => r.r);
}

function check(o: MigrationOutputs, database: string, type: string): CheckResult | undefined {
  return o.validation?.databaseLevel
    .find((d) => d.databaseName === database)
    ?.summary.find((c) => c.type === type);
}

describe("fidelity of the change stream and of validation", function () {
  describe("online 15 → 15: inheritance, a pgmigrate_archive schema, an unlogged table, a source frozen read-only", () => {
    const s = new Scenario();
    before(() => s.start());
    after(() => s.stop());

    it("touches only the named tables, migrates everything and cuts over leaving nothing behind", async () => {
      const db = "inh";
      await s.source.query(`CREATE DATABASE ${db}`);
      await s.source.query(
        `CREATE TABLE public.par (id integer PRIMARY KEY, v text);
         CREATE TABLE public.chi () INHERITS (public.par);
         ALTER TABLE public.chi ADD PRIMARY KEY (id);
         INSERT INTO public.par VALUES (1, 'p'), (2, 'p');
         INSERT INTO public.chi VALUES (1, 'c'), (2, 'c');
         CREATE TABLE public.fpar (id integer, v text);
         CREATE TABLE public.fchi () INHERITS (public.fpar);
         ALTER TABLE public.fpar REPLICA IDENTITY FULL;
         ALTER TABLE public.fchi REPLICA IDENTITY FULL;
         INSERT INTO public.fpar VALUES (1, 'same'), (2, 'same');
         INSERT INTO public.fchi VALUES (1, 'same'), (2, 'same');
         CREATE SCHEMA pgmigrate_archive;
         CREATE TABLE pgmigrate_archive.old (id integer PRIMARY KEY, v text);
         INSERT INTO pgmigrate_archive.old VALUES (1, 'archived');
         CREATE UNLOGGED TABLE public.scratch (id integer PRIMARY KEY);
         INSERT INTO public.scratch SELECT generate_series(1, 3);`,
        [],
        db,
      );
      // Frozen the usual way before the migration starts.
      await s.source.query(`ALTER DATABASE ${db} SET default_transaction_read_only = on`);

      const spec = onlineSpec(s.source, s.target, "fid-inherit", [db], { verify: "counts" });
      const at = controlOf(spec);
      const { worker, settled } = await s.startInProcess(spec);
      assert.equal(settled.error, null);
      assert.equal(settled.state, "WaitingForUserAction");
      assert.equal(check(settled, db, "ReadOnlyDatabase")?.state, "Warning");
      assert.match(
        check(settled, db, "UnsupportedObjects")?.messages.join(" ") ?? "",
        /unlogged tables are copied in the base copy, but their later changes are not replicated.*public\.scratch/,
      );

      await write(s.source, db, [
        "UPDATE ONLY public.par SET v = 'x' WHERE id = 1",
        "DELETE FROM ONLY public.par WHERE id = 2",
        "UPDATE ONLY public.fpar SET v = 'x' WHERE id = 1",
        "DELETE FROM ONLY public.fpar WHERE id = 2",
        "INSERT INTO pgmigrate_archive.old VALUES (2, 'streamed')",
      ]);
      const base = settled.dbDetails[db];
      await waitForMigration(
        at,
        spec.migrationName,
        (o) =>
          o.dbDetails[db].cdcUpdateCounter >= base.cdcUpdateCounter + 2 &&
          o.dbDetails[db].cdcDeleteCounter >= base.cdcDeleteCounter + 2 &&
          o.dbDetails[db].cdcInsertCounter >= base.cdcInsertCounter + 1,
        { timeoutMs: 60_000 },
      );
      // Frozen again right before the cutover, as a runbook would.
      await s.source.query(`ALTER DATABASE ${db} SET default_transaction_read_only = on`);
      await requestAction(at, spec.migrationName, "cutover");
      await worker;
      const done = (await getMigration(at, spec.migrationName)) as MigrationOutputs;
      assert.equal(done.error, null);
      assert.equal(done.state, "Succeeded");

      assert.deepEqual(
        await rows(
          s.target,
          db,
          "SELECT format('%s=%s', id, v) AS r FROM ONLY public.chi ORDER BY id",
        ),
        ["1=c", "2=c"],
      );
      assert.deepEqual(
        await rows(
          s.target,
          db,
          "SELECT format('%s=%s', id, v) AS r FROM ONLY public.fchi ORDER BY id",
        ),
        ["1=same", "2=same"],
      );
      assert.deepEqual(
        await rows(
          s.target,
          db,
          "SELECT format('%s=%s', id, v) AS r FROM ONLY public.par ORDER BY id",
        ),
        ["1=x"],
      );
      assert.deepEqual(
        await rows(
          s.target,
          db,
          "SELECT format('%s=%s', id, v) AS r FROM pgmigrate_archive.old ORDER BY id",
        ),
        ["1=archived", "2=streamed"],
      );
      assert.deepEqual(await rows(s.target, db, "SELECT count(*)::text AS r FROM public.scratch"), [
        "3",
      ]);
      const comparison = await compareDatabases(s.source, db, s.target, db);
      assert.deepEqual(comparison.differences, []);

      // Nothing of ours on either side, and the target database is not read-only.
      assert.deepEqual(await ourSourceObjects(s.source, db), []);
      const bookkeeping = await s.target.query(
        "SELECT 1 FROM pg_namespace WHERE nspname = $1",
        [TARGET_BOOKKEEPING_SCHEMA],
        db,
      );
      assert.equal(bookkeeping.length, 0);
      const [readOnly] = await s.target.query<{ r: string }>(
        "SELECT current_setting('default_transaction_read_only') AS r",
        [],
        db,
      );
      assert.equal(readOnly.r, "off");
      await s.target.query("INSERT INTO public.par VALUES (3, 'after')", [], db);
    });
  });

  describe("online 15 → 15: a source column widened while replicating", () => {
    const s = new Scenario();
    before(() => s.start());
    after(() => s.stop());

    it("fails naming the column instead of truncating a multi-row update", async () => {
      const db = "wide";
      await s.source.query(`CREATE DATABASE ${db}`);
      await s.source.query(
        `CREATE TABLE public.t (id integer PRIMARY KEY, v varchar(5));
         INSERT INTO public.t SELECT i, 'a' FROM generate_series(1, 6) AS i;`,
        [],
        db,
      );
      const spec = onlineSpec(s.source, s.target, "fid-widen", [db], { verify: "counts" });
      const at = controlOf(spec);
      const { settled } = await s.startInProcess(spec);
      assert.equal(settled.state, "WaitingForUserAction");

      await write(s.source, db, [
        "ALTER TABLE public.t ALTER COLUMN v TYPE varchar(20)",
        "UPDATE public.t SET v = 'long-value-' || id WHERE id <= 6",
      ]);
      const failed = await waitForMigration(at, spec.migrationName, (o) => isEnded(o.state), {
        timeoutMs: 60_000,
      });
      assert.equal(failed.state, "Failed");
      assert.match(failed.error ?? "", /public\.t/);
      assert.match(failed.error ?? "", /column v\b/);
      assert.deepEqual(
        await rows(s.target, db, "SELECT string_agg(v, ',' ORDER BY id) AS r FROM public.t"),
        ["a,a,a,a,a,a"],
      );
    });
  });

  describe("validation 15 → 15: a read-only target database, a SQL_ASCII source, money under another lc_monetary", () => {
    const s = new Scenario();
    before(() => s.start());
    after(() => s.stop());

    it("fails the read-only target and the SQL_ASCII source, and warns about the money columns", async () => {
      await s.source.query("CREATE DATABASE ro");
      await s.source.query(
        "CREATE TABLE public.prices (id integer PRIMARY KEY, amount money)",
        [],
        "ro",
      );
      await s.source.query("ALTER ROLE postgres IN DATABASE ro SET lc_monetary = 'C.UTF-8'");
      await s.source.query(
        "CREATE DATABASE ascii ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0",
      );
      await s.target.query("CREATE DATABASE ro");
      await s.target.query("ALTER DATABASE ro SET default_transaction_read_only = on");
      await s.target.query("ALTER ROLE postgres SET lc_monetary = 'C'");

      const spec = specOf(s.source, s.target, {
        migrationName: "fid-validate",
        databases: ["ro", "ascii"],
        option: "Validate",
      });
      const { worker, settled } = await s.startInProcess(spec);
      await worker;
      assert.equal(settled.state, "ValidationFailed");
      const target = check(settled, "ro", "TargetDatabase");
      assert.equal(target?.state, "Failed");
      assert.match(
        target?.messages.join(" ") ?? "",
        /read-only \(default_transaction_read_only = on\)/,
      );
      const encoding = check(settled, "ascii", "Encoding");
      assert.equal(encoding?.state, "Failed");
      assert.match(encoding?.messages.join(" ") ?? "", /SQL_ASCII/);
      const money = check(settled, "ro", "Money");
      assert.equal(money?.state, "Warning");
      assert.match(money?.messages.join(" ") ?? "", /public\.prices\.amount/);
    });
  });
});
