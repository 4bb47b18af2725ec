// Online migrations end to end through the engine facade, under load: pgbench and the fixture's
// workload write during the copy and during streaming; connections are killed, the worker is
// SIGKILLed, a cutover arrives with a backlog. Every run ends with identical data, correct
// sequences and nothing of ours left on either server.
import assert from "node:assert/strict";
import {
  ensureWorker,
  getMigration,
  requestAction,
  waitForMigration,
} from "../../provider/api/index";
import type { DbDetails, MigrationOutputs } from "../../provider/spec/types";
import { applyWaitingForLock } from "../support/cdc";
import { addTableWithoutPrimaryKey } from "../support/fixture";
import {
  assertMigrated,
  controlOf,
  count,
  cutOverSpawned,
  onlineSpec,
  prepareSource,
  Scenario,
  startWriters,
  terminateApply,
  terminateWalsender,
  useScenario,
} from "../support/online";
import { startPgbench } from "../support/pgbench";
import type { PgServer } from "../support/postgres";
import { pause, until } from "../support/wait";
import { processGone } from "../support/workers";

const DATABASE = "shop";
const HISTORY_ROWS = "SELECT count(*) AS n FROM pgbench_history";

const specFor = (
  source: PgServer,
  target: PgServer,
  name: string,
  overrides: Record<string, unknown> = {},
) => onlineSpec(source, target, name, [DATABASE], overrides);
const details = (o: MigrationOutputs): DbDetails => o.dbDetails[DATABASE];

/**
 * Scenarios 1 and 2: writers start before the migration, keep writing through the copy and into
 * streaming, stop; then the cutover.
 */
async function migrateUnderLoad(
  s: Scenario,
  name: string,
  options: { historyPrimaryKey: boolean; withoutPrimaryKeyTable?: boolean },
): Promise<void> {
  const { source, target } = s;
  await prepareSource(source, DATABASE, {
    rows: 2000,
    scale: 2,
    historyPrimaryKey: options.historyPrimaryKey,
  });
  if (options.withoutPrimaryKeyTable) await addTableWithoutPrimaryKey(source, DATABASE);
  const spec = specFor(
    source,
    target,
    name,
    options.historyPrimaryKey ? {} : { fixReplicaIdentity: "full" },
  );
  const at = controlOf(spec);

  const writers = startWriters(source, DATABASE);
  s.cleanups.push(() => writers.stop());
  const historyAtStart = await until(() => count(source, DATABASE, HISTORY_ROWS), {
    what: "pgbench to write",
    accept: (n) => n > 20,
  });
  const { worker, settled } = await s.startStreaming(spec);
  assert.ok(
    (await count(source, DATABASE, HISTORY_ROWS)) > historyAtStart,
    "pgbench kept writing while the copy ran",
  );

  // Streaming: the counters grow while the writers keep going.
  const base = details(settled);
  await waitForMigration(
    at,
    name,
    (o) =>
      details(o).cdcInsertCounter >= base.cdcInsertCounter + 100 &&
      details(o).cdcUpdateCounter >= base.cdcUpdateCounter + 300,
    { timeoutMs: 60_000 },
  );
  if (options.withoutPrimaryKeyTable) {
    // Duplicate rows under REPLICA IDENTITY FULL: exactly one of each pair changes.
    await source.query(
      `UPDATE public.no_pk_log SET level = 'debug'
         WHERE ctid = (SELECT ctid FROM public.no_pk_log WHERE message = 'message 7' LIMIT 1);
       DELETE FROM public.no_pk_log
         WHERE ctid = (SELECT ctid FROM public.no_pk_log WHERE message = 'message 9' LIMIT 1);
       INSERT INTO public.no_pk_log (level, message) VALUES ('info', 'message 9');`,
      [],
      DATABASE,
    );
  }
  const written = await writers.stop();
  assert.ok(written.workload.transactions > 0, "the fixture workload committed transactions");

  const done = await s.cutOver(spec, worker);
  assert.ok(details(done).cdcInsertCounter > base.cdcInsertCounter);
  await assertMigrated(s, DATABASE, done, options);
}

describe("online migration end to end under load", function () {
  // The newest majors as targets (17 renamed daticulocale; 18 made generated columns virtual by
  // default), 13 and 14 as sources; without a history primary key, fixReplicaIdentity full.
  const underLoad: {
    versions: [number?, number?];
    name: string;
    options: { historyPrimaryKey: boolean; withoutPrimaryKeyTable?: boolean };
  }[] = [
    { versions: [], name: "load-pk", options: { historyPrimaryKey: true } },
    {
      versions: [13, 16],
      name: "load-13-16",
      options: { historyPrimaryKey: false, withoutPrimaryKeyTable: true },
    },
    { versions: [14, 18], name: "load-14-18", options: { historyPrimaryKey: true } },
    {
      versions: [15, 17],
      name: "load-15-17",
      options: { historyPrimaryKey: false, withoutPrimaryKeyTable: true },
    },
  ];
  for (const { versions, name, options } of underLoad) {
    const [from = 15, to = 15] = versions;
    const identity = options.historyPrimaryKey
      ? "history with a primary key"
      : "fixReplicaIdentity full";
    describe(`PostgreSQL ${from} → ${to}, writes during copy and streaming (${identity})`, () => {
      const s = useScenario(...versions);

      it("ends with identical data, correct sequences and nothing left behind", async () => {
        await migrateUnderLoad(s, name, options);
      });
    });
  }

  describe("connections killed while streaming", () => {
    const s = useScenario();

    it("survives terminated walsender and apply backends with exact counters", async () => {
      const { source, target } = s;
      await prepareSource(source, DATABASE, { rows: 500, scale: 1, historyPrimaryKey: true });
      await source.query(
        "CREATE TABLE public.counted (id int PRIMARY KEY, qty int NOT NULL, note text)",
        [],
        DATABASE,
      );
      const spec = specFor(source, target, "faults");
      const at = controlOf(spec);
      const { worker, settled } = await s.startStreaming(spec);
      assert.equal(details(settled).appliedChanges, 0, "nothing written since the snapshot");

      // Only deterministic writes from here on: 500 pgbench transactions (3 updates and 1
      // insert each) and known changes on `counted`.
      const pgbench = startPgbench(source, DATABASE, {
        clients: 2,
        transactionsPerClient: 250,
        rate: 50,
      });
      s.cleanups.push(() => pgbench.stop());
      const counted = writeCounted(source, 100);

      let writing = true;
      const kills = { walsender: 0, apply: 0 };
      const writersDone = Promise.all([pgbench.done, counted]).finally(() => (writing = false));
      const applied = async () => details((await getMigration(at, "faults")) as MigrationOutputs);
      for (let round = 0; writing || kills.walsender < 3 || kills.apply < 3; round++) {
        // Each kill lands on a stream that came back and applied more since the last one (or
        // on the last backlog once the writers are done).
        const before = (await applied()).appliedChanges;
        await until(async () => !writing || (await applied()).appliedChanges > before, {
          what: "the stream to apply changes between kills",
        });
        if (round % 2 === 0)
          kills.walsender += await until(() => terminateWalsender(source), {
            what: "a walsender to terminate",
            accept: (n) => n > 0,
            intervalMs: 50,
          });
        else
          kills.apply += await until(() => terminateApply(target, DATABASE), {
            what: "an apply backend to terminate",
            accept: (n) => n > 0,
            intervalMs: 50,
          });
        if (round > 40) break;
      }
      const [bench, countedChanges] = await writersDone;
      assert.equal(bench.exitCode, 0, bench.output);
      assert.equal(bench.transactions, 500);
      assert.ok(kills.walsender >= 3, `walsender terminated ${kills.walsender} times`);
      assert.ok(kills.apply >= 3, `apply backend terminated ${kills.apply} times`);

      const expected = {
        cdcInsertCounter: 500 + countedChanges.inserts,
        cdcUpdateCounter: 1500 + countedChanges.updates,
        cdcDeleteCounter: countedChanges.deletes,
      };
      const done = await s.cutOver(spec, worker);
      const db = details(done);
      assert.deepEqual(
        {
          cdcInsertCounter: db.cdcInsertCounter,
          cdcUpdateCounter: db.cdcUpdateCounter,
          cdcDeleteCounter: db.cdcDeleteCounter,
        },
        expected,
      );
      assert.equal(
        db.appliedChanges,
        expected.cdcInsertCounter + expected.cdcUpdateCounter + expected.cdcDeleteCounter,
      );
      assert.equal(db.incomingChanges, 0);
      await assertMigrated(s, DATABASE, done, { historyPrimaryKey: true });
      assert.equal(
        await count(target, DATABASE, "SELECT count(*) AS n FROM public.counted"),
        countedChanges.inserts - countedChanges.deletes,
      );
    });
  });

  describe("worker SIGKILLed while streaming", () => {
    const s = useScenario();

    it("resumes in a new worker and cuts over without duplicates", async () => {
      const { source, target } = s;
      // No primary key on pgbench_history: a duplicate row would show in its count.
      await prepareSource(source, DATABASE, { rows: 1000, scale: 1, historyPrimaryKey: false });
      const spec = specFor(source, target, "killed", { fixReplicaIdentity: "full" });
      const at = controlOf(spec);

      const writers = startWriters(source, DATABASE);
      s.cleanups.push(() => writers.stop());
      const {
        runtime,
        wait,
        settled,
        pid: firstPid,
      } = await s.startSpawnedStreaming(spec, "pgmigrate-e2e-");

      const firstCount = details(settled).cdcInsertCounter;
      await wait((o) => details(o).cdcInsertCounter >= firstCount + 100);
      process.kill(firstPid, "SIGKILL");
      await processGone(firstPid, "the killed worker to die");
      const atKill = details((await getMigration(at, "killed")) as MigrationOutputs);
      // The writers keep going without a worker: the successor starts with a backlog.
      const historyAtKill = await count(source, DATABASE, HISTORY_ROWS);
      await until(() => count(source, DATABASE, HISTORY_ROWS), {
        what: "pgbench to write while no worker runs",
        accept: (n) => n >= historyAtKill + 50,
      });

      assert.equal(await ensureWorker(spec, runtime), true);
      const secondPid = await s.leaseHolder(spec, firstPid);
      await wait(
        (o) =>
          details(o).cdcInsertCounter >= atKill.cdcInsertCounter + 100 &&
          details(o).cdcUpdateCounter >= atKill.cdcUpdateCounter + 300,
      );

      await writers.stop();
      const done = await cutOverSpawned(spec, wait);
      await assertMigrated(s, DATABASE, done, { historyPrimaryKey: false });
      const [sourceRows, targetRows] = await Promise.all(
        [source, target].map((server) => count(server, DATABASE, HISTORY_ROWS)),
      );
      assert.equal(targetRows, sourceRows, "no history row applied twice");
      await processGone(secondPid, "the worker to exit");
    });
  });

  describe("cutover requested with a backlog", () => {
    const s = useScenario();

    it("applies the backlog and completes", async () => {
      const { source, target } = s;
      await prepareSource(source, DATABASE, { rows: 500, scale: 1, historyPrimaryKey: true });
      const spec = specFor(source, target, "backlog");
      const at = controlOf(spec);
      const { worker } = await s.startStreaming(spec);

      const writers = startWriters(source, DATABASE);
      s.cleanups.push(() => writers.stop());
      await waitForMigration(at, "backlog", (o) => details(o).cdcUpdateCounter > 0, {
        timeoutMs: 30_000,
      });

      // A target session holds pgbench_accounts: the stream cannot apply, the backlog grows.
      const locker = await target.connect(DATABASE);
      s.cleanups.push(() => locker.end());
      await locker.query("BEGIN");
      await locker.query("LOCK TABLE pgbench_accounts IN ACCESS EXCLUSIVE MODE");
      const behind = await waitForMigration(
        at,
        "backlog",
        (o) => (details(o).latencySeconds ?? 0) >= 3,
        { timeoutMs: 30_000 },
      );
      assert.ok((behind.latencySeconds ?? 0) >= 3, `latency ${behind.latencySeconds}`);
      assert.ok(details(behind).incomingChanges > 0, "changes wait to be applied");
      await writers.stop();

      await requestAction(at, "backlog", "cutover");
      await waitForMigration(at, "backlog", (o) => o.substate === "CompletingMigration", {
        timeoutMs: 30_000,
      });
      // The apply session waits for the lock: the cutover cannot pass the backlog.
      await applyWaitingForLock(target, DATABASE);
      const blocked = (await getMigration(at, "backlog")) as MigrationOutputs;
      assert.equal(blocked.state, "InProgress", "the cutover waits for the backlog");

      await locker.query("ROLLBACK");
      await worker;
      const done = (await getMigration(at, "backlog")) as MigrationOutputs;
      await assertMigrated(s, DATABASE, done, { historyPrimaryKey: true });
    });
  });
});

/**
 * Known changes on `public.counted`, one small transaction each (~10 s): 3 inserts, 2 updates
 * and 1 delete per transaction. Returns the rows each kind touched.
 */
async function writeCounted(
  source: PgServer,
  transactions: number,
): Promise<{ inserts: number; updates: number; deletes: number }> {
  const client = await source.connect(DATABASE);
  const counts = { inserts: 0, updates: 0, deletes: 0 };
  try {
    for (let k = 0; k < transactions; k++) {
      await client.query("BEGIN");
      const ins = await client.query(
        `INSERT INTO public.counted (id, qty, note)
         SELECT g, $2, 'row ' || g FROM generate_series($1::int * 3 + 1, $1::int * 3 + 3) AS g`,
        [k, k],
      );
      const upd = await client.query(
        "UPDATE public.counted SET qty = qty + 1, note = note || '+' WHERE id IN ($1, $2)",
        [k * 3 + 1, k * 3 + 2],
      );
      const del = await client.query("DELETE FROM public.counted WHERE id = $1", [k * 3 + 3]);
      await client.query("COMMIT");
      counts.inserts += ins.rowCount ?? 0;
      counts.updates += upd.rowCount ?? 0;
      counts.deletes += del.rowCount ?? 0;
      await pause(80); // the writer's pace: ~10 s of changes for the kills to land on
    }
  } finally {
    await client.end();
  }
  return counts;
}
