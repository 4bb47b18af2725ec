// Verification on real servers: counts and checksums agree after a clone, a one-row difference
// is found and named, and a table the source is still writing is skipped, not called a mismatch.
import assert from "node:assert/strict";
import { cloneDatabase, exportSnapshot, prepareTargetDatabase } from "../../provider/clone";
import type { MigrationSpec, ProgressSink } from "../../provider/spec/types";
import { summarizeVerification, verifyAtSnapshot, verifyDatabase } from "../../provider/verify";
import { FIXTURE_TABLES, loadFixture } from "../support/fixture";
import { startPostgres, type PgServer } from "../support/postgres";
import { specOf } from "../support/spec";
import { pause, until } from "../support/wait";

const quiet: ProgressSink = {
  event: async () => undefined,
  tablesQueued: async () => undefined,
  tableState: async () => undefined,
};

function specFor(source: PgServer, target: PgServer, database: string): MigrationSpec {
  return specOf(source, target, { databases: [database] }, "verify-test");
}

async function migrate(
  source: PgServer,
  target: PgServer,
  database: string,
): Promise<MigrationSpec> {
  const spec = specFor(source, target, database);
  await prepareTargetDatabase(spec, database);
  await cloneDatabase({ spec, database, progress: quiet });
  return spec;
}

describe("verification", function () {
  let source: PgServer;
  let target: PgServer;

  before(async () => {
    [source, target] = await Promise.all([
      startPostgres({ version: 15 }),
      startPostgres({ version: 15 }),
    ]);
  });
  after(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  describe("of the fixture", () => {
    let spec: MigrationSpec;
    before(async () => {
      await loadFixture(source, "shop", { rows: 500 });
      spec = await migrate(source, target, "shop");
    });

    it("matches every table by counts and by checksum after a clone", async () => {
      const expected = FIXTURE_TABLES.map((t) => `${t.schema}.${t.name}`).sort();
      for (const mode of ["counts", "checksum"] as const) {
        const tables = await verifyDatabase(spec, "shop", mode);
        assert.deepEqual(tables.map((t) => t.table).sort(), expected, mode);
        assert.deepEqual(
          tables.filter((t) => !t.match),
          [],
          mode,
        );
        for (const t of tables) assert.equal(t.sourceRows, t.targetRows);
        assert.equal(summarizeVerification(tables).status, "Succeeded");
      }
    });

    it("finds one changed value (checksum) and one missing row (counts), naming the tables", async () => {
      await target.query("UPDATE public.type_zoo SET txt = txt || '!' WHERE id = 2", [], "shop");
      const counts = await verifyDatabase(spec, "shop", "counts");
      assert.deepEqual(
        counts.filter((t) => !t.match),
        [],
        "a changed value keeps the counts equal",
      );
      const checksum = await verifyDatabase(spec, "shop", "checksum");
      assert.deepEqual(
        checksum
          .filter((t) => !t.match)
          .map((t) => [t.table, t.sourceRows === t.targetRows, t.skippedReason]),
        [["public.type_zoo", true, undefined]],
      );

      await target.query(
        `DELETE FROM public."Customer Notes" WHERE note_id = (SELECT min(note_id) FROM public."Customer Notes")`,
        [],
        "shop",
      );
      const after = await verifyDatabase(spec, "shop", "counts");
      const mismatches = after.filter((t) => !t.match);
      assert.equal(mismatches.length, 1);
      assert.equal(mismatches[0].table, "public.Customer Notes");
      assert.equal(mismatches[0].targetRows, mismatches[0].sourceRows - 1);
      assert.equal(mismatches[0].skippedReason, undefined);
      const report = summarizeVerification(after);
      assert.equal(report.status, "Failed");
    });
  });

  describe("while the source is written", () => {
    let spec: MigrationSpec;
    before(async () => {
      await source.query("CREATE DATABASE busy");
      await source.query(
        `CREATE TABLE feed (id bigserial PRIMARY KEY, payload text);
         INSERT INTO feed (payload) SELECT md5(i::text) FROM generate_series(1, 5000) i;
         CREATE TABLE quiet (id int PRIMARY KEY);
         INSERT INTO quiet SELECT generate_series(1, 100);`,
        [],
        "busy",
      );
      spec = await migrate(source, target, "busy");
    });

    it("reports a table being written as skipped, not as a mismatch; once quiet, as a mismatch", async () => {
      const writer = await source.connect("busy");
      let stop = false;
      let inserted = 0;
      const writing = (async () => {
        while (!stop) {
          await writer.query("INSERT INTO feed (payload) VALUES ('live')");
          inserted++;
          await pause(5); // the writer's pace
        }
      })();
      let during;
      try {
        // Let the target fall behind before verifying.
        await until(() => inserted >= 5, { what: "5 rows written", intervalMs: 5 });
        during = await verifyDatabase(spec, "busy", "counts");
      } finally {
        stop = true;
        await writing;
        await writer.end();
      }
      const feed = during.find((t) => t.table === "public.feed");
      assert.ok(feed);
      assert.equal(feed.match, false);
      assert.match(feed.skippedReason ?? "", /written during verification/);
      assert.equal(during.find((t) => t.table === "public.quiet")?.match, true);
      assert.equal(summarizeVerification(during).status, "Skipped");

      // The writes are real and the target lacks them: with the source quiet, that is a mismatch.
      // (Wait until the writer's statistics have arrived, or they would count as fresh writes.)
      await until(
        async () => {
          const [stats] = await source.query<{ n: string }>(
            "SELECT n_tup_ins::text AS n FROM pg_stat_user_tables WHERE relname = 'feed'",
            [],
            "busy",
          );
          return Number(stats.n);
        },
        {
          what: "the writer's statistics",
          accept: (n) => n === 5000 + inserted,
          timeoutMs: 10_000,
          intervalMs: 100,
        },
      );
      const quietNow = await verifyDatabase(spec, "busy", "checksum");
      const feedNow = quietNow.find((t) => t.table === "public.feed");
      assert.equal(feedNow?.match, false);
      assert.equal(feedNow?.skippedReason, undefined);
      assert.equal(feedNow?.sourceRows, 5000 + inserted);
      assert.equal(summarizeVerification(quietNow).status, "Failed");
    });
  });

  describe("under the copy's snapshot", () => {
    let spec: MigrationSpec;
    before(async () => {
      await source.query("CREATE DATABASE snap");
      await source.query(
        `CREATE TABLE pairs (a int, b text, v numeric, PRIMARY KEY (a, b));
         INSERT INTO pairs SELECT i, 'k' || i, i / 7.0 FROM generate_series(1, 20000) i;
         CREATE TABLE loose (v text);
         INSERT INTO loose SELECT 'v' || (i % 50) FROM generate_series(1, 400) i;`,
        [],
        "snap",
      );
      spec = specFor(source, target, "snap");
      await prepareTargetDatabase(spec, "snap");
    });

    it("sees the snapshot, not later source writes; names the first differing key, or none without a key", async () => {
      const held = await exportSnapshot(spec.source, "snap");
      try {
        await cloneDatabase({ spec, database: "snap", snapshot: held.snapshot, progress: quiet });
        // Written after the snapshot: not what the copy saw, so not a difference.
        await source.query(
          "DELETE FROM pairs WHERE a <= 10; INSERT INTO loose VALUES ('new')",
          [],
          "snap",
        );
        const clean = await verifyAtSnapshot(spec, "snap", held.snapshot);
        assert.deepEqual(
          clean.map((t) => [t.table, t.method, t.sourceRows, t.targetRows, t.match]),
          [
            ["public.pairs", "snapshot", 20000, 20000, true],
            ["public.loose", "snapshot", 400, 400, true],
          ],
        );

        await target.query(
          `UPDATE pairs SET v = v + 0.000001 WHERE a = 12345;
           DELETE FROM loose WHERE ctid = (SELECT min(ctid) FROM loose WHERE v = 'v7')`,
          [],
          "snap",
        );
        const changed = await verifyAtSnapshot(spec, "snap", held.snapshot);
        assert.deepEqual(
          changed.map((t) => [t.table, t.match, t.difference]),
          [
            ["public.pairs", false, "the row with key (12345,k12345) differs"],
            ["public.loose", false, "a source row is missing on the target"],
          ],
        );
        assert.equal(summarizeVerification(changed).status, "Failed");

        await target.query("DELETE FROM pairs WHERE a = 12345", [], "snap");
        const [missing] = await verifyAtSnapshot(spec, "snap", held.snapshot);
        assert.equal(missing.difference, "key (12345,k12345) is missing on the target");
        assert.equal(missing.targetRows, 19999);
      } finally {
        await held.release();
      }
    });
  });
});
