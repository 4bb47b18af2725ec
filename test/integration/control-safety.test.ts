// The control store's safety on a real server: an older pgmigrate refuses a newer control schema
// from every entry, a worker that lost its lease changes nothing (and stops), and a wait holds
// one connection however long it lasts, surviving a restart of the target.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import {
  createMigration,
  getMigration,
  getStoredSpec,
  listMigrations,
  requestAction,
  waitForMigration,
} from "../../provider/api/index";
import { WAIT_APPLICATION_NAME } from "../../provider/api/wait";
import { withControl, type Queryable } from "../../provider/control/db";
import { addWorkerEvent } from "../../provider/control/events";
import { claimLease, heartbeat } from "../../provider/control/lease";
import {
  addCreatedDatabase,
  setState,
  setValidation,
  setVerification,
} from "../../provider/control/migrations";
import {
  markCopyCompleted,
  queueTables,
  resetDatabase,
  setCutoverLsn,
  markDrained,
  setDatabaseStep,
  setDatabaseVerification,
  setSlot,
  setTableState,
  writeStreamStats,
  type StreamStats,
} from "../../provider/control/progress";
import { knownSchemaVersion } from "../../provider/control/schema";
import { MigrationError } from "../../provider/pg/errors";
import { LeaseKeeper } from "../../provider/runtime/lease";
import { controlUrl } from "../../provider/runtime/spawn";
import { runWorker } from "../../provider/runtime/worker";
import type { MigrationSpec } from "../../provider/spec/types";
import { until } from "../support/wait";
import { startPostgres, type PgServer } from "../support/postgres";
import { specOf } from "../support/spec";

const WORKER_MAIN = path.join(__dirname, "..", "..", "provider", "runtime", "main.js");

const STATS: StreamStats = {
  inserts: 7,
  updates: 3,
  deletes: 1,
  truncates: 0,
  appliedChanges: 11,
  incomingChanges: 0,
  appliedLsn: "0/16B3748",
  appliedCommitTime: Date.parse("2025-03-01T14:02:07Z"),
  latencySeconds: 0.5,
  lagBytes: 0,
};

async function rejectsWith(promise: Promise<unknown>, code: string, text: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof MigrationError, String(err));
    assert.equal(err.code, code);
    assert.match(err.message, text);
    return true;
  });
}

/** Everything a worker can write about migration `name`, as the control store holds it. */
async function written(db: Queryable, name: string): Promise<unknown> {
  const q = async (sql: string): Promise<unknown[]> => (await db.query(sql, [name])).rows;
  return {
    migration: await q(
      `SELECT state, substate, error, validation, verification, created_databases, ended_on
         FROM pgmigrate.migrations WHERE name = $1`,
    ),
    databases: await q(
      `SELECT name, step, migration_state, message, copy_completed, slot, consistent_point,
              cutover_lsn, applied_lsn, inserts, updates, deletes, applied_changes,
              latency_seconds, verification, ended_on
         FROM pgmigrate.databases WHERE migration = $1 ORDER BY name`,
    ),
    tables: await q(
      `SELECT database, schema_name, table_name, state, rows, bytes, estimated_bytes
         FROM pgmigrate.tables WHERE migration = $1 ORDER BY 1, 2, 3`,
    ),
    events: await q("SELECT id, message FROM pgmigrate.events WHERE migration = $1 ORDER BY id"),
  };
}

describe("control store safety", () => {
  let source: PgServer;
  let target: PgServer;

  before(async () => {
    [source, target] = await Promise.all([startPostgres(), startPostgres()]);
  });
  after(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  function specFor(migrationName: string, controlDatabase: string): MigrationSpec {
    return specOf(source, target, { databases: ["shop"], migrationName, controlDatabase });
  }

  it("refuses a control schema newer than this pgmigrate, from every entry", async () => {
    const spec = specFor("future", "ctl_future");
    const at = { target: spec.target, controlDatabase: "ctl_future" };
    await createMigration(spec, { kind: "external" });
    // A newer pgmigrate upgraded the store since.
    await target.query(
      "INSERT INTO pgmigrate.schema_version (version, name) VALUES ($1, 'from-the-future')",
      [knownSchemaVersion() + 1],
      "ctl_future",
    );
    const tooNew = /version \d+, newer than this pgmigrate understands.*upgrade pgmigrate/;
    await rejectsWith(
      createMigration(specFor("another", "ctl_future"), { kind: "external" }),
      "PGM_SCHEMA_TOO_NEW",
      tooNew,
    );
    await rejectsWith(getMigration(at, "future"), "PGM_SCHEMA_TOO_NEW", tooNew);
    await rejectsWith(getStoredSpec(at, "future"), "PGM_SCHEMA_TOO_NEW", tooNew);
    await rejectsWith(listMigrations(at, "All"), "PGM_SCHEMA_TOO_NEW", tooNew);
    await rejectsWith(requestAction(at, "future", "cancel"), "PGM_SCHEMA_TOO_NEW", tooNew);
    await rejectsWith(
      waitForMigration(at, "future", () => true, { timeoutMs: 10_000 }),
      "PGM_SCHEMA_TOO_NEW",
      tooNew,
    );
    await rejectsWith(
      runWorker({ target: spec.target, controlDatabase: "ctl_future", migrationName: "future" }),
      "PGM_SCHEMA_TOO_NEW",
      tooNew,
    );
    // The worker process (what the spawner starts) says so too, and exits 1.
    const worker = spawnSync(
      process.execPath,
      [
        WORKER_MAIN,
        "runtime",
        "--server",
        controlUrl(spec.target, "ctl_future"),
        "--migration-name",
        "future",
      ],
      {
        env: { ...process.env, PGMIGRATE_TARGET_PASSWORD: spec.target.password },
        encoding: "utf8",
        timeout: 60_000,
      },
    );
    assert.equal(worker.status, 1, worker.stdout + worker.stderr);
    assert.match(worker.stdout, /upgrade pgmigrate/);
    // Nothing was changed by the refused calls.
    const [row] = await target.query<{ state: string; requested_action: string | null }>(
      "SELECT state, requested_action FROM pgmigrate.migrations WHERE name = 'future'",
      [],
      "ctl_future",
    );
    assert.deepEqual(row, { state: "InProgress", requested_action: null });
  });

  it("fences a worker's writes: once its lease is taken over they change nothing and it stops", async () => {
    const spec = specFor("fenced", "ctl_fence");
    const at = { target: spec.target, controlDatabase: "ctl_fence" };
    await createMigration(spec, { kind: "external" });
    await withControl(at, async (db) => {
      const warn = (): void => undefined;
      const a = new LeaseKeeper(db, "fenced", "host-a:101:aa", warn);
      const b = new LeaseKeeper(db, "fenced", "host-b:202:bb", warn);
      assert.ok(await claimLease(db, "fenced", a.owner, { pid: 101, host: "host-a" }));
      await setState(db, a, "InProgress", "MigratingData");
      await setDatabaseStep(db, a, "shop", "copying", "InProgress", "copying data");
      await queueTables(db, a, "shop", [{ schema: "public", name: "orders", estimatedBytes: 100 }]);
      await addWorkerEvent(db, a, "info", "a is copying");

      // A goes silent past the lease expiry (a paused VM, a partition); B takes over.
      await db.query(
        "UPDATE pgmigrate.migrations SET heartbeat_at = now() - interval '1 hour' WHERE name = $1",
        ["fenced"],
      );
      assert.ok(await claimLease(db, "fenced", b.owner, { pid: 202, host: "host-b" }));
      const before = await written(db, "fenced");

      const lost = /no longer holds the lease/;
      const table = { schema: "public", name: "orders" };
      const attempts: [string, () => Promise<void>][] = [
        ["state", () => setState(db, a, "Failed", "Failed", "a failed")],
        [
          "validation",
          () => setValidation(db, a, { status: "Failed", serverLevel: [], databaseLevel: [] }),
        ],
        ["verification", () => setVerification(db, a, { status: "Failed", tables: [] })],
        ["created database", () => addCreatedDatabase(db, a, "shop")],
        ["step", () => setDatabaseStep(db, a, "shop", "completed", "Failed", "a failed")],
        ["reset", () => resetDatabase(db, a, "shop")],
        ["slot", () => setSlot(db, a, "shop", "a_slot", "0/1")],
        ["copy completed", () => markCopyCompleted(db, a, "shop")],
        ["stream stats", () => writeStreamStats(db, a, "shop", STATS)],
        ["cutover LSN", async () => void (await setCutoverLsn(db, a, ["shop"], "0/2"))],
        [
          "drain",
          async () =>
            void (await markDrained(db, a, "shop", "a drained", { lsn: null, commitTime: null })),
        ],
        ["database verification", () => setDatabaseVerification(db, a, "shop", [])],
        ["queued tables", () => queueTables(db, a, "shop", [])],
        ["table state", () => setTableState(db, a, "shop", table, "errored", { error: "a" })],
        ["event", () => addWorkerEvent(db, a, "error", "a failed")],
      ];
      for (const [what, write] of attempts) {
        await rejectsWith(write(), "PGM_LEASE_LOST", lost).catch((err: unknown) => {
          throw new Error(`${what}: ${String(err)}`);
        });
      }
      assert.ok(a.stop.aborted, "the worker that lost its lease is told to stop");
      assert.deepEqual(await written(db, "fenced"), before, "A changed nothing");
      assert.deepEqual(await heartbeat(db, "fenced", a.owner), {
        held: false,
        requestedAction: null,
      });

      // B's writes land.
      await setState(db, b, "WaitingForUserAction", "WaitingForCutoverTrigger");
      await writeStreamStats(db, b, "shop", STATS);
      await setTableState(db, b, "shop", table, "completed", { rows: 42, bytes: 100 });
      await addWorkerEvent(db, b, "info", "b is streaming");
      assert.equal(b.stop.aborted, false);
      const after = (await written(db, "fenced")) as {
        migration: { state: string; substate: string }[];
        databases: { inserts: string; applied_lsn: string }[];
        tables: { state: string; rows: string }[];
        events: { message: string }[];
      };
      assert.deepEqual(
        [after.migration[0].state, after.migration[0].substate],
        ["WaitingForUserAction", "WaitingForCutoverTrigger"],
      );
      assert.deepEqual(
        [Number(after.databases[0].inserts), after.databases[0].applied_lsn],
        [7, "0/16B3748"],
      );
      assert.deepEqual(
        after.tables.map((t) => [t.state, Number(t.rows)]),
        [["completed", 42]],
      );
      assert.deepEqual(
        after.events.map((e) => e.message).filter((m) => / is /.test(m)),
        ["a is copying", "b is streaming"],
      );
    });
  });

  it("waits on one connection, and survives a restart of the target", async function () {
    this.timeout(180_000);
    const spec = specFor("waited", "ctl_wait");
    const at = { target: spec.target, controlDatabase: "ctl_wait" };
    await createMigration(spec, { kind: "external" });
    const backends = new Set<string>();
    const sample = async (): Promise<number> => {
      const rows = await target.query<{ pid: number; started: string }>(
        `SELECT pid, backend_start::text AS started FROM pg_stat_activity
          WHERE application_name = $1 AND datname = 'ctl_wait'`,
        [WAIT_APPLICATION_NAME],
      );
      for (const r of rows) backends.add(`${r.pid}@${r.started}`);
      return rows.length;
    };
    const warnings: string[] = [];
    const waiting = waitForMigration(at, "waited", (o) => o.state === "WaitingForUserAction", {
      timeoutMs: 150_000,
      // With onWarning the wait also looks after the (external) worker every tick.
      onWarning: (message) => warnings.push(message),
    });
    waiting.catch(() => undefined);

    // Several seconds of ticks (one a second): one backend throughout.
    const first = Date.now();
    let samples = 0;
    await until(
      async () => {
        if ((await sample()) > 0) samples++;
        return Date.now() - first > 5_000 ? true : undefined;
      },
      { what: "five seconds of waiting" },
    );
    assert.ok(samples >= 10, `the wait's connection was seen ${samples} times`);
    assert.equal(backends.size, 1, `connections opened: ${[...backends].join(", ")}`);

    // The target (home of the control store) goes away for a while and comes back.
    await target.restart({ downMs: 3_000 });
    await until(async () => ((await sample()) > 0 ? true : undefined), {
      what: "the wait to reconnect",
    });
    const reconnected = Date.now();
    await until(
      async () => {
        await sample();
        return Date.now() - reconnected > 3_000 ? true : undefined;
      },
      { what: "three more seconds of waiting" },
    );
    assert.equal(backends.size, 2, `one reconnection only: ${[...backends].join(", ")}`);
    assert.ok(warnings.some((w) => /target server is unreachable/.test(w)));

    await target.query(
      `UPDATE pgmigrate.migrations SET state = 'WaitingForUserAction',
              substate = 'WaitingForCutoverTrigger' WHERE name = 'waited'`,
      [],
      "ctl_wait",
    );
    const settled = await waiting;
    assert.equal(settled.state, "WaitingForUserAction");
    assert.equal(await sample(), 0, "the wait closed its connection");
  });
});
