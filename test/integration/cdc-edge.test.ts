// Adversarial apply cases: orderings inside one source transaction, merged multi-row statements,
// value texts that depend on session settings, replica identities, truncates, transaction
// boundaries and a crash between the target commit and the acknowledgement.
import assert from "node:assert/strict";
import type { Client } from "pg";
import {
  currentWalLsn,
  sourceCleanupSql,
  storedAppliedLsn,
  type ReplicationStream,
} from "../../provider/cdc";
import { WalSender } from "../../provider/cdc/walsender";
import { MigrationError } from "../../provider/pg/errors";
import { quoteLiteral } from "../../provider/pg/ident";
import {
  assertSame,
  catchUp as catchUpWithin,
  cleanUp,
  killApplier,
  killWalsender,
  prepareSchemaPair,
  stream,
  applyWaitingForLock,
  waitingForLock,
  TOASTED,
  type Pair,
  type PairOptions,
} from "../support/cdc";
import { startPostgres, type PgServer } from "../support/postgres";
import { endpointOf } from "../support/spec";
import { until } from "../support/wait";

const MIGRATION = "cdc-edge";
/** A target role that owns the tables but is no superuser: no session_replication_role. */
const OWNER = "table_owner";

// Every setting that changes a value's text differs from the defaults the target uses: values
// must still arrive as the same values.
const ODD_SOURCE_SETTINGS = {
  timezone: "'Asia/Kolkata'",
  DateStyle: "'SQL, DMY'",
  IntervalStyle: "'sql_standard'",
  extra_float_digits: 0,
  bytea_output: "'escape'",
  lc_monetary: "'C.UTF-8'",
};

async function catchUp(source: PgServer, pair: Pair, s: ReplicationStream): Promise<void> {
  await catchUpWithin(source, pair, s, 30_000);
}

/** A fresh database `schema` on both servers (see test/support/cdc.ts), published for this file. */
const preparePair = (
  source: PgServer,
  target: PgServer,
  schema: string,
  options: PairOptions = {},
): Promise<Pair> => prepareSchemaPair(source, target, MIGRATION, schema, options);

/** The server-side pid of a client's session. */
async function backendPid(client: Client): Promise<number> {
  const { rows } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
  return rows[0].pid;
}

describe("change data capture edge cases (PostgreSQL 15 → 15)", function () {
  let source: PgServer;
  let target: PgServer;
  let pair: Pair | undefined;

  before(async () => {
    [source, target] = await Promise.all([
      startPostgres({ version: 15, settings: ODD_SOURCE_SETTINGS }),
      startPostgres({ version: 15, settings: { timezone: "'UTC'" } }),
    ]);
    // Same password as the superuser's: the endpoint differs only in its user name.
    await target.query(`CREATE ROLE ${OWNER} LOGIN PASSWORD ${quoteLiteral(target.password)}`);
  });
  after(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });
  afterEach(async () => {
    if (pair) await cleanUp(source, pair);
    pair = undefined;
  });

  /** Orderings inside one source transaction, applied by a superuser or by the tables' owner. */
  async function sourceOrder(targetOwner?: string): Promise<void> {
    pair = await preparePair(
      source,
      target,
      `CREATE SCHEMA o;
       CREATE TABLE o.k (id int PRIMARY KEY, email text UNIQUE, v int);
       CREATE TABLE o.parent (id int PRIMARY KEY, v text);
       CREATE TABLE o.child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES o.parent, v text);
       CREATE TABLE o.deferred (id int PRIMARY KEY DEFERRABLE INITIALLY IMMEDIATE, v int);
       CREATE TABLE o.deferred_unique (id int PRIMARY KEY, pos int UNIQUE DEFERRABLE);
       CREATE TABLE o.partial (id int PRIMARY KEY, email text, active boolean NOT NULL);
       CREATE UNIQUE INDEX ON o.partial (email) WHERE active;
       CREATE TABLE o.ch (code char(6) PRIMARY KEY, label char(4), bits bit(4), v int);
       INSERT INTO o.k SELECT g, 'e' || g, g FROM generate_series(1, 10) AS g;
       INSERT INTO o.parent SELECT g, 'p' || g FROM generate_series(1, 5) AS g;
       INSERT INTO o.child SELECT g, 1 + g % 5, 'c' || g FROM generate_series(1, 10) AS g;
       INSERT INTO o.deferred SELECT g, g FROM generate_series(1, 20) AS g;
       INSERT INTO o.deferred_unique SELECT g, g FROM generate_series(1, 20) AS g;
       INSERT INTO o.partial SELECT g, 'x', g = 1 FROM generate_series(1, 4) AS g;
       INSERT INTO o.ch SELECT 'c' || g, 'l' || g, '1010', g FROM generate_series(1, 8) AS g;`,
      { targetOwner },
    );
    const s = await stream(source, target, pair, {
      target: targetOwner ? { ...endpointOf(target), username: targetOwner } : endpointOf(target),
    });
    const run = (sql: string): Promise<unknown> => source.query(sql, [], pair!.db);
    // Insert, update, delete of one key; delete and re-insert; key chains and a swap.
    await run(`BEGIN;
      INSERT INTO o.k VALUES (100, 'new', 1), (101, 'n101', 1);
      UPDATE o.k SET v = 2 WHERE id = 100;
      UPDATE o.k SET v = 3 WHERE id = 100;
      DELETE FROM o.k WHERE id = 100;
      DELETE FROM o.k WHERE id = 1;
      INSERT INTO o.k VALUES (1, 'e1', 111);
      UPDATE o.k SET id = 200 WHERE id = 3;
      UPDATE o.k SET id = 3 WHERE id = 2;
      UPDATE o.k SET id = 2 WHERE id = 200;
      UPDATE o.k SET id = 300 WHERE id = 4; UPDATE o.k SET id = 4 WHERE id = 5;
      UPDATE o.k SET id = 5 WHERE id = 300;
      DELETE FROM o.k WHERE id = 6;
      UPDATE o.k SET email = 'e6' WHERE id = 7;
      UPDATE o.k SET email = 'e7', v = v + 1 WHERE id = 8;
      UPDATE o.k SET v = v * 10 WHERE id BETWEEN 1 AND 10;
      COMMIT`);
    // Interleaved tables with FKs (checked on the target when the role cannot be "replica").
    await run(`BEGIN;
      INSERT INTO o.parent VALUES (10, 'ten');
      INSERT INTO o.child VALUES (100, 10, 'child of ten');
      UPDATE o.child SET parent_id = 10 WHERE id BETWEEN 1 AND 5;
      DELETE FROM o.child WHERE parent_id = 1;
      DELETE FROM o.parent WHERE id = 1;
      INSERT INTO o.parent VALUES (1, 'one again');
      INSERT INTO o.child VALUES (101, 1, 'child of one again');
      COMMIT`);
    // Deferrable keys shifted in one statement: row by row, every step would collide. (A
    // deferrable primary key cannot be the replica identity: the table gets identity FULL.)
    await run("UPDATE o.deferred SET id = id + 1");
    await run("UPDATE o.deferred_unique SET pos = pos + 1");
    // A partial unique index: which row is active swaps; the order of the two updates matters.
    await run(`BEGIN; UPDATE o.partial SET active = false WHERE id = 1;
      UPDATE o.partial SET active = true WHERE id = 2; COMMIT`);
    // char(n)/bit(n) columns and keys in merged multi-row statements.
    await run("UPDATE o.ch SET label = 'abcd', bits = '0110', v = v + 1");
    await run("DELETE FROM o.ch WHERE v > 5");
    await catchUp(source, pair, s);
    await assertSame(source, target, pair.db);
    const ch = await target.query<{ code: string; label: string }>(
      "SELECT code, label FROM o.ch ORDER BY code LIMIT 1",
      [],
      pair.db,
    );
    assert.deepEqual(ch, [{ code: "c1    ", label: "abcd" }]);
  }

  it("advises cleanup statements that drop whichever of slot and publication is left", async () => {
    const slot = "pgmigrate_advice_slot";
    const publication = "Advice Pub";
    const left = async () => {
      const rows = await source.query<{ slots: string; pubs: string }>(
        `SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1) AS slots,
                (SELECT count(*) FROM pg_publication WHERE pubname = $2) AS pubs`,
        [slot, publication],
      );
      return [Number(rows[0].slots), Number(rows[0].pubs)];
    };
    const both = async () => {
      await source.query(`CREATE PUBLICATION "Advice Pub"`);
      await source.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot]);
    };
    await both();
    assert.deepEqual(await left(), [1, 1]);
    await source.query(sourceCleanupSql(slot, publication));
    assert.deepEqual(await left(), [0, 0]);
    // The slot already gone (as after a cutover that failed dropping the publication).
    await source.query(`CREATE PUBLICATION "Advice Pub"`);
    await source.query(sourceCleanupSql(slot, publication));
    assert.deepEqual(await left(), [0, 0]);
    // Nothing left at all: still valid.
    await source.query(sourceCleanupSql(slot, publication));
    assert.deepEqual(await left(), [0, 0]);
  });

  it("keeps the source's order inside one transaction: key chains, freed unique values, FKs", () =>
    sourceOrder());

  it("keeps that order as a non-superuser owner, where FK and deferrable checks fire", () =>
    sourceOrder(OWNER));

  it("carries values whose text depends on session settings, TOAST and merged SET lists", async () => {
    pair = await preparePair(
      source,
      target,
      `CREATE SCHEMA v;
       CREATE TYPE v.mood AS ENUM ('sad', 'ok', 'happy');
       CREATE TYPE v.pair AS (at timestamptz, n numeric, label text);
       CREATE DOMAIN v.price AS numeric(12,2) CHECK (VALUE >= 0);
       CREATE TABLE v.vals (
         id int PRIMARY KEY, m money, ts timestamptz, tsl timestamp, d date, iv interval,
         f8 float8, f4 real, b bytea, t text, big text, moods v.mood[], p v.pair, ps v.pair[],
         pr v.price, r tstzrange, nr numrange, j json, c char(5), tt timetz, tsa timestamptz[]);
       CREATE TABLE v.full_vals (
         ts timestamptz, tsa timestamptz[], r tstzrange, p v.pair, f8 float8, n numeric,
         c char(3), j json, pt point, iv interval, d date, note text);
       ALTER TABLE v.full_vals REPLICA IDENTITY FULL;
       INSERT INTO v.full_vals VALUES
         ('2024-01-01 10:00:00+00', '{"2024-01-01 10:00:00+00"}', '[2024-01-01 00:00+00,2024-02-01 00:00+00)',
          ROW('2024-01-01 10:00:00+00', 1.5, 'a'), 0.1, 1.0, 'ab', '{ "a" : 1 }', '(0.1,0.2)',
          '-1 day +02:03:04', '2024-01-02', 'first'),
         ('2024-01-01 10:00:00+00', NULL, NULL, NULL, '-0', 1.00, 'ab', NULL, NULL, NULL, NULL, 'neg zero'),
         ('2024-01-01 10:00:00+00', NULL, NULL, NULL, '0', 1.0, 'ab', NULL, NULL, NULL, NULL, 'zero'),
         -- Equal under "=" but not the same values: only one of them is deleted.
         (NULL, NULL, NULL, NULL, '-0', 1.00, NULL, NULL, NULL, NULL, NULL, 'eq'),
         (NULL, NULL, NULL, NULL, '0', 1.0, NULL, NULL, NULL, NULL, NULL, 'eq');`,
    );
    const s = await stream(source, target, pair);
    const run = (sql: string): Promise<unknown> => source.query(sql, [], pair!.db);
    await run(`INSERT INTO v.vals
      SELECT g, (1234.5 * g)::numeric::money, '2024-03-10 01:30:00.123456+00'::timestamptz + g * interval '1 hour',
        '2024-02-29 23:59:59.999999', '2024-01-02'::date + g, make_interval(days => -g, secs => 3.000001 * g),
        1 / 3::float8 * g, (0.1 * g)::real, ('\\x00ff5c27' || lpad(to_hex(g), 2, '0'))::bytea,
        E'quote '' dq " backslash \\\\ nl \\n tab \\t é 🐘 ' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE ${TOASTED("g")} END,
        ARRAY['sad', 'happy']::v.mood[], ROW('2024-01-01 00:00:00+00', 0.1 * g, 'l"' || g)::v.pair,
        ARRAY[ROW('2024-06-01 12:00:00+00', g, 'x, y')::v.pair], 19.99 * g,
        tstzrange('2024-01-01 00:00+00', '2024-01-01 00:00+00'::timestamptz + g * interval '1 day'),
        numrange(g, g + 0.5, '(]'), '{ "k" : [1, 2.50] }', 'ab', '12:00:00+05:30', ARRAY['2024-01-01 00:00:00+00'::timestamptz]
      FROM generate_series(1, 12) AS g`);
    await run("UPDATE v.vals SET t = '' WHERE id = 12");
    // Consecutive updates whose sent columns differ: unchanged TOAST ('u'), NULL, changed TOAST.
    await run(`BEGIN;
      UPDATE v.vals SET t = 'u' || id WHERE id IN (1, 2);
      UPDATE v.vals SET big = big || '!', t = 'changed big' WHERE id = 4;
      UPDATE v.vals SET t = 'null big' WHERE id = 3;
      UPDATE v.vals SET t = 'u again' WHERE id = 5;
      UPDATE v.vals SET big = NULL WHERE id = 7;
      UPDATE v.vals SET big = '' WHERE id = 8;
      UPDATE v.vals SET t = NULL WHERE id = 10;
      COMMIT`);
    // One statement over all rows: merged into multi-row statements with casts.
    await run(`UPDATE v.vals SET m = m + 0.01::numeric::money, ts = ts + interval '1 microsecond',
      iv = iv * 2, f8 = f8 / 7, f4 = f4 * 3, pr = pr + 0.01, c = 'abcde', moods = moods || 'ok'::v.mood,
      tt = '23:59:59.999999-03', p.n = (p).n + 0.000000001, r = tstzrange(lower(r), upper(r) + interval '1 ms')`);
    await run("DELETE FROM v.vals WHERE id IN (11, 12)");
    // Identity FULL: rows found by values whose text depends on TimeZone and float digits.
    await run(`UPDATE v.full_vals SET note = 'updated' WHERE note = 'first'`);
    await run(`DELETE FROM v.full_vals WHERE note = 'zero'`);
    await run(`UPDATE v.full_vals SET note = 'neg zero updated' WHERE note = 'neg zero'`);
    await run(`DELETE FROM v.full_vals WHERE note = 'eq' AND f8::text = '0'`);
    await catchUp(source, pair, s);
    await assertSame(source, target, pair.db);
  });

  it("finds rows by identity FULL duplicates, USING INDEX keys, and maps columns by name", async () => {
    const common = `CREATE SCHEMA i;
       CREATE TABLE i.dups (a int, b text);
       ALTER TABLE i.dups REPLICA IDENTITY FULL;
       CREATE TABLE i.by_index (code text NOT NULL, region int NOT NULL, v int, note text);
       CREATE UNIQUE INDEX by_index_key ON i.by_index (region, code);
       ALTER TABLE i.by_index REPLICA IDENTITY USING INDEX by_index_key;
       CREATE TABLE i.ids (id int PRIMARY KEY, seq int GENERATED ALWAYS AS IDENTITY, v text);
       CREATE TABLE i.id_key (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
       CREATE TABLE i.id_full (seq int GENERATED ALWAYS AS IDENTITY, v text);
       ALTER TABLE i.id_full REPLICA IDENTITY FULL;
       CREATE TABLE i.nothing ();
       ALTER TABLE i.nothing REPLICA IDENTITY FULL;
       CREATE TABLE i.altered (id int PRIMARY KEY, c char(3), v int);
       INSERT INTO i.altered SELECT g, 'c', g FROM generate_series(1, 5) AS g;`;
    pair = await preparePair(
      source,
      target,
      `${common}
       CREATE TABLE i.shape (id int PRIMARY KEY, gone text, a text, b int,
         total int GENERATED ALWAYS AS (b * 2) STORED, c text);
       ALTER TABLE i.shape DROP COLUMN gone;
       INSERT INTO i.dups VALUES (1, 'same'), (1, 'same'), (1, 'same'), (2, NULL), (2, NULL);
       INSERT INTO i.by_index SELECT 'c' || g, g % 3, g, 'n' FROM generate_series(1, 9) AS g;
       INSERT INTO i.shape (id, a, b, c) VALUES (1, 'a', 1, 'c');`,
      {
        // The target's columns come in another order, and it never had the dropped one.
        targetSchema: `${common}
          CREATE TABLE i.shape (c text, total int GENERATED ALWAYS AS (b * 2) STORED, b int,
            id int PRIMARY KEY, a text);
          INSERT INTO i.dups VALUES (1, 'same'), (1, 'same'), (1, 'same'), (2, NULL), (2, NULL);
          INSERT INTO i.by_index SELECT 'c' || g, g % 3, g, 'n' FROM generate_series(1, 9) AS g;
          INSERT INTO i.shape (id, a, b, c) VALUES (1, 'a', 1, 'c');`,
      },
    );
    const s = await stream(source, target, pair);
    const run = (sql: string): Promise<unknown> => source.query(sql, [], pair!.db);
    await run("DELETE FROM i.dups WHERE ctid = (SELECT min(ctid) FROM i.dups WHERE a = 1)");
    await run(
      "UPDATE i.dups SET b = 'other' WHERE ctid = (SELECT max(ctid) FROM i.dups WHERE a = 1)",
    );
    await run("DELETE FROM i.dups WHERE ctid = (SELECT min(ctid) FROM i.dups WHERE a = 2)");
    await run("INSERT INTO i.dups VALUES (1, 'same')");
    await run(`BEGIN;
      UPDATE i.by_index SET v = v + 100 WHERE region = 1;
      UPDATE i.by_index SET note = 'moved', region = 9 WHERE code = 'c2';
      UPDATE i.by_index SET code = 'c2' WHERE code = 'c5';
      DELETE FROM i.by_index WHERE region = 0;
      COMMIT`);
    // Identity ALWAYS values are copied as they are, also when an update draws a new one.
    await run(`BEGIN;
      INSERT INTO i.ids (id, v) SELECT g, 'v' FROM generate_series(1, 5) AS g;
      INSERT INTO i.id_key (v) SELECT 'v' FROM generate_series(1, 5) AS g;
      INSERT INTO i.id_full (v) SELECT 'v' || g FROM generate_series(1, 5) AS g;
      COMMIT`);
    await run(`BEGIN;
      UPDATE i.ids SET seq = DEFAULT, v = 'new seq' WHERE id = 2;
      UPDATE i.ids SET seq = DEFAULT WHERE id = 3;
      UPDATE i.ids SET v = 'same seq' WHERE id >= 3;
      UPDATE i.id_key SET id = DEFAULT WHERE id = 1;
      UPDATE i.id_full SET seq = DEFAULT WHERE v = 'v1';
      UPDATE i.id_full SET v = 'same seq' WHERE v = 'v2';
      COMMIT`);
    // A table without columns still counts its rows.
    await run(
      "INSERT INTO i.nothing DEFAULT VALUES; INSERT INTO i.nothing SELECT FROM generate_series(1, 3)",
    );
    await run("DELETE FROM i.nothing WHERE ctid = (SELECT min(ctid) FROM i.nothing)");
    // A column type changed on both sides while streaming: casts follow the new type.
    await run("UPDATE i.altered SET c = 'abc', v = v + 1");
    await catchUp(source, pair, s);
    for (const server of [source, target])
      await server.query("ALTER TABLE i.altered ALTER COLUMN c TYPE char(8)", [], pair.db);
    await run("UPDATE i.altered SET c = 'abcdefgh', v = v + 1");
    await run(`BEGIN; INSERT INTO i.shape (id, a, b, c) VALUES (2, 'a2', 2, 'c2'), (3, 'a3', 3, NULL);
      UPDATE i.shape SET b = b + 10, c = 'upd' WHERE id <= 2; DELETE FROM i.shape WHERE id = 3; COMMIT`);
    await catchUp(source, pair, s);
    await assertSame(source, target, pair.db);
    const dups = await target.query<{ n: string }>(
      "SELECT count(*) AS n FROM i.dups WHERE a = 1 AND b = 'same'",
      [],
      pair.db,
    );
    assert.equal(
      Number(dups[0].n),
      2,
      "one of three identical rows deleted, one updated, one added",
    );
    const nothing = await target.query<{ n: string }>(
      "SELECT count(*) AS n FROM i.nothing",
      [],
      pair.db,
    );
    assert.equal(Number(nothing[0].n), 3);
  });

  it("replays TRUNCATE of one partition, with CASCADE, and with RESTART IDENTITY", async () => {
    pair = await preparePair(
      source,
      target,
      `CREATE SCHEMA tr;
       CREATE TABLE tr.m (id int, at date, v int, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
       CREATE TABLE tr.m_2023 PARTITION OF tr.m FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
       CREATE TABLE tr.m_2024 PARTITION OF tr.m FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
       CREATE TABLE tr.parent (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, v text);
       CREATE TABLE tr.child (id serial PRIMARY KEY, parent_id int REFERENCES tr.parent);
       CREATE TABLE tr.counter (id serial PRIMARY KEY, v text);
       INSERT INTO tr.m SELECT g, date '2023-06-01' + g, g FROM generate_series(1, 300) AS g;
       INSERT INTO tr.parent (v) SELECT 'p' || g FROM generate_series(1, 5) AS g;
       INSERT INTO tr.child (parent_id) SELECT 1 + g % 5 FROM generate_series(1, 10) AS g;
       INSERT INTO tr.counter (v) SELECT 'c' || g FROM generate_series(1, 5) AS g;`,
    );
    await target.query("SELECT setval('tr.counter_id_seq', 50)", [], pair.db);
    const s = await stream(source, target, pair);
    const run = (sql: string): Promise<unknown> => source.query(sql, [], pair!.db);
    await run("TRUNCATE tr.m_2023");
    await run("TRUNCATE tr.parent CASCADE");
    await run("INSERT INTO tr.parent (v) VALUES ('after')");
    await run(
      "BEGIN; TRUNCATE tr.counter RESTART IDENTITY; INSERT INTO tr.counter (v) VALUES ('x'); COMMIT",
    );
    await catchUp(source, pair, s);
    await assertSame(source, target, pair.db);
    const counts = await target.query<{ y2023: string; y2024: string }>(
      `SELECT (SELECT count(*) FROM tr.m_2023) AS y2023, (SELECT count(*) FROM tr.m_2024) AS y2024`,
      [],
      pair.db,
    );
    assert.equal(Number(counts[0].y2023), 0);
    assert.ok(Number(counts[0].y2024) > 0, "the other partition kept its rows");
    const seq = await target.query<{ last_value: string }>(
      "SELECT last_value FROM tr.counter_id_seq",
      [],
      pair.db,
    );
    assert.equal(Number(seq[0].last_value), 1, "RESTART IDENTITY restarted the target sequence");
  });

  it("handles unpublished-only, rolled back, savepoint and interleaved transactions", async () => {
    pair = await preparePair(
      source,
      target,
      `CREATE SCHEMA x;
       CREATE TABLE x.acct (id int PRIMARY KEY, balance int NOT NULL, note text);
       CREATE TABLE x.local (id serial PRIMARY KEY, v text);
       INSERT INTO x.acct SELECT g, 100, NULL FROM generate_series(1, 20) AS g;`,
      { tables: [{ schema: "x", name: "acct" }] },
    );
    const s = await stream(source, target, pair);
    const run = (sql: string): Promise<unknown> => source.query(sql, [], pair!.db);
    await run("UPDATE x.acct SET note = 'published' WHERE id = 1");
    await catchUp(source, pair, s);
    const storedBefore = await storedAppliedLsn(endpointOf(target), pair.db, pair.slot);
    assert.ok(storedBefore, "the published transaction was applied");
    // Only an unpublished table: the acknowledged position moves on, the target is untouched.
    await run("INSERT INTO x.local (v) SELECT 'l' || g FROM generate_series(1, 100) AS g");
    const afterLocal = await currentWalLsn(endpointOf(source), pair.db);
    await catchUp(source, pair, s);
    assert.equal(await storedAppliedLsn(endpointOf(target), pair.db, pair.slot), storedBefore);
    const slotName = pair.slot;
    await until(
      async () => {
        const [slot] = await source.query<{ behind: string }>(
          "SELECT pg_wal_lsn_diff($2::pg_lsn, confirmed_flush_lsn) AS behind FROM pg_replication_slots WHERE slot_name = $1",
          [slotName, afterLocal],
        );
        return Number(slot.behind);
      },
      // Within a WAL page header of the position: see waitForLsn.
      {
        what: "the slot to confirm the position",
        accept: (behind) => behind <= 40,
        timeoutMs: 10_000,
        intervalMs: 100,
      },
    );
    // Rolled back, and savepoints rolled back to: never on the target.
    await run("BEGIN; UPDATE x.acct SET balance = -1; DELETE FROM x.acct WHERE id = 2; ROLLBACK");
    await run(`BEGIN;
      UPDATE x.acct SET balance = balance + 1 WHERE id = 3;
      SAVEPOINT a; UPDATE x.acct SET balance = -999 WHERE id = 3; DELETE FROM x.acct WHERE id = 4;
      ROLLBACK TO SAVEPOINT a;
      SAVEPOINT b; INSERT INTO x.acct VALUES (50, 50, 'kept'); RELEASE SAVEPOINT b;
      SAVEPOINT c; INSERT INTO x.acct VALUES (51, 51, 'dropped'); ROLLBACK TO SAVEPOINT c;
      UPDATE x.acct SET note = 'after savepoints' WHERE id = 3;
      COMMIT`);
    // Two sessions interleaving updates of the same rows: commit order decides.
    const [a, b] = await Promise.all([source.connect(pair.db), source.connect(pair.db)]);
    try {
      const [aPid, bPid] = await Promise.all([a, b].map(backendPid));
      await a.query("BEGIN");
      await b.query("BEGIN");
      await a.query("UPDATE x.acct SET balance = balance - 10, note = 'a' WHERE id = 10");
      await b.query("UPDATE x.acct SET balance = balance + 5, note = 'b' WHERE id = 11");
      await b.query("INSERT INTO x.acct VALUES (60, 60, 'b first')");
      await a.query("UPDATE x.acct SET balance = balance - 1 WHERE id = 12");
      const blocked = b.query("UPDATE x.acct SET balance = balance * 2, note = 'b' WHERE id = 10");
      await waitingForLock(source, bPid);
      await a.query("COMMIT");
      await blocked;
      await a.query("BEGIN");
      const waiting = a.query("UPDATE x.acct SET note = 'a again' WHERE id IN (11, 60)");
      await waitingForLock(source, aPid);
      await b.query("COMMIT");
      await waiting;
      await a.query("COMMIT");
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
    await catchUp(source, pair, s);
    await assertSame(source, target, pair.db, ["x.local"]);
  });

  it("does not apply a batch again that a lingering earlier session committed meanwhile", async () => {
    pair = await preparePair(
      source,
      target,
      `CREATE SCHEMA z;
       CREATE TABLE z.events (n int, v text);
       ALTER TABLE z.events REPLICA IDENTITY FULL;`,
    );
    const s = await stream(source, target, pair);
    await source.query("INSERT INTO z.events VALUES (1, 'first')", [], pair.db);
    await catchUp(source, pair, s);
    // The backend of a session whose connection broke, still committing the same batch: it
    // holds the position row while the live session applies the batch.
    const lingering = await target.connect(pair.db);
    try {
      await lingering.query("BEGIN");
      await lingering.query(
        "SELECT 1 FROM pgmigrate_apply.progress WHERE slot_name = $1 FOR UPDATE",
        [pair.slot],
      );
      await source.query("INSERT INTO z.events VALUES (2, 'second')", [], pair.db);
      const position = await currentWalLsn(endpointOf(source), pair.db);
      // The live session waits for the position row.
      await applyWaitingForLock(target, pair.db);
      await lingering.query("INSERT INTO z.events VALUES (2, 'second')");
      await lingering.query(
        "UPDATE pgmigrate_apply.progress SET applied_lsn = $2 WHERE slot_name = $1",
        [pair.slot, position],
      );
      await lingering.query("COMMIT");
    } finally {
      await lingering.end();
    }
    await source.query("INSERT INTO z.events VALUES (3, 'third')", [], pair.db);
    await catchUp(source, pair, s);
    await assertSame(source, target, pair.db);
  });

  it("skips a transaction committed on the target whose acknowledgement never reached the source", async () => {
    pair = await preparePair(
      source,
      target,
      `CREATE SCHEMA e;
       CREATE TABLE e.events (n int, v text);
       ALTER TABLE e.events REPLICA IDENTITY FULL;`,
    );
    // Acknowledgements are lost: the source keeps everything as unconfirmed.
    const sendStatus = WalSender.prototype.sendStatus;
    WalSender.prototype.sendStatus = () => undefined;
    let slotBefore: string;
    try {
      const s1 = await stream(source, target, pair, { maxRetries: 0 });
      for (let k = 1; k <= 3; k++) {
        await source.query(
          "INSERT INTO e.events SELECT g, 'txn ' || $1 FROM generate_series(1, 5) AS g",
          [k],
          pair.db,
        );
      }
      await catchUp(source, pair, s1);
      [{ lsn: slotBefore }] = await source.query<{ lsn: string }>(
        "SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1",
        [pair.slot],
      );
      const stored = await storedAppliedLsn(endpointOf(target), pair.db, pair.slot);
      assert.ok(stored, "the target committed the transactions");
      assert.ok(
        (
          await source.query<{ behind: boolean }>("SELECT $1::pg_lsn < $2::pg_lsn AS behind", [
            slotBefore,
            stored,
          ])
        )[0].behind,
        "the source never learned about them",
      );
      // Crash: both connections gone, no clean stop.
      await Promise.all([killWalsender(source, pair), killApplier(target, pair)]);
      await assert.rejects(s1.done);
    } finally {
      WalSender.prototype.sendStatus = sendStatus;
    }
    await source.query("INSERT INTO e.events VALUES (99, 'after the crash')", [], pair.db);
    const s2 = await stream(source, target, pair);
    await catchUp(source, pair, s2);
    assert.equal(s2.stats().inserts, 1, "only the new transaction was applied");
    await assertSame(source, target, pair.db);
  });

  it("sends many statements per round trip, quoting values, and names the table that fails", async () => {
    const schema = (bType: string): string =>
      `CREATE SCHEMA m;
       CREATE TABLE m.a (id int PRIMARY KEY, "v$1" text, "it's" bytea);
       CREATE TABLE m.b (id int PRIMARY KEY, v ${bType}, ch char(3));`;
    // On the target m.b.v is an integer: only text that happens to be a number goes in.
    pair = await preparePair(source, target, schema("text"), { targetSchema: schema("int") });
    const s = await stream(source, target, pair);
    const run = (sql: string): Promise<unknown> => source.query(sql, [], pair!.db);
    // Alternating tables: one statement per change, all in one query string. Values hold
    // quotes, backslashes and text that looks like parameters; a NULL; bytea in escape output.
    await run(`BEGIN;
      INSERT INTO m.a VALUES (1, 'it''s \\ $1 $2 "x"', '\\x5c27');
      INSERT INTO m.b VALUES (1, '10', 'ab');
      INSERT INTO m.a VALUES (2, E'back\\\\slash\\nnew line', NULL);
      INSERT INTO m.b VALUES (2, NULL, NULL);
      UPDATE m.a SET "v$1" = '$$ dollar $$' WHERE id = 1;
      UPDATE m.b SET v = '-3', ch = 'x' WHERE id = 1;
      DELETE FROM m.a WHERE id = 2;
      UPDATE m.b SET ch = 'yz' WHERE id = 2;
      COMMIT`);
    await catchUp(source, pair, s);
    await assertSame(source, target, pair.db);
    const before = await storedAppliedLsn(endpointOf(target), pair.db, pair.slot);
    // The chunk fails in its second statement's table, after a statement of another table;
    // more changes of the same transaction arrive while that chunk is on its way.
    await run(`BEGIN;
      INSERT INTO m.a VALUES (3, 'three', NULL);
      INSERT INTO m.b VALUES (3, 'not a number', 'c');
      INSERT INTO m.a VALUES (4, 'four', NULL);
      INSERT INTO m.a SELECT g, 'more', NULL FROM generate_series(10, 3000) AS g;
      COMMIT`);
    await assert.rejects(s.done, (err: unknown) => {
      assert.ok(err instanceof MigrationError, String(err));
      assert.equal(err.code, "22P02");
      assert.deepEqual([err.pg.schema, err.pg.table], ["m", "b"]);
      assert.match(err.message, /applying changes to m\.b failed/);
      return true;
    });
    assert.equal(await storedAppliedLsn(endpointOf(target), pair.db, pair.slot), before);
    const rows = await target.query<{ id: number }>("SELECT id FROM m.a ORDER BY id", [], pair.db);
    assert.deepEqual(
      rows.map((r) => r.id),
      [1],
      "nothing of the failed batch stays",
    );
  });
});
