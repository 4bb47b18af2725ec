// Whole-server restarts during an online migration (PG 15 → 15): the source while streaming,
// the target (which also holds the control store) while streaming, the source during the copy.
// Every run must end Succeeded with identical data and no slot or publication left.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import type { Client } from "pg";
import { createMigration, isSettled, waitForMigration } from "../../provider/api/index";
import type { DbDetails, MigrationOutputs } from "../../provider/spec/types";
import { compareDatabases } from "../support/checksum";
import { loadFixture } from "../support/fixture";
import {
  assertStreaming,
  controlOf,
  count,
  cutOverSpawned,
  onlineSpec,
  ourSourceObjects,
  Scenario,
  useScenario,
} from "../support/online";
import type { PgServer } from "../support/postgres";
import { pause, until } from "../support/wait";

const DATABASE = "shop";
const TICKS = "SELECT count(*) AS n FROM public.ticks";

const details = (o: MigrationOutputs): DbDetails => o.dbDetails[DATABASE];

/** Fixture (500 rows) plus `public.ticks`, the table the steady writer appends to. */
async function prepare(source: PgServer): Promise<void> {
  await loadFixture(source, DATABASE, { rows: 500 });
  await source.query(
    `CREATE TABLE public.ticks (id bigserial PRIMARY KEY, note text NOT NULL,
       at timestamptz NOT NULL DEFAULT now())`,
    [],
    DATABASE,
  );
}

/**
 * One insert per transaction on `public.ticks` every ~20 ms. Connection errors are survived by
 * reconnecting; `committed` counts acknowledged commits, `uncertain` commits whose
 * acknowledgement was lost (they may or may not have happened).
 */
class TickWriter {
  committed = 0;
  uncertain = 0;
  errors = 0;
  /** Set while paused: resolves on resume() or stop(). */
  private paused?: { resumed: Promise<void>; resume: () => void };
  private stopped = false;
  private readonly loop: Promise<void>;
  private idle: () => void = () => undefined;
  private inFlight: Promise<void> = Promise.resolve();

  constructor(private readonly server: PgServer) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    let client: Client | undefined;
    while (!this.stopped) {
      if (this.paused) {
        await this.paused.resumed;
        continue;
      }
      let finished: () => void = () => undefined;
      this.inFlight = new Promise((resolve) => (finished = resolve));
      try {
        client ??= await this.connect();
        await client.query("INSERT INTO public.ticks (note) VALUES ($1)", [
          `tick ${this.committed}`,
        ]);
        this.committed++;
      } catch {
        this.errors++;
        // Autocommit: a lost acknowledgement leaves the insert's fate unknown.
        if (client) this.uncertain++;
        await client?.end().catch(() => undefined);
        client = undefined;
        await pause(200); // before reconnecting to a server that may be down
      } finally {
        finished();
      }
      await pause(20); // the writer's pace
    }
    await client?.end().catch(() => undefined);
    this.idle();
  }

  private async connect(): Promise<Client> {
    const client = await this.server.connect(DATABASE);
    client.on("error", () => undefined); // the next query reports it
    return client;
  }

  /** Resolves once no insert is in flight; none starts until resume(). */
  async pause(): Promise<void> {
    if (!this.paused) {
      let resume: () => void = () => undefined;
      const resumed = new Promise<void>((resolve) => (resume = resolve));
      this.paused = { resumed, resume };
    }
    await this.inFlight;
  }

  resume(): void {
    this.paused?.resume();
    this.paused = undefined;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.resume();
    await this.loop;
  }

  /** Resolves once `n` more inserts than now have been acknowledged. */
  async writes(n: number): Promise<void> {
    const target = this.committed + n;
    await until(() => this.committed >= target, { what: `${n} more acknowledged inserts` });
  }
}

/** Succeeded, identical data, the writer's acknowledged rows all there, nothing of ours left. */
async function assertDone(s: Scenario, done: MigrationOutputs, writer: TickWriter): Promise<void> {
  assert.equal(done.error, null);
  assert.equal(done.state, "Succeeded");
  assert.equal(done.substate, "Completed");
  assert.equal(details(done).migrationState, "Succeeded");
  const comparison = await compareDatabases(s.source, DATABASE, s.target, DATABASE);
  assert.deepEqual(comparison.differences, []);
  const [sourceTicks, targetTicks] = await Promise.all(
    [s.source, s.target].map((server) => count(server, DATABASE, TICKS)),
  );
  assert.equal(targetTicks, sourceTicks);
  assert.ok(sourceTicks >= writer.committed, `${sourceTicks} rows, ${writer.committed} commits`);
  assert.ok(sourceTicks <= writer.committed + writer.uncertain);
  assert.equal(done.verification?.status, "Succeeded");
  assert.deepEqual(await ourSourceObjects(s.source, DATABASE), []);
  const slots = await s.source.query("SELECT slot_name FROM pg_replication_slots");
  assert.deepEqual(slots, [], "no replication slot left on the source");
}

/** Messages of the migration's events, oldest first. */
async function events(target: PgServer, name: string): Promise<string[]> {
  const rows = await target.query<{ message: string }>(
    "SELECT message FROM pgmigrate.events WHERE migration = $1 ORDER BY id",
    [name],
  );
  return rows.map((r) => r.message);
}

/** Reads public.bulk's load state in the control store over one connection (fast polling). */
async function bulkCopyWatcher(
  target: PgServer,
  name: string,
): Promise<{ read(): Promise<string | undefined>; close(): Promise<void> }> {
  const client = await target.connect();
  return {
    async read() {
      const { rows } = await client.query<{ state: string }>(
        `SELECT state FROM pgmigrate.tables
          WHERE migration = $1 AND schema_name = 'public' AND table_name = 'bulk'`,
        [name],
      );
      return rows[0]?.state;
    },
    close: () => client.end(),
  };
}

/** Waits until the target holds every tick the source has (writer paused or stopped). */
async function caughtUp(s: Scenario): Promise<void> {
  await until(
    () => Promise.all([s.source, s.target].map((server) => count(server, DATABASE, TICKS))),
    { what: "the target's ticks to match the source's", accept: ([a, b]) => a === b },
  );
}

const timings: string[] = [];
function timed(label: string, started: number): void {
  timings.push(`${label}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

describe("whole-server restarts during an online migration", function () {
  after(() => {
    if (timings.length > 0) console.log(`    timings: ${timings.join("; ")}`);
  });

  describe("source restarted while streaming", () => {
    const s = useScenario();

    it("reconnects the stream and cuts over with identical data", async () => {
      const { source, target } = s;
      await prepare(source);
      const spec = onlineSpec(source, target, "src-restart", [DATABASE]);
      const at = controlOf(spec);
      const writer = new TickWriter(source);
      s.cleanups.push(() => writer.stop());
      const { worker } = await s.startStreaming(spec);
      await waitForMigration(at, "src-restart", (o) => details(o).cdcInsertCounter >= 50, {
        timeoutMs: 60_000,
      });

      await writer.pause();
      const started = Date.now();
      await source.restart();
      writer.resume();
      const before = writer.committed;
      await writer.writes(100);
      await writer.pause();
      await caughtUp(s);
      timed("source restart → stream caught up", started);

      await writer.stop();
      const done = await s.cutOver(spec, worker);
      await assertDone(s, done, writer);
      assert.ok(writer.committed > before, "the writer committed after the restart");
    });
  });

  describe("target (and control store) restarted while streaming, spawned worker", () => {
    const s = useScenario();

    it("keeps or replaces its worker and cuts over with identical data", async () => {
      const { source, target } = s;
      await prepare(source);
      const spec = onlineSpec(source, target, "tgt-restart", [DATABASE]);
      const writer = new TickWriter(source);
      s.cleanups.push(() => writer.stop());

      const {
        wait,
        pid: firstPid,
        logDir,
      } = await s.startSpawnedStreaming(spec, "pgmigrate-restart-");
      await wait((o) => details(o).cdcInsertCounter >= 50);

      // The source keeps writing while the target is down.
      const started = Date.now();
      // Down for longer than a heartbeat and a stats period of the worker.
      // A wait already polling when the control store goes away keeps waiting through the outage.
      const beforeRestart = writer.committed;
      const throughOutage = wait((o) => details(o).cdcInsertCounter >= beforeRestart + 50);
      await target.restart({ downMs: 8_000 });
      const atRestart = writer.committed;
      await writer.writes(100);
      await wait((o) => details(o).cdcInsertCounter >= atRestart + 100);
      await throughOutage;
      await writer.pause();
      await caughtUp(s);
      timed("target restart → stream caught up", started);
      const holder = await s.leaseHolder(spec);
      timings.push(`target restart: worker ${holder === firstPid ? "kept" : "replaced"}`);

      await writer.stop();
      const done = await cutOverSpawned(spec, wait);
      await assertDone(s, done, writer);
      // What the worker went through, for the report (not asserted: timing dependent).
      const logged = fs
        .readdirSync(logDir)
        .map((f) => fs.readFileSync(path.join(logDir, f), "utf8"))
        .join("\n")
        .split("\n")
        .filter((l) => /\[(warning|error)\]/.test(l) && !/grants were not restored/.test(l));
      timings.push(
        `target restart: ${logged.length} worker warning(s) in ${fs.readdirSync(logDir).length} log file(s)`,
      );
      for (const line of logged.slice(0, 5)) timings.push(`  ${line}`);
    });
  });

  describe("source down for 19 s during the initial copy", () => {
    const s = useScenario();

    it("starts the copy again from a new snapshot and completes", async () => {
      const { source, target } = s;
      await prepare(source);
      // Enough rows that the copy is still running when the source goes down.
      await source.query(
        `CREATE TABLE public.bulk (id int PRIMARY KEY, payload text NOT NULL);
         INSERT INTO public.bulk SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 400000) g;`,
        [],
        DATABASE,
      );
      const spec = onlineSpec(source, target, "copy-restart", [DATABASE]);
      const at = controlOf(spec);
      const writer = new TickWriter(source);
      s.cleanups.push(() => writer.stop());
      await createMigration(spec, { kind: "external" });
      const worker = s.runWorker(spec);
      // Restart while public.bulk's data is being copied under the slot's snapshot.
      const bulkState = await bulkCopyWatcher(target, "copy-restart");
      try {
        await until(
          async () => {
            const state = await bulkState.read();
            assert.notEqual(state, "completed", "public.bulk was copied before the restart");
            return state === "loading";
          },
          { what: "public.bulk's copy to start", intervalMs: 25 },
        );
      } finally {
        await bulkState.close();
      }

      await writer.pause();
      const started = Date.now();
      // Down for longer than the first three retries (2 + 5 + 10 s): the copy waits it out.
      await source.restart({ downMs: 19_000 });
      writer.resume();
      const settled = await waitForMigration(at, "copy-restart", isSettled, {
        timeoutMs: 150_000,
      });
      timed("source restart during copy → streaming", started);
      assertStreaming(settled);
      const said = await events(target, "copy-restart");
      const retries = said.filter((m) => /^the copy lost a connection/.test(m));
      assert.ok(retries.length >= 4, `retried: ${said.join(" | ")}`);
      assert.ok(
        said.some((m) => /copy was interrupted; starting it again from a new snapshot/.test(m)),
        `the copy was restarted: ${said.join(" | ")}`,
      );
      // Only the new slot exists; the one whose snapshot died was dropped.
      const slots = await source.query<{ slot_name: string }>(
        "SELECT slot_name FROM pg_replication_slots",
      );
      assert.equal(slots.length, 1);
      await writer.writes(50);
      await writer.pause();
      await caughtUp(s);

      await writer.stop();
      const done = await s.cutOver(spec, worker);
      await assertDone(s, done, writer);
      assert.equal(await count(target, DATABASE, "SELECT count(*) AS n FROM public.bulk"), 400000);
    });
  });
});
