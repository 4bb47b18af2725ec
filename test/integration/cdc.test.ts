// Online replication between real servers: every change made on the source while the stream
// runs reaches the target byte for byte, exactly once, also across lost connections.
import assert from "node:assert/strict";
import {
  createSlotWithSnapshot,
  dropSlotAndPublication,
  ensurePublication,
  storedAppliedLsn,
  type ReplicationStream,
} from "../../provider/cdc";
import { MigrationError } from "../../provider/pg/errors";
import { STABLE_SESSION_SQL } from "../support/checksum";
import {
  catchUp as catchUpWithin,
  killApplier,
  killWalsender,
  publishPair,
  stream,
  type Pair,
} from "../support/cdc";
import { startPostgres, type PgServer } from "../support/postgres";
import { endpointOf } from "../support/spec";
import { pause, until } from "../support/wait";

const MIGRATION = "cdc-test";

const SCHEMA_SQL = `
  CREATE SCHEMA app;
  CREATE SCHEMA "Other Schema";
  CREATE TABLE app.kinds (
    id bigint PRIMARY KEY, i8 bigint, n numeric(40,20), ts timestamptz, j json, jb jsonb, b bytea,
    t text, arr int[], tarr text[], f8 float8, d date, iv interval, u uuid, flag boolean);
  CREATE TABLE "Other Schema"."Wide Row" (id int PRIMARY KEY, counter int NOT NULL, body text);
  CREATE TABLE app.no_pk (a int, j json, p point, note text);
  ALTER TABLE app.no_pk REPLICA IDENTITY FULL;
  CREATE TABLE app.no_identity (a int, b text);
  CREATE TABLE app.parent (id int PRIMARY KEY, v text);
  CREATE TABLE app.child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES app.parent ON DELETE CASCADE, v text);
  CREATE TABLE app.measure (id int, at date, v numeric, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
  CREATE TABLE app.measure_2023 PARTITION OF app.measure FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
  CREATE TABLE app.measure_2024 PARTITION OF app.measure FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
  CREATE TABLE app.ident (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text UNIQUE, v int);
  CREATE TABLE app.big (id int PRIMARY KEY, v int NOT NULL, pad text);

  INSERT INTO app.kinds VALUES
    (1, 9223372036854775807, '12345678901234567890.12345678901234567890', '2024-02-29 23:59:59.999999+00',
     '{"b": 1,   "a": [1, 2]}', '{"b": 1, "a": 2}', '\\x00ff5c', 'ünïcode 🐘', '{1,NULL,3}', '{"a b",NULL,"c\\"d"}',
     1.0000000000000002, '2024-01-01', '1 day 00:00:00.000001', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true),
    (2, -9223372036854775808, '-0.00000000000000000001', '0001-01-01 00:00:00+00', 'null', 'null', '\\x', '',
     '{}', '{}', '-0', '4713-01-01 BC', '-178000000 years', '00000000-0000-0000-0000-000000000000', false),
    (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
  -- Hex text of md5 chains hardly compresses: 128 kB bodies are stored out of line (TOAST).
  INSERT INTO "Other Schema"."Wide Row"
    SELECT g, 0, (SELECT string_agg(md5(g || ':' || i), '') FROM generate_series(1, 4000) AS i)
    FROM generate_series(1, 3) AS g;
  INSERT INTO app.no_pk VALUES (1, '{"x":  1}', '(1,2)', 'dup'), (1, '{"x":  1}', '(1,2)', 'dup'),
                               (2, '[ 1 ,2 ]', '(0.1,-0)', NULL), (3, NULL, NULL, 'three');
  INSERT INTO app.no_identity VALUES (1, 'one'), (2, 'two'), (3, 'three');
  INSERT INTO app.parent SELECT g, 'p' || g FROM generate_series(1, 5) AS g;
  INSERT INTO app.child SELECT g, 1 + g % 5, 'c' || g FROM generate_series(1, 20) AS g;
  INSERT INTO app.measure SELECT g, date '2023-01-01' + g * 3, g / 7.0 FROM generate_series(1, 200) AS g;
  INSERT INTO app.ident (email, v) VALUES ('a@x', 1), ('b@x', 2);
  INSERT INTO app.big SELECT g, g, 'pad ' || g FROM generate_series(1, $BIG_ROWS) AS g;`;

const TABLES = [
  "app.kinds",
  '"Other Schema"."Wide Row"',
  "app.no_pk",
  "app.no_identity",
  "app.parent",
  "app.child",
  "app.measure_2023",
  "app.measure_2024",
  "app.ident",
  "app.big",
];

let dbCounter = 0;

/** Same schema and rows on both sides, then publication and slot: the state of a finished copy. */
async function preparePair(source: PgServer, target: PgServer, bigRows = 100): Promise<Pair> {
  const db = `cdc_${++dbCounter}`;
  const sql = SCHEMA_SQL.replace("$BIG_ROWS", String(bigRows));
  for (const server of [source, target]) {
    await server.query(`CREATE DATABASE ${db}`);
    const client = await server.connect(db);
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  }
  return publishPair(source, MIGRATION, db);
}

async function catchUp(source: PgServer, pair: Pair, s: ReplicationStream): Promise<void> {
  await catchUpWithin(source, pair, s, 120_000);
}

async function rowsOf(server: PgServer, db: string, table: string): Promise<string[]> {
  const client = await server.connect(db);
  try {
    await client.query(STABLE_SESSION_SQL);
    const { rows } = await client.query<{ row: string }>(
      `SELECT r::text AS row FROM ${table} AS r ORDER BY 1`,
    );
    return rows.map((r) => r.row);
  } finally {
    await client.end();
  }
}

async function assertSameRows(
  source: PgServer,
  target: PgServer,
  db: string,
  tables = TABLES,
): Promise<void> {
  for (const table of tables) {
    const [a, b] = await Promise.all([rowsOf(source, db, table), rowsOf(target, db, table)]);
    assert.deepEqual(b, a, `${table} differs between source and target`);
  }
}

/** Tears a pair down and proves nothing of ours is left on the source. */
async function cleanUp(source: PgServer, pair: Pair): Promise<void> {
  for (const s of pair.streams) await s.stop();
  await dropSlotAndPublication(endpointOf(source), pair.db, pair.slot, pair.publication);
  // Idempotent: a second drop finds nothing and does not complain.
  await dropSlotAndPublication(endpointOf(source), pair.db, pair.slot, pair.publication);
  const slots = await source.query(
    "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'pgmigrate\\_%'",
  );
  const pubs = await source.query(
    "SELECT pubname FROM pg_publication WHERE pubname LIKE 'pgmigrate\\_%'",
    [],
    pair.db,
  );
  assert.deepEqual(slots, []);
  assert.deepEqual(pubs, []);
}

/** Commits `count` small transactions (2 inserts, 1 update, 1 delete each) on the source. */
async function writeTransactions(
  source: PgServer,
  db: string,
  first: number,
  count: number,
  pauseMs = 0,
) {
  const client = await source.connect(db);
  try {
    for (let k = first; k < first + count; k++) {
      await client.query("BEGIN");
      await client.query(
        `INSERT INTO app.kinds (id, i8, n, ts, j, t) VALUES ($1, $2, $3, $4, $5, $6), ($1 + 1000000, NULL, NULL, NULL, NULL, 'x')`,
        [
          1000 + k,
          `${-9007199254740993n - BigInt(k)}`,
          `${k}.000000000000000000${k % 10}`,
          `2024-06-01 00:00:00.${String(k).padStart(6, "0")}+00`,
          `{ "k" : ${k} }`,
          `row ${k} 🐘`,
        ],
      );
      await client.query("UPDATE app.big SET v = v + 1, pad = $2 WHERE id = $1", [
        1 + (k % 100),
        `upd ${k}`,
      ]);
      await client.query("DELETE FROM app.kinds WHERE id = $1", [1000 + k + 1000000]);
      await client.query("COMMIT");
      if (pauseMs) await pause(pauseMs); // the writer's pace
    }
  } finally {
    await client.end();
  }
}

describe("change data capture (PostgreSQL 15 → 15)", function () {
  let source: PgServer;
  let target: PgServer;
  let pair: Pair | undefined;

  before(async () => {
    [source, target] = await Promise.all([
      startPostgres({ version: 15 }),
      startPostgres({ version: 15 }),
    ]);
  });
  after(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });
  afterEach(async () => {
    if (pair) await cleanUp(source, pair);
    pair = undefined;
  });

  it("replicates every kind of change byte for byte, keeping unchanged TOAST values", async () => {
    pair = await preparePair(source, target);
    const fixed = await source.query<{ relreplident: string }>(
      "SELECT relreplident FROM pg_class WHERE oid = 'app.no_identity'::regclass",
      [],
      pair.db,
    );
    assert.equal(fixed[0].relreplident, "f", "fixReplicaIdentity set REPLICA IDENTITY FULL");
    const s = await stream(source, target, pair);
    const run = (sql: string): Promise<unknown> => source.query(sql, [], pair!.db);
    const published = async (pub: string): Promise<string[]> =>
      (
        await source.query<{ t: string }>(
          "SELECT schemaname || '.' || tablename AS t FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1",
          [pub],
          pair!.db,
        )
      ).map((r) => r.t);
    // Partitioned tables are published as their leaves; running it again changes nothing.
    await ensurePublication(endpointOf(source), pair.db, pair.publication);
    assert.deepEqual(await published(pair.publication), [
      "Other Schema.Wide Row",
      "app.big",
      "app.child",
      "app.ident",
      "app.kinds",
      "app.measure_2023",
      "app.measure_2024",
      "app.no_identity",
      "app.no_pk",
      "app.parent",
    ]);
    await ensurePublication(endpointOf(source), pair.db, "pgmigrate_subset", {
      tables: [
        { schema: "app", name: "measure" },
        { schema: "app", name: "kinds" },
      ],
    });
    assert.deepEqual(await published("pgmigrate_subset"), [
      "app.kinds",
      "app.measure_2023",
      "app.measure_2024",
    ]);
    await dropSlotAndPublication(
      endpointOf(source),
      pair.db,
      "pgmigrate_no_slot",
      "pgmigrate_subset",
    );

    await run(`INSERT INTO app.kinds VALUES
      (4, 42, '0.00000000000000000001', '2024-06-01 12:34:56.000001+02', '{ "z" : [ ] ,"a":1 }', '{"z": [], "a": 1}',
       '\\xdeadbeef00', E'line\\nbreak\\ttab \\\\N', '{-2147483648,2147483647}', '{"",NULL,"NULL"}', 'Infinity',
       '2024-02-29', '-1 mons +2 days -00:00:00.000001', 'ffffffff-ffff-ffff-ffff-ffffffffffff', NULL)`);
    await run(`UPDATE app.kinds SET n = '-99999999999999999999.99999999999999999999',
      ts = '1999-12-31 23:59:59.000001-08', j = '{"a":1,"a":2}', jb = '{"a":1,"a":2}', f8 = 'NaN' WHERE id = 1`);
    await run("UPDATE app.kinds SET id = 100 WHERE id = 2"); // primary key change
    await run("DELETE FROM app.kinds WHERE id = 3");
    await run("UPDATE app.kinds SET flag = NOT coalesce(flag, false)"); // one statement, many rows
    // TOAST: row 1 keeps its 128 kB body (sent as "unchanged"), row 2's body changes.
    await run(`UPDATE "Other Schema"."Wide Row" SET counter = counter + 1 WHERE id = 1`);
    await run(
      `UPDATE "Other Schema"."Wide Row" SET body = body || 'tail 🐘', counter = 7 WHERE id = 2`,
    );
    await run(`INSERT INTO app.no_pk VALUES (1, '{"x":  1}', '(1,2)', 'dup')`);
    await run(
      "UPDATE app.no_pk SET note = 'changed' WHERE ctid = (SELECT ctid FROM app.no_pk WHERE note = 'dup' LIMIT 1)",
    );
    await run("DELETE FROM app.no_pk WHERE a = 2");
    await run("UPDATE app.no_pk SET p = '(5,5)' WHERE a = 3");
    await run(
      "UPDATE app.no_identity SET b = 'updated' WHERE a = 1; DELETE FROM app.no_identity WHERE a = 2",
    );
    await run(
      "INSERT INTO app.measure VALUES (1000, '2023-05-01', 1.5); UPDATE app.measure SET at = '2024-05-01' WHERE id = 1000",
    );
    await run("DELETE FROM app.parent WHERE id = 1"); // cascades to children on the source
    // Swap unique values inside one transaction: only source order avoids a conflict.
    await run(`BEGIN; UPDATE app.ident SET email = 'tmp' WHERE email = 'a@x'; UPDATE app.ident SET email = 'a@x' WHERE email = 'b@x';
               UPDATE app.ident SET email = 'b@x' WHERE email = 'tmp'; COMMIT`);
    await run("INSERT INTO app.ident (email, v) VALUES ('c@x', 3)");
    await run("TRUNCATE app.measure_2023, app.child RESTART IDENTITY");
    await run("INSERT INTO app.child VALUES (1, 2, 'after truncate')");
    await catchUp(source, pair, s);

    await assertSameRows(source, target, pair.db);
    const [body] = await target.query<{ len: number; counter: number }>(
      `SELECT length(body) AS len, counter FROM "Other Schema"."Wide Row" WHERE id = 1`,
      [],
      pair.db,
    );
    assert.deepEqual(body, { len: 128_000, counter: 1 });
    const stats = s.stats();
    assert.equal(stats.truncates, 1);
    assert.equal(await storedAppliedLsn(endpointOf(target), pair.db, pair.slot), stats.appliedLsn);
  });

  it("counts every change, and latency falls to 0 when the source is idle", async () => {
    pair = await preparePair(source, target);
    const seen: number[] = [];
    const s = await stream(source, target, pair, { onStats: (st) => seen.push(st.appliedChanges) });
    assert.equal(s.stats().appliedChanges, 0);
    await writeTransactions(source, pair.db, 0, 60);
    await source.query("TRUNCATE app.no_identity", [], pair.db);
    await catchUp(source, pair, s);
    let stats = s.stats();
    assert.deepEqual(
      {
        inserts: stats.inserts,
        updates: stats.updates,
        deletes: stats.deletes,
        truncates: stats.truncates,
      },
      { inserts: 120, updates: 60, deletes: 60, truncates: 1 },
    );
    assert.equal(stats.appliedChanges, 241);
    assert.equal(stats.incomingChanges, 241);
    await until(() => seen.length > 0, { what: "onStats to report (once a second)" });
    stats = await until(() => s.stats(), {
      what: "latency to fall to 0",
      accept: (st) => st.latencySeconds === 0,
    });
    assert.equal(stats.latencySeconds, 0);
    assert.ok(seen.length > 0, "onStats was called");
    await assertSameRows(source, target, pair.db);
  });

  it("applies each source transaction exactly once across lost connections and crashes", async () => {
    pair = await preparePair(source, target);
    const s1 = await stream(source, target, pair);
    // Writes flow while the walsender and the apply backend are killed, alone and together.
    const writes = writeTransactions(source, pair.db, 0, 150, 10);
    // Each kill once the stream has applied more since the last one (4 changes a transaction,
    // 600 in all: once all are applied, the kills still land on a live stream).
    const applied = (n: number) =>
      until(() => s1.stats().appliedChanges >= Math.min(n, 600), {
        what: `${n} changes applied`,
        intervalMs: 20,
      });
    await applied(40);
    assert.equal(await killWalsender(source, pair), 1);
    await applied(s1.stats().appliedChanges + 40);
    assert.equal(await killApplier(target, pair), 1);
    await applied(s1.stats().appliedChanges + 40);
    assert.deepEqual(
      await Promise.all([killWalsender(source, pair), killApplier(target, pair)]),
      [1, 1],
    );
    await writes;
    await catchUp(source, pair, s1);
    await assertSameRows(source, target, pair.db);
    const stats = s1.stats();
    assert.deepEqual(
      [stats.inserts, stats.updates, stats.deletes],
      [300, 150, 150],
      "no change applied twice",
    );

    // A crash: no retries, connections gone mid-stream without a clean stop.
    await s1.stop();
    const s2 = await stream(source, target, pair, { maxRetries: 0 });
    const more = writeTransactions(source, pair.db, 150, 100, 5);
    await until(() => s2.stats().appliedChanges > 0, {
      what: "the new stream to apply",
      intervalMs: 20,
    });
    await Promise.all([killWalsender(source, pair), killApplier(target, pair)]);
    await assert.rejects(
      s2.done,
      (err: unknown) => err instanceof MigrationError && err.phase === "replicate",
    );
    await more;
    const s3 = await stream(source, target, pair);
    await catchUp(source, pair, s3);
    await assertSameRows(source, target, pair.db);
  });

  it("waits out a source outage, reporting each reconnection, and gives up only after its window", async () => {
    pair = await preparePair(source, target);
    const attempts: number[] = [];
    const s1 = await stream(source, target, pair, { onRetry: (attempt) => attempts.push(attempt) });
    await writeTransactions(source, pair.db, 0, 20);
    await catchUp(source, pair, s1);
    // Down through several backoff steps (0.5 + 1 + 2 + 4 s): more than a quick restart.
    await source.restart({ downMs: 8_000 });
    await writeTransactions(source, pair.db, 20, 20);
    await catchUp(source, pair, s1);
    assert.ok(attempts.length >= 3, `reconnection attempts reported: ${attempts.join(",")}`);
    await assertSameRows(source, target, pair.db);
    assert.deepEqual(
      [s1.stats().inserts, s1.stats().updates, s1.stats().deletes],
      [80, 40, 40], // each transaction: 2 inserts, an update, a delete
      "no change lost or applied twice",
    );
    await s1.stop();

    // With a short window the same kind of outage fails the stream, saying why.
    const s2 = await stream(source, target, pair, { retryWindowMs: 1_500 });
    await source.restart({ downMs: 6_000 });
    await assert.rejects(
      s2.done,
      (err: unknown) =>
        err instanceof MigrationError &&
        err.phase === "replicate" &&
        /gave up after \d+ reconnection attempts/.test(err.message),
    );
  });

  it("skips transactions the target already has when the source sends them again", async () => {
    pair = await preparePair(source, target);
    // A second slot from the same point keeps the WAL the first one has acknowledged: it plays
    // the part of a slot whose acknowledgement was lost in a crash after the target commit.
    const replay = `${pair.slot}_replay`;
    const handle = await createSlotWithSnapshot(endpointOf(source), pair.db, replay);
    await handle.release();
    try {
      const first = await stream(source, target, pair);
      await writeTransactions(source, pair.db, 0, 40);
      await catchUp(source, pair, first);
      await first.stop();
      const stored = await storedAppliedLsn(endpointOf(target), pair.db, pair.slot);
      await target.query(
        "INSERT INTO pgmigrate_apply.progress SELECT $2, applied_lsn, applied_at FROM pgmigrate_apply.progress WHERE slot_name = $1",
        [pair.slot, replay],
        pair.db,
      );
      await writeTransactions(source, pair.db, 40, 10);
      const again = await stream(source, target, { ...pair, slot: replay });
      await catchUp(source, pair, again);
      // Only the 10 new transactions were applied; the 40 old ones (inserts!) were skipped.
      assert.deepEqual([again.stats().inserts, again.stats().deletes], [20, 10]);
      assert.notEqual(await storedAppliedLsn(endpointOf(target), pair.db, replay), stored);
      await again.stop();
      await assertSameRows(source, target, pair.db);
    } finally {
      await dropSlotAndPublication(endpointOf(source), pair.db, replay, pair.publication);
    }
  });

  it("applies a 200,000-row transaction without holding it in memory", async function () {
    pair = await preparePair(source, target, 200_000);
    const latencies: number[] = [];
    const s = await stream(source, target, pair, {
      onStats: (st) => st.latencySeconds !== null && latencies.push(st.latencySeconds),
    });
    global.gc?.();
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
    const started = Date.now();
    try {
      await source.query(
        "UPDATE app.big SET v = v + 1, pad = 'updated in one transaction'",
        [],
        pair.db,
      );
      await catchUp(source, pair, s);
    } finally {
      clearInterval(sampler);
    }
    const after = process.memoryUsage().rss;
    const mb = (n: number): string => (n / 1024 / 1024).toFixed(1) + " MB";
    console.log(
      `      200,000-row transaction: rss before ${mb(before)}, peak ${mb(peak)}, after ${mb(after)}, ` +
        `${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    assert.equal(s.stats().updates, 200_000);
    assert.ok(Math.max(...latencies) > 0, `latency while applying: ${latencies.join(", ")}`);
    assert.equal(s.stats().latencySeconds, 0);
    const [check] = await target.query<{ n: string }>(
      "SELECT count(*) AS n FROM app.big WHERE v = id + 1 AND pad = 'updated in one transaction'",
      [],
      pair.db,
    );
    assert.equal(Number(check.n), 200_000);
  });

  it("stops cleanly in the middle of a large transaction and resumes it", async () => {
    pair = await preparePair(source, target, 50_000);
    const s1 = await stream(source, target, pair);
    await source.query("UPDATE app.big SET pad = 'half way'", [], pair.db);
    await until(() => s1.stats().incomingChanges > 0, {
      what: "the large transaction to start arriving",
      intervalMs: 5,
    });
    const stopping = Date.now();
    await s1.stop();
    assert.ok(Date.now() - stopping < 5_000, "stop() does not hang on a paused stream");
    assert.equal(s1.stats().updates, 0, "the half-applied transaction was rolled back");
    const s2 = await stream(source, target, pair);
    await catchUp(source, pair, s2);
    assert.equal(s2.stats().updates, 50_000);
    await assertSameRows(source, target, pair.db, ["app.big"]);
  });

  it("fails with the SQLSTATE and table when the target rejects a change", async () => {
    pair = await preparePair(source, target);
    await target.query("INSERT INTO app.kinds (id) VALUES (5000)", [], pair.db);
    const s = await stream(source, target, pair);
    await source.query("INSERT INTO app.kinds (id, t) VALUES (5000, 'clash')", [], pair.db);
    await assert.rejects(s.done, (err: unknown) => {
      assert.ok(err instanceof MigrationError);
      assert.equal(err.phase, "replicate");
      assert.equal(err.code, "23505");
      assert.equal(err.pg.table, "kinds");
      return true;
    });
    // Nothing of the failed batch was acknowledged: the stored position is still the start.
    assert.equal(await storedAppliedLsn(endpointOf(target), pair.db, pair.slot), undefined);
    await assert.rejects(s.waitForLsn("FFFFFFFF/0"), MigrationError);
    await assert.rejects(
      stream(source, target, { ...pair, slot: "pgmigrate_no_such_slot" }),
      (err: unknown) => err instanceof MigrationError && err.code === "42704",
    );
  });
});
