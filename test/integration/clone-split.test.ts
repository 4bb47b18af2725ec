// Same-table parallelism (issue 13): a table over `parallelism.splitTablesLargerThan` is copied
// as block ranges by several workers under the clone's one snapshot. One range is held mid-copy
// deterministically (the table's CHECK constraint takes, at one row, a shared advisory lock the
// test holds on the target) while the other ranges commit, and the source changes meanwhile.
// Offline the changes are absent; a worker killed there restarts from a new snapshot and holds
// exactly that one; online they arrive through replication. Whole tables are loaded with COPY
// FREEZE, and without it when the target refuses the TRUNCATE that FREEZE needs. PG 15 → 15
// (ctid ranges need a 14+ source; pg_visibility comes with Debian's PostgreSQL 15), and 13 → 15
// (ranges of the integer primary key).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Client } from "pg";
import { createMigration, isEnded, isSettled } from "../../provider/api/index";
import { exportSnapshot } from "../../provider/clone";
import { copyTables } from "../../provider/clone/copy";
import type { TableToCopy } from "../../provider/clone/tables";
import type { MigrationOutputs, MigrationSpec, ProgressSink } from "../../provider/spec/types";
import { checksumDatabase, compareDatabases } from "../support/checksum";
import { assertStreaming, count, cutOverSpawned, localRun, onlineSpec } from "../support/online";
import { startPostgres, type PgServer } from "../support/postgres";
import { specOf } from "../support/spec";
import { until } from "../support/wait";
import { killWorkers, processGone, workerPids } from "../support/workers";

const ROWS = 30_000;
const SMALL_ROWS = 1_000;
/** Split too (≈ 350 kB), and complete while public.big is held. */
const MID_ROWS = 3_000;
/** Early in the heap: its range stalls while the later ranges are copied and committed. */
const STALL_AT_ROW = 300;
const LOCK_KEY = 515_151;
const THRESHOLD = 128 * 1024;

const SCHEMA = `
  CREATE FUNCTION public.stall_at(id int) RETURNS boolean LANGUAGE plpgsql AS $$
  BEGIN
    IF id = ${STALL_AT_ROW} THEN PERFORM pg_advisory_xact_lock_shared(${LOCK_KEY}); END IF;
    RETURN true;
  END $$;
  CREATE TABLE public.big (
    id int PRIMARY KEY CHECK (public.stall_at(id)),
    payload text NOT NULL,
    note text);
  INSERT INTO public.big
  SELECT i, repeat(md5(i::text), 2),
         CASE WHEN i % 500 = 0 THEN E'tab\\there\\nnewline' WHEN i % 7 = 0 THEN NULL ELSE 'n' || i END
    FROM generate_series(1, ${ROWS}) i;
  CREATE TABLE public.mid (id int PRIMARY KEY, label text NOT NULL);
  INSERT INTO public.mid SELECT i, repeat(md5(i::text), 2) FROM generate_series(1, ${MID_ROWS}) i;
  CREATE TABLE public.small (id int PRIMARY KEY, name text);
  INSERT INTO public.small SELECT i, 'small ' || i FROM generate_series(1, ${SMALL_ROWS}) i;
  ANALYZE;`;

/** Committed on the source after the copy's snapshot, in ranges already copied and not yet. */
const CHANGES = `
  UPDATE public.big SET payload = 'changed after the snapshot' WHERE id % 97 = 5;
  DELETE FROM public.big WHERE id % 89 = 3;
  INSERT INTO public.big SELECT i, 'inserted after the snapshot', NULL
    FROM generate_series(${ROWS + 1}, ${ROWS + 500}) i;
  UPDATE public.small SET name = 'changed' WHERE id % 10 = 0;`;

const BIG = "SELECT count(*) AS n FROM public.big";
const BIG_INDEXES =
  "SELECT count(*) AS n FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'big'";

/** Every index definition of the public schema. */
async function indexes(server: PgServer, database: string): Promise<string[]> {
  const rows = await server.query<{ indexdef: string }>(
    "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexdef",
    [],
    database,
  );
  return rows.map((r) => r.indexdef);
}

describe("clone: large tables copied in block ranges under one snapshot", function () {
  const suffix = randomBytes(3).toString("hex");
  const names: string[] = [];
  let source: PgServer;
  let target: PgServer;
  let dir: string;
  let holder: Client | undefined;

  before(async () => {
    [source, target] = await Promise.all([startPostgres(), startPostgres()]);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-split-"));
  });

  after(async () => {
    killWorkers(names);
    await holder?.end().catch(() => undefined);
    await Promise.all([source?.stop(), target?.stop()]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** The source database, and an empty target one the test can hold a lock in. */
  async function prepare(database: string): Promise<void> {
    await source.query(`CREATE DATABASE ${database}`);
    await source.query(SCHEMA, [], database);
    await target.query(`CREATE DATABASE ${database}`);
  }

  /** A spec splitting tables over THRESHOLD, 4 workers. */
  function splitSpec(database: string, online: boolean): MigrationSpec {
    const migrationName = `split-${database.replace(/_/g, "-")}-${suffix}`;
    names.push(migrationName);
    const parallelism = { tables: 4, splitTablesLargerThan: THRESHOLD };
    return online
      ? onlineSpec(source, target, migrationName, [database], { parallelism })
      : specOf(source, target, { migrationName, databases: [database], parallelism });
  }

  /** Holds the copy of the range holding STALL_AT_ROW until release(). */
  async function hold(database: string): Promise<void> {
    holder = await target.connect(database);
    await holder.query("SELECT pg_advisory_lock($1)", [LOCK_KEY]);
  }

  async function release(): Promise<void> {
    await holder?.query("SELECT pg_advisory_unlock($1)", [LOCK_KEY]);
    await holder?.end();
    holder = undefined;
  }

  /**
   * Waits until one COPY waits at the lock while other ranges of the same table committed
   * around it: at least half the rows are visible on the target.
   */
  async function heldWithOthersCommitted(database: string): Promise<void> {
    await until(
      async () => {
        const [row] = await target.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' AND query LIKE 'COPY %'",
          [database],
        );
        return row.n === 1;
      },
      { what: "a COPY held at the lock", timeoutMs: 60_000 },
    );
    await until(() => count(target, database, BIG), {
      what: "the other ranges of public.big committed while one is held",
      accept: (n) => n >= ROWS / 2 && n < ROWS,
      timeoutMs: 60_000,
    });
  }

  /** Progress checks at every poll; `seen` keeps the history for messages. */
  function progressChecker(database: string): (o: MigrationOutputs) => void {
    const seen: string[] = [];
    return (o) => {
      const d = o.dbDetails[database];
      if (!d) return;
      seen.push(`${d.fullLoadPercent}% ${d.fullLoadBytesCopied}/${d.fullLoadTotalBytes}`);
      assert.ok(d.fullLoadPercent === null || d.fullLoadPercent <= 100, seen.join(", "));
      assert.ok(d.fullLoadBytesCopied <= d.fullLoadTotalBytes, seen.join(", "));
      const done = d.fullLoadQueuedTables + d.fullLoadLoadingTables + d.fullLoadErroredTables === 0;
      if (!done) assert.ok((d.fullLoadPercent ?? 0) < 100, `not done: ${seen.join(", ")}`);
    };
  }

  function rangesOf(outputs: MigrationOutputs): number {
    const event = outputs.events.find((e) => /large table\(s\) in ranges/.test(e.message));
    const match = event && /public\.big \((\d+) ranges\)/.exec(event.message);
    assert.ok(match, `an event naming the ranges: ${JSON.stringify(outputs.events)}`);
    return Number(match[1]);
  }

  /** Pages of `table` on the target and how many of them are all-frozen (COPY FREEZE). */
  async function frozen(
    database: string,
    table: string,
  ): Promise<{ pages: number; frozen: number }> {
    await target.query("CREATE EXTENSION IF NOT EXISTS pg_visibility", [], database);
    const [row] = await target.query<{ pages: number; frozen: number }>(
      `SELECT (pg_relation_size($1::regclass) / current_setting('block_size')::int)::int AS pages,
              (SELECT all_frozen FROM pg_visibility_map_summary($1::regclass))::int AS frozen`,
      [table],
      database,
    );
    return row;
  }

  it("offline: ranges commit in parallel, rows changed after the snapshot stay out, progress ends at exactly 100 %, whole tables frozen", async () => {
    const database = "split_off";
    await prepare(database);
    const atSnapshot = await checksumDatabase(source, database);
    await hold(database);
    const spec = splitSpec(database, false);
    const { runtime, wait } = localRun(spec, path.join(dir, "logs"));
    await createMigration(spec, runtime);
    const check = progressChecker(database);

    await heldWithOthersCommitted(database);
    // public.mid is complete: its primary key is built and it is analyzed while a range of
    // public.big is still copying (and public.big has no index yet).
    await until(
      async () => {
        const [r] = await target.query<{ indexed: boolean; analyzed: boolean }>(
          `SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE indexname = 'mid_pkey') AS indexed,
                  (SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'mid') AS analyzed`,
          [],
          database,
        );
        return r.indexed && r.analyzed;
      },
      { what: "public.mid indexed and analyzed while public.big copies", timeoutMs: 30_000 },
    );
    assert.equal(await count(target, database, BIG_INDEXES), 0);
    await source.query(CHANGES, [], database);
    await release();
    const end = await wait((o) => {
      check(o);
      return isEnded(o.state);
    });
    assert.deepEqual(await indexes(target, database), await indexes(source, database));
    assert.equal(end.state, "Succeeded", end.error ?? "");
    assert.ok(rangesOf(end) >= 4, `ranges: ${rangesOf(end)}`);

    const copied = await checksumDatabase(target, database);
    assert.deepEqual([...copied.entries()], [...atSnapshot.entries()]);
    assert.equal(await count(target, database, BIG), ROWS);
    const d = end.dbDetails[database];
    assert.equal(d.fullLoadPercent, 100);
    assert.equal(d.fullLoadRowsCopied, ROWS + MID_ROWS + SMALL_ROWS);
    assert.equal(d.fullLoadBytesCopied, d.fullLoadTotalBytes);

    // Loaded whole with FREEZE: every page all-frozen without a VACUUM. The ranges of the split
    // table are plain COPYs (concurrent transactions cannot each truncate the table).
    const small = await frozen(database, "public.small");
    assert.ok(small.pages > 0 && small.frozen === small.pages, JSON.stringify(small));
    const big = await frozen(database, "public.big");
    assert.equal(big.frozen, 0, JSON.stringify(big));
  });

  it("offline: a worker killed mid-range is succeeded by a copy from a new snapshot, exact", async () => {
    const database = "split_kill";
    await prepare(database);
    await hold(database);
    const spec = splitSpec(database, false);
    const { runtime, wait } = localRun(spec, path.join(dir, "logs"));
    await createMigration(spec, runtime);

    await heldWithOthersCommitted(database);
    // Rows of ranges committed under the first snapshot change: a copy mixing the committed
    // ranges with a new snapshot's would keep their old values and deleted rows.
    await source.query(CHANGES, [], database);
    const now = await checksumDatabase(source, database);
    const pids = workerPids(spec.migrationName);
    assert.equal(pids.length, 1, `one worker: ${pids.join(", ")}`);
    process.kill(pids[0], "SIGKILL");
    await processGone(pids[0], "the killed worker to exit");
    // The successor re-creates the target database: the lock's session must be gone.
    await release();

    const end = await wait((o) => isEnded(o.state));
    assert.equal(end.state, "Succeeded", end.error ?? "");
    assert.ok(
      end.events.some((e) => /starting it again from a new snapshot/.test(e.message)),
      JSON.stringify(end.events),
    );
    const copied = await checksumDatabase(target, database);
    assert.deepEqual([...copied.entries()], [...now.entries()]);
    assert.equal(end.dbDetails[database].fullLoadPercent, 100);
  });

  it("online: a split table's rows changed during the copy and after it are replicated; cutover exact", async () => {
    const database = "split_on";
    await prepare(database);
    await hold(database);
    const spec = splitSpec(database, true);
    const { runtime, wait } = localRun(spec, path.join(dir, "logs"));
    await createMigration(spec, runtime);
    const check = progressChecker(database);

    await heldWithOthersCommitted(database);
    await source.query(CHANGES, [], database);
    await release();
    const settled = await wait((o) => {
      check(o);
      return isSettled(o);
    });
    assertStreaming(settled);
    assert.ok(rangesOf(settled) >= 4);
    assert.equal(settled.dbDetails[database].fullLoadPercent, 100);
    assert.equal(settled.dbDetails[database].fullLoadRowsCopied, ROWS + MID_ROWS + SMALL_ROWS);

    await source.query(
      `UPDATE public.big SET note = 'after the copy' WHERE id % 50 = 1;
       DELETE FROM public.big WHERE id % 61 = 2;
       INSERT INTO public.big SELECT i, 'streamed', 'x' FROM generate_series(${ROWS + 501}, ${ROWS + 700}) i;`,
      [],
      database,
    );
    const end = await cutOverSpawned(spec, wait);
    assert.equal(end.state, "Succeeded", end.error ?? "");
    const cmp = await compareDatabases(source, database, target, database);
    assert.deepEqual(cmp.differences, []);
    assert.deepEqual(await indexes(target, database), await indexes(source, database));
    const [sourceCount, targetCount] = await Promise.all([
      count(source, database, BIG),
      count(target, database, BIG),
    ]);
    assert.equal(targetCount, sourceCount);
  });

  it("from a PostgreSQL 13 source: splits by the integer primary key, copies a table without one whole", async () => {
    const old = await startPostgres({ version: 13 });
    try {
      const database = "split_13";
      await old.query(`CREATE DATABASE ${database}`);
      await old.query(
        `${SCHEMA}
         CREATE TABLE public.texty (code text PRIMARY KEY, payload text NOT NULL);
         INSERT INTO public.texty SELECT 'k' || i, repeat(md5(i::text), 2) FROM generate_series(1, 5000) i;
         ANALYZE;`,
        [],
        database,
      );
      const migrationName = `split-13-${suffix}`;
      names.push(migrationName);
      const spec = specOf(old, target, {
        migrationName,
        databases: [database],
        parallelism: { tables: 4, splitTablesLargerThan: THRESHOLD },
      });
      const { runtime, wait } = localRun(spec, path.join(dir, "logs"));
      await createMigration(spec, runtime);
      const end = await wait((o) => isEnded(o.state));
      assert.equal(end.state, "Succeeded", end.error ?? "");
      const event = end.events.find((e) => /large table\(s\) in ranges/.test(e.message));
      const match = event && /public\.big \((\d+) ranges by id\)/.exec(event.message);
      assert.ok(match && Number(match[1]) >= 4, JSON.stringify(end.events));
      assert.ok(event && !event.message.includes("texty"), event?.message);
      const cmp = await compareDatabases(old, database, target, database);
      assert.deepEqual(cmp.differences, []);
      assert.equal(end.dbDetails[database].fullLoadPercent, 100);
      assert.equal(end.dbDetails[database].fullLoadRowsCopied, ROWS + MID_ROWS + SMALL_ROWS + 5000);
    } finally {
      await old.stop();
    }
  });

  it("fails naming the table when an index built during the copy fails", async () => {
    const database = "split_index_fails";
    await source.query(`CREATE DATABASE ${database}`);
    // The index expression works where app.origin is set: on the source (a database setting),
    // not on the target while the copy runs (database settings are copied at the end).
    await source.query(`ALTER DATABASE ${database} SET app.origin = 'source'`);
    await source.query(
      `CREATE FUNCTION public.checked(id int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$
       BEGIN
         IF current_setting('app.origin', true) IS DISTINCT FROM 'source' THEN
           RAISE EXCEPTION 'index expression evaluated off the source';
         END IF;
         RETURN id;
       END $$;
       CREATE TABLE public.indexed (id int PRIMARY KEY, payload text NOT NULL);
       INSERT INTO public.indexed SELECT i, repeat(md5(i::text), 2) FROM generate_series(1, 5000) i;
       CREATE INDEX indexed_checked ON public.indexed (public.checked(id));`,
      [],
      database,
    );
    const migrationName = `split-index-${suffix}`;
    names.push(migrationName);
    const spec = specOf(source, target, {
      migrationName,
      databases: [database],
      parallelism: { tables: 4, splitTablesLargerThan: THRESHOLD },
    });
    const { runtime, wait } = localRun(spec, path.join(dir, "logs"));
    await createMigration(spec, runtime);
    const end = await wait((o) => isEnded(o.state));
    assert.equal(end.state, "Failed");
    assert.match(
      end.error ?? "",
      /indexes of table public\.indexed.*index expression evaluated off the source/s,
    );
  });

  it("copies a table whose TRUNCATE the target refuses without FREEZE, the others with it", async () => {
    const database = "freeze_fallback";
    await source.query(`CREATE DATABASE ${database}`);
    const tables = `
      CREATE TABLE public.parent (id int PRIMARY KEY, name text);
      CREATE TABLE public.child (id int PRIMARY KEY, parent_id int);`;
    await source.query(
      `${tables}
       INSERT INTO public.parent SELECT i, 'parent ' || i FROM generate_series(1, 2000) i;
       INSERT INTO public.child SELECT i, NULL FROM generate_series(1, 2000) i;`,
      [],
      database,
    );
    // A foreign key already on the target: PostgreSQL refuses to TRUNCATE a referenced table.
    await target.query(`CREATE DATABASE ${database}`);
    await target.query(
      `${tables} ALTER TABLE public.child ADD FOREIGN KEY (parent_id) REFERENCES public.parent`,
      [],
      database,
    );
    const spec = specOf(source, target, {
      migrationName: `fallback-${suffix}`,
      databases: [database],
    });
    const states: string[] = [];
    const progress: ProgressSink = {
      event: async () => undefined,
      tablesQueued: async () => undefined,
      tableState: async (_db, table, state) => {
        states.push(`${table.name} ${state}`);
      },
    } as ProgressSink;
    const table = (name: string): TableToCopy => ({
      schema: "public",
      name,
      columns: name === "parent" ? ["id", "name"] : ["id", "parent_id"],
      estimatedBytes: 0,
      estimatedRows: 0,
      pages: 1,
      heapBytes: 8192,
    });
    const held = await exportSnapshot(spec.source, database);
    try {
      const copied = await copyTables(
        { spec, database, snapshot: held.snapshot, encoding: "UTF8", progress },
        [{ table: table("parent") }, { table: table("child") }],
      );
      assert.deepEqual(copied.map((t) => [t.name, t.rows]).sort(), [
        ["child", 2000],
        ["parent", 2000],
      ]);
    } finally {
      await held.release();
    }
    assert.ok(
      states.includes("parent completed") && states.includes("child completed"),
      states.join(),
    );
    const cmp = await compareDatabases(source, database, target, database);
    assert.deepEqual(cmp.differences, []);
    const parent = await frozen(database, "public.parent");
    assert.ok(parent.pages > 0 && parent.frozen === 0, JSON.stringify(parent));
    const child = await frozen(database, "public.child");
    assert.ok(child.pages > 0 && child.frozen === child.pages, JSON.stringify(child));
  });
});
