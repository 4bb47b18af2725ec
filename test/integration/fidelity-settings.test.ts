// Values are migrated exactly whatever the source's and target's databases and roles say about
// output and input (DateStyle, IntervalStyle, float digits, bytea, TimeZone, search_path that
// shadows pg_catalog, standard_conforming_strings): by the base copy offline, and by the base
// copy and the change stream online.
import assert from "node:assert/strict";
import { getMigration, requestAction, waitForMigration } from "../../provider/api/index";
import type { MigrationOutputs } from "../../provider/spec/types";
import { compareDatabases, STABLE_SESSION_SQL } from "../support/checksum";
import { controlOf, onlineSpec, Scenario } from "../support/online";
import type { PgServer } from "../support/postgres";
import { specOf } from "../support/spec";

const DATABASE = "fid";

/** ALTER DATABASE ... SET for each entry. */
async function setDatabase(
  server: PgServer,
  database: string,
  settings: Record<string, string>,
): Promise<void> {
  for (const [name, value] of Object.entries(settings)) {
    await server.query(`ALTER DATABASE ${database} SET ${name} = ${value}`);
  }
}

// A user schema whose objects shadow pg_catalog names once it comes first in search_path, and
// one row per awkward value: text forms of all of them depend on session settings.
const SCHEMA_SQL = `
  CREATE SCHEMA app;
  CREATE FUNCTION app.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT timestamptz '2000-01-01 00:00+00' $$;
  CREATE FUNCTION app.upper(text) RETURNS text LANGUAGE sql AS $$ SELECT 'shadowed' $$;
  CREATE TYPE app.int8 AS (x integer);
  CREATE TABLE app.t (id integer PRIMARY KEY);
  CREATE TABLE public.t (id integer PRIMARY KEY);
  CREATE FUNCTION app.f() RETURNS integer LANGUAGE sql AS $$ SELECT 1 $$;
  CREATE FUNCTION public.f() RETURNS integer LANGUAGE sql AS $$ SELECT 2 $$;
  CREATE TABLE app.vals (
    id integer PRIMARY KEY,
    d date, ts timestamp, tstz timestamptz, tm time, tmtz timetz, iv interval,
    f4 real, f8 double precision, n numeric, n2 numeric(12, 4), b bytea, j json, jb jsonb,
    ia integer[], ta text[], tsa timestamptz[], r tstzrange, dr daterange, x xml,
    rc regclass, rp regproc
  )`;

/** Rows `from`..`to` of awkward values (days above 12, negative intervals, inexact floats). */
function insertRows(from: number, to: number): string {
  return `
    INSERT INTO app.vals
    SELECT i,
           date '2024-02-25' + i,
           timestamp '2024-02-25 13:14:15.123456' + i * interval '1 day',
           timestamptz '2024-02-25 23:59:59.5+00' + i * interval '1 hour',
           time '23:59:59.999999',
           timetz '01:02:03+05:45',
           interval '-1 day -2 hours' * i + interval '3 years 4 months 5.25 seconds',
           (0.1::real + i::real / 3),
           0.1::float8 + 0.2::float8 + i::float8 / 7,
           1.0 / 3 + i,
           12.3456 + i,
           decode('00ff5c27' || lpad(to_hex(i), 2, '0'), 'hex'),
           '{"a": "x\\\\y", "n": 1.50}'::json,
           '{"k": [1, 2.500, "é"]}'::jsonb,
           ARRAY[i, -i, NULL],
           ARRAY['a''b', 'c\\d', NULL, 'NULL'],
           ARRAY[timestamptz '2024-12-31 23:00+00', timestamptz '1999-01-01 00:00+00'],
           tstzrange(timestamptz '2024-02-25 10:00+00', timestamptz '2024-02-26 10:00+00'),
           daterange(date '2024-02-13', date '2024-02-25' + i),
           xmlparse(content '<a>x</a>text'),
           'app.t'::regclass,
           'app.f'::regproc
      FROM generate_series(${from}, ${to}) AS i`;
}

// The value columns as text, read under pinned settings on either side.
async function valuesOf(server: PgServer, id: number): Promise<Record<string, string>> {
  const client = await server.connect(DATABASE);
  try {
    await client.query(STABLE_SESSION_SQL);
    const { rows } = await client.query<Record<string, string>>(
      `SELECT d::text, iv::text, f8::text, b::text, rc::text, rp::text FROM app.vals WHERE id = $1`,
      [id],
    );
    return rows[0];
  } finally {
    await client.end();
  }
}

/** Source schema and rows, with odd settings on the source database and its role. */
async function prepareSource(source: PgServer, settings: Record<string, string>): Promise<void> {
  await source.query(`CREATE DATABASE ${DATABASE}`);
  await source.query(SCHEMA_SQL, [], DATABASE);
  await source.query(insertRows(1, 20), [], DATABASE);
  await setDatabase(source, DATABASE, settings);
  // A role-level search_path in the database (it wins over the database's): app's objects shadow
  // pg_catalog's, and regclass/regproc would print unqualified.
  await source.query(
    `ALTER ROLE ${source.user} IN DATABASE ${DATABASE} SET search_path = app, pg_catalog, public`,
  );
}

/** An existing empty target database with odd settings: COPY FROM and apply parse there. */
async function prepareTarget(target: PgServer, settings: Record<string, string>): Promise<void> {
  await target.query(`CREATE DATABASE ${DATABASE}`);
  // An unqualified regclass "t" would be read as public.t here.
  await setDatabase(target, DATABASE, { ...settings, search_path: "public, pg_catalog" });
}

async function assertIdentical(s: Scenario): Promise<void> {
  const comparison = await compareDatabases(s.source, DATABASE, s.target, DATABASE);
  assert.deepEqual(comparison.differences, []);
  for (const id of [1, 15, 20]) {
    assert.deepEqual(await valuesOf(s.target, id), await valuesOf(s.source, id), `row ${id}`);
  }
  // Row 15 is never changed by the stream: its values as inserted.
  const sample = await valuesOf(s.target, 15);
  assert.equal(sample.d, "2024-03-11");
  assert.equal(sample.b, "\\x00ff5c270f");
  assert.equal(sample.rc, "app.t");
  assert.equal(sample.rp, "app.f");
}

describe("fidelity under any database settings", function () {
  describe("offline, PostgreSQL 15 → 15: SQL/DMY, sql_standard, 0 float digits, escape bytea, Kathmandu, shadowing search_path, backslash strings on the source; German, iso_8601, -3 digits on the target", () => {
    const s = new Scenario();
    before(() => s.start());
    after(() => s.stop());

    it("copies every value checksum-identical", async () => {
      await prepareSource(s.source, {
        DateStyle: "'SQL, DMY'",
        IntervalStyle: "'sql_standard'",
        extra_float_digits: "0",
        bytea_output: "'escape'",
        TimeZone: "'Asia/Kathmandu'",
        standard_conforming_strings: "off",
      });
      await prepareTarget(s.target, {
        DateStyle: "'German'",
        IntervalStyle: "'iso_8601'",
        extra_float_digits: "-3",
        bytea_output: "'escape'",
        TimeZone: "'America/St_Johns'",
        standard_conforming_strings: "off",
      });
      const spec = specOf(s.source, s.target, {
        migrationName: "fid-offline",
        databases: [DATABASE],
        verify: "checksum",
      });
      const { worker, settled } = await s.startInProcess(spec);
      await worker;
      assert.equal(settled.error, null);
      assert.equal(settled.state, "Succeeded");
      await assertIdentical(s);
    });
  });

  describe("online, PostgreSQL 15 → 15: German, iso_8601, -3 digits, Kathmandu on the source; SQL/DMY, sql_standard, 0 digits on the target", () => {
    const s = new Scenario();
    before(() => s.start());
    after(() => s.stop());

    it("copies and streams every value checksum-identical", async () => {
      await prepareSource(s.source, {
        DateStyle: "'German'",
        IntervalStyle: "'iso_8601'",
        extra_float_digits: "-3",
        bytea_output: "'escape'",
        TimeZone: "'Asia/Kathmandu'",
        standard_conforming_strings: "off",
      });
      await prepareTarget(s.target, {
        DateStyle: "'SQL, DMY'",
        IntervalStyle: "'sql_standard'",
        extra_float_digits: "0",
        bytea_output: "'escape'",
        TimeZone: "'Pacific/Chatham'",
        standard_conforming_strings: "off",
      });
      const spec = onlineSpec(s.source, s.target, "fid-online", [DATABASE]);
      const at = controlOf(spec);
      const { worker, settled } = await s.startInProcess(spec);
      assert.equal(settled.error, null);
      assert.equal(settled.state, "WaitingForUserAction");

      // Changes through the stream: inserts (multi-row), updates of every column, deletes. The
      // literals in insertRows mean what they say only with standard strings (set before the
      // statement is parsed).
      const writer = await s.source.connect(DATABASE);
      try {
        await writer.query("SET standard_conforming_strings = on");
        await writer.query(insertRows(21, 40));
      } finally {
        await writer.end();
      }
      await s.source.query(
        `UPDATE app.vals AS v SET (d, ts, tstz, tm, tmtz, iv, f4, f8, n, n2, b, j, jb, ia, ta, tsa, r, dr, x, rc, rp) =
           (SELECT d, ts, tstz, tm, tmtz, iv, f4, f8, n, n2, b, j, jb, ia, ta, tsa, r, dr, x, rc, rp
              FROM app.vals WHERE id = v.id + 20)
          WHERE v.id <= 10`,
        [],
        DATABASE,
      );
      await s.source.query("DELETE FROM app.vals WHERE id BETWEEN 35 AND 37", [], DATABASE);
      const base = settled.dbDetails[DATABASE];
      await waitForMigration(
        at,
        spec.migrationName,
        (o: MigrationOutputs) =>
          o.dbDetails[DATABASE].cdcDeleteCounter >= base.cdcDeleteCounter + 3,
        { timeoutMs: 60_000 },
      );
      await requestAction(at, spec.migrationName, "cutover");
      await worker;
      const done = (await getMigration(at, spec.migrationName)) as MigrationOutputs;
      assert.equal(done.error, null);
      assert.equal(done.state, "Succeeded");
      await assertIdentical(s);
      assert.deepEqual(await valuesOf(s.target, 5), await valuesOf(s.source, 25));
    });
  });
});
