// Net-change compaction: many source transactions applied as each table's net changes, set-based,
// must leave the target exactly as applying them one by one would — and fall back to exact source
// order whenever the fast path cannot be sure.
import assert from "node:assert/strict";
import { quoteLiteral } from "../../provider/pg/ident";
import type { ReplicationStream } from "../../provider/cdc";
import {
  assertSame,
  catchUp,
  cleanUp,
  prepareSchemaPair,
  stream,
  TOASTED,
  type Pair,
  type PairOptions,
} from "../support/cdc";
import { startPostgres, type PgServer } from "../support/postgres";
import { endpointOf } from "../support/spec";

const MIGRATION = "cdc-compaction";
/** A target role that owns the tables but is no superuser: no session_replication_role. */
const OWNER = "compaction_owner";

describe("net-change compaction of the change stream (PostgreSQL 15 → 15)", function () {
  let source: PgServer;
  let target: PgServer;
  let pair: Pair | undefined;

  before(async () => {
    [source, target] = await Promise.all([
      startPostgres({ version: 15 }),
      startPostgres({ version: 15 }),
    ]);
    await target.query(`CREATE ROLE ${OWNER} LOGIN PASSWORD ${quoteLiteral(target.password)}`);
  });
  after(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });
  afterEach(async () => {
    if (pair) await cleanUp(source, pair);
    pair = undefined;
  });

  async function prepare(schema: string, options: PairOptions = {}): Promise<Pair> {
    pair = await prepareSchemaPair(source, target, MIGRATION, schema, options);
    return pair;
  }
  const run = (sql: string): Promise<unknown> => source.query(sql, [], pair!.db);
  async function settle(s: ReplicationStream): Promise<void> {
    await catchUp(source, pair!, s, 30_000);
    await assertSame(source, target, pair!.db);
  }

  it("folds insert → update → delete of one key, re-inserts and moved keys into net changes", async () => {
    await prepare(
      `CREATE SCHEMA c;
       CREATE TABLE c.t (id int PRIMARY KEY, v int, note text);
       CREATE TABLE c.log (id bigserial PRIMARY KEY, what text);
       INSERT INTO c.t SELECT g, g, 'seed' FROM generate_series(1, 200) AS g;`,
    );
    const s = await stream(source, target, pair!);
    await run(`BEGIN;
      INSERT INTO c.t SELECT g, 0, 'new' FROM generate_series(1001, 1100) AS g;
      UPDATE c.t SET v = v + 1 WHERE id > 1000;
      UPDATE c.t SET v = v + 1, note = 'twice' WHERE id > 1050;
      DELETE FROM c.t WHERE id > 1000 AND id % 3 = 0;
      DELETE FROM c.t WHERE id <= 20;
      INSERT INTO c.t VALUES (5, 55, 'back'), (7, 77, 'back');
      UPDATE c.t SET v = -v WHERE id BETWEEN 21 AND 120;
      INSERT INTO c.log (what) SELECT 'row ' || g FROM generate_series(1, 300) AS g;
      COMMIT`);
    // Many small transactions touching the same keys again.
    for (let k = 0; k < 20; k++) {
      await run(`UPDATE c.t SET v = v + ${k} WHERE id BETWEEN 100 AND 110;
                 INSERT INTO c.log (what) VALUES ('txn ${k}')`);
    }
    await settle(s);
    const { paths } = s.stats();
    assert.ok(paths.setBased >= 1, `set-based chunks: ${JSON.stringify(paths)}`);
    assert.equal(paths.replayed, 0);
  });

  it("swaps and moves keys, with and without every value of the row", async () => {
    await prepare(
      `CREATE SCHEMA k;
       CREATE TABLE k.t (id int PRIMARY KEY, v int);
       CREATE TABLE k.wide (id int PRIMARY KEY, body text, v int);
       ALTER TABLE k.wide ALTER COLUMN body SET STORAGE EXTERNAL;
       INSERT INTO k.t SELECT g, g * 10 FROM generate_series(1, 50) AS g;
       INSERT INTO k.wide SELECT g, ${TOASTED("g::text")}, g FROM generate_series(1, 5) AS g;`,
    );
    const s = await stream(source, target, pair!);
    await run(`BEGIN;
      UPDATE k.t SET id = 0 WHERE id = 1; UPDATE k.t SET id = 1 WHERE id = 2;
      UPDATE k.t SET id = 2 WHERE id = 0;
      UPDATE k.t SET id = -id WHERE id BETWEEN 10 AND 20;
      UPDATE k.t SET id = 100 + id, v = v + 1 WHERE id BETWEEN -20 AND -10;
      DELETE FROM k.t WHERE id = 30; UPDATE k.t SET id = 30 WHERE id = 31;
      INSERT INTO k.t VALUES (31, -31);
      UPDATE k.wide SET id = 10 WHERE id = 1;
      UPDATE k.wide SET v = 0 WHERE id = 10;
      UPDATE k.wide SET id = 1 WHERE id = 2;
      COMMIT`);
    await settle(s);
    assert.equal(s.stats().paths.replayed, 0);
  });

  it("keeps unchanged TOAST values across merged updates", async () => {
    await prepare(
      `CREATE SCHEMA u;
       CREATE TABLE u.doc (id int PRIMARY KEY, body text, v int, tag text);
       ALTER TABLE u.doc ALTER COLUMN body SET STORAGE EXTERNAL;
       INSERT INTO u.doc SELECT g, ${TOASTED("g::text")}, g, 't' FROM generate_series(1, 20) AS g;`,
    );
    const s = await stream(source, target, pair!);
    await run(`BEGIN;
      UPDATE u.doc SET v = v + 1 WHERE id <= 10;
      UPDATE u.doc SET body = ${TOASTED("'new' || id")} WHERE id BETWEEN 6 AND 10;
      UPDATE u.doc SET tag = 'x' WHERE id <= 10;
      UPDATE u.doc SET v = v + 1 WHERE id BETWEEN 11 AND 15;
      UPDATE u.doc SET tag = NULL WHERE id BETWEEN 11 AND 15;
      INSERT INTO u.doc VALUES (21, ${TOASTED("'ins'")}, 21, 'i');
      UPDATE u.doc SET v = 0 WHERE id = 21;
      COMMIT`);
    await settle(s);
    assert.ok(s.stats().paths.setBased >= 1);
    const lengths = await target.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM u.doc WHERE length(body) > 5000",
      [],
      pair!.db,
    );
    assert.equal(lengths[0].n, 21, "no TOASTed value lost");
  });

  it("applies identity FULL tables with duplicate rows, and truncates between changes, in order", async () => {
    await prepare(
      `CREATE SCHEMA f;
       CREATE TABLE f.dup (n int, v text);
       ALTER TABLE f.dup REPLICA IDENTITY FULL;
       CREATE TABLE f.t (id int PRIMARY KEY, v int);
       INSERT INTO f.dup SELECT g % 3, 'same' FROM generate_series(1, 9) AS g;
       INSERT INTO f.t SELECT g, g FROM generate_series(1, 30) AS g;`,
    );
    const s = await stream(source, target, pair!);
    await run(`BEGIN;
      INSERT INTO f.dup VALUES (1, 'same'), (1, 'same'), (7, 'seven');
      DELETE FROM f.dup WHERE ctid = (SELECT ctid FROM f.dup WHERE n = 1 LIMIT 1);
      UPDATE f.dup SET v = 'changed' WHERE ctid = (SELECT ctid FROM f.dup WHERE n = 2 LIMIT 1);
      INSERT INTO f.dup VALUES (8, 'eight');
      UPDATE f.t SET v = v * 2 WHERE id <= 10;
      INSERT INTO f.t VALUES (100, 1);
      TRUNCATE f.t;
      INSERT INTO f.t SELECT g, -g FROM generate_series(1, 5) AS g;
      UPDATE f.t SET v = 0 WHERE id = 1;
      COMMIT`);
    await settle(s);
    assert.equal(s.stats().paths.replayed, 0);
    assert.equal(s.stats().truncates, 1);
  });

  /** Parent → child → grandchild; deletes and inserts across the chain in one transaction. */
  async function foreignKeyChain(targetOwner?: string): Promise<ReplicationStream> {
    await prepare(
      `CREATE SCHEMA fk;
       CREATE TABLE fk.parent (id int PRIMARY KEY, v text);
       CREATE TABLE fk.child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES fk.parent, v text);
       CREATE TABLE fk.grandchild (id int PRIMARY KEY, child_id int REFERENCES fk.child ON DELETE CASCADE);
       INSERT INTO fk.parent SELECT g, 'p' FROM generate_series(1, 10) AS g;
       INSERT INTO fk.child SELECT g, g, 'c' FROM generate_series(1, 10) AS g;
       INSERT INTO fk.grandchild SELECT g, g FROM generate_series(1, 10) AS g;`,
      { targetOwner },
    );
    const s = await stream(source, target, pair!, {
      target: targetOwner ? { ...endpointOf(target), username: targetOwner } : endpointOf(target),
    });
    await run(`BEGIN;
      INSERT INTO fk.parent VALUES (11, 'new');
      INSERT INTO fk.child VALUES (11, 11, 'new');
      INSERT INTO fk.grandchild VALUES (11, 11);
      DELETE FROM fk.child WHERE id = 3;
      DELETE FROM fk.parent WHERE id = 3;
      UPDATE fk.child SET parent_id = 11 WHERE id = 4;
      DELETE FROM fk.parent WHERE id = 4;
      INSERT INTO fk.parent VALUES (4, 'again');
      INSERT INTO fk.child VALUES (12, 4, 'to the new 4');
      INSERT INTO fk.parent SELECT g, 'more' FROM generate_series(100, 130) AS g;
      INSERT INTO fk.child SELECT g, g, 'more' FROM generate_series(100, 130) AS g;
      COMMIT`);
    await settle(s);
    return s;
  }

  it("reorders foreign key chains freely under the replica role", async () => {
    const s = await foreignKeyChain();
    assert.ok(s.stats().paths.setBased >= 1, JSON.stringify(s.stats().paths));
    assert.equal(s.stats().paths.replayed, 0);
  });

  it("applies them in source order as a non-superuser owner, where foreign keys are checked", async () => {
    const s = await foreignKeyChain(OWNER);
    const { paths } = s.stats();
    assert.equal(paths.setBased, 0, JSON.stringify(paths));
    assert.ok(paths.ordered >= 1);
  });

  it("replays in source order when a non-key unique value moves round a cycle", async () => {
    await prepare(
      `CREATE SCHEMA q;
       CREATE TABLE q.account (id int PRIMARY KEY, email text NOT NULL UNIQUE, v int);
       INSERT INTO q.account SELECT g, 'user' || g, 0 FROM generate_series(1, 40) AS g;`,
    );
    const s = await stream(source, target, pair!);
    // Every email moves to the next account: whichever row a set-based UPDATE writes first,
    // its new value is still held by another row.
    await run(`BEGIN;
      UPDATE q.account SET email = 'tmp' || id;
      UPDATE q.account SET email = 'user' || (id % 40 + 1), v = v + 1;
      COMMIT`);
    await settle(s);
    assert.ok(s.stats().paths.replayed >= 1, JSON.stringify(s.stats().paths));
  });

  it("never brings back a row the target lacks when a moved key is replayed", async () => {
    await prepare(
      `CREATE SCHEMA m;
       CREATE TABLE m.t (id int PRIMARY KEY, v int);
       INSERT INTO m.t SELECT g, g FROM generate_series(1, 10) AS g;`,
    );
    // The target diverged before this batch: row 5 is gone there.
    await target.query("DELETE FROM m.t WHERE id = 5", [], pair!.db);
    const s = await stream(source, target, pair!);
    // Enough changes in the chunk for the set-based path (a handful go in order anyway).
    await run(`BEGIN; UPDATE m.t SET id = 500 WHERE id = 5; UPDATE m.t SET v = 0 WHERE id = 6;
               INSERT INTO m.t SELECT g, g FROM generate_series(100, 130) AS g; COMMIT`);
    await catchUp(source, pair!, s, 30_000);
    const rows = await target.query<{ id: number; v: number }>(
      "SELECT id, v FROM m.t WHERE id IN (5, 6, 500) ORDER BY id",
      [],
      pair!.db,
    );
    // In source order the UPDATE of 5 finds no row: 500 does not appear from nothing.
    assert.deepEqual(rows, [{ id: 6, v: 0 }]);
    assert.ok(s.stats().paths.replayed >= 1, JSON.stringify(s.stats().paths));
  });

  it("carries arrays, domains, enums, composites and a table of 120 columns set-based", async () => {
    const wide = Array.from({ length: 119 }, (_, i) => `c${i} int`).join(", ");
    await prepare(
      `CREATE SCHEMA v;
       CREATE TYPE v.mood AS ENUM ('sad', 'ok', 'happy');
       CREATE TYPE v.pair AS (a int, b text);
       CREATE DOMAIN v.short AS varchar(8) CHECK (VALUE <> 'bad');
       CREATE DOMAIN v.posint AS int CHECK (VALUE > 0);
       CREATE TABLE v.t (id int PRIMARY KEY, tags text[], grid int[][], m v.mood, p v.pair,
                         s v.short, n v.posint, r int4range, ts timestamptz, j jsonb, c char(5),
                         moods v.mood[], pairs v.pair[]);
       CREATE TABLE v.wide (id int PRIMARY KEY, ${wide});`,
    );
    const s = await stream(source, target, pair!);
    const cols = Array.from({ length: 119 }, (_, i) => `c${i}`).join(", ");
    const vals = Array.from({ length: 119 }, (_, i) => `g + ${i}`).join(", ");
    await run(`BEGIN;
      INSERT INTO v.t SELECT g, ARRAY['a"b', 'c\\d', NULL, 'NULL', ' x ', '{}'], ARRAY[[g, 2], [3, NULL]],
        'ok', ROW(g, 'x,"y"')::v.pair, 'v' || g, g, int4range(g, g + 10),
        '2024-01-01 12:00+02'::timestamptz + g * interval '1 hour', jsonb_build_object('k', g, 's', 'é'),
        'ab', ARRAY['sad', 'happy']::v.mood[], ARRAY[ROW(1, 'q'), ROW(NULL, NULL)]::v.pair[]
        FROM generate_series(1, 50) AS g;
      UPDATE v.t SET tags = tags || ARRAY['more'], grid = NULL, m = 'happy' WHERE id % 2 = 0;
      UPDATE v.t SET p = ROW(NULL, ''), s = 'short', c = 'x' WHERE id % 5 = 0;
      INSERT INTO v.wide (id, ${cols}) SELECT g, ${vals} FROM generate_series(1, 30) AS g;
      UPDATE v.wide SET c100 = -1, c5 = NULL WHERE id <= 10;
      DELETE FROM v.wide WHERE id > 25;
      COMMIT`);
    await settle(s);
    assert.ok(s.stats().paths.setBased >= 1, JSON.stringify(s.stats().paths));
    assert.equal(s.stats().paths.replayed, 0);
  });
});
