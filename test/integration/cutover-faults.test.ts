// Faults during the cutover of an online migration (issue 11, findings 1, 8, 9, 11 and the crash
// loop): servers restarted, workers killed or crashing at named points of the cutover, writes
// going on while it runs, a sequence created on the source while replicating. The worker runs as
// `pgmigrate runtime` child processes (external runtime) that the test starts, stops at the
// points of provider/runtime/test-hooks.ts, kills and replaces. One server pair, one database
// per test.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Client } from "pg";
import {
  createMigration,
  getMigration,
  isEnded,
  isSettled,
  requestAction,
  waitForMigration,
} from "../../provider/api/index";
import { clearDeadLease } from "../../provider/control/lease";
import { TARGET_BOOKKEEPING_SCHEMA } from "../../provider/pg/names";
import { compareLsn } from "../../provider/pg/lsn";
import { controlUrl } from "../../provider/runtime/spawn";
import type { TestPoint } from "../../provider/runtime/test-hooks";
import type { MigrationOutputs, MigrationSpec } from "../../provider/spec/types";
import { compareDatabases, sequenceStates } from "../support/checksum";
import { controlOf, onlineSpec, ourSourceObjects } from "../support/online";
import { startPostgres, type PgServer } from "../support/postgres";
import { until } from "../support/wait";

const WORKER_MAIN = path.join(__dirname, "..", "..", "provider", "runtime", "main.js");

/** One `pgmigrate runtime --migration-name N` process, with its output kept for failures. */
class Runtime {
  readonly child: ChildProcess;
  output = "";
  readonly exited: Promise<number | null>;

  constructor(spec: MigrationSpec, hooks: NodeJS.ProcessEnv) {
    this.child = spawn(
      process.execPath,
      [
        WORKER_MAIN,
        "runtime",
        "--server",
        controlUrl(spec.target, spec.controlDatabase),
        "--migration-name",
        spec.migrationName,
      ],
      {
        env: {
          PATH: process.env.PATH,
          HOME: process.env.HOME,
          TMPDIR: process.env.TMPDIR,
          PGMIGRATE_TARGET_PASSWORD: spec.target.password,
          PGMIGRATE_SOURCE_PASSWORD: spec.source.password,
          ...hooks,
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    this.child.stdout?.on("data", (chunk: Buffer) => (this.output += chunk.toString()));
    this.child.stderr?.on("data", (chunk: Buffer) => (this.output += chunk.toString()));
    this.exited = new Promise((resolve) => this.child.on("exit", (code) => resolve(code)));
  }

  async kill(): Promise<void> {
    this.child.kill("SIGKILL");
    await this.exited;
  }
}

/** A folder through which the test and a worker meet at the named points. */
class Pauses {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-pause-"));

  env(...points: TestPoint[]): NodeJS.ProcessEnv {
    return { PGMIGRATE_TEST_PAUSE_DIR: this.dir, PGMIGRATE_TEST_PAUSE_AT: points.join(",") };
  }

  async reached(point: TestPoint, runtime: Runtime): Promise<void> {
    await until(
      () => {
        if (runtime.child.exitCode !== null) throw new Error(`worker exited:\n${runtime.output}`);
        return fs.existsSync(path.join(this.dir, `${point}.reached`));
      },
      { what: `the worker to reach ${point}`, timeoutMs: 90_000, intervalMs: 50 },
    );
  }

  release(point: TestPoint): void {
    fs.writeFileSync(path.join(this.dir, `${point}.go`), "");
  }

  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

describe("faults during the cutover", function () {
  let source: PgServer;
  let target: PgServer;
  const runtimes: Runtime[] = [];
  const pauses: Pauses[] = [];

  before(async () => {
    [source, target] = await Promise.all([startPostgres(), startPostgres()]);
  });

  afterEach(async () => {
    await Promise.all(runtimes.splice(0).map((r) => r.kill()));
    for (const p of pauses.splice(0)) p.remove();
  });

  after(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  function runtime(spec: MigrationSpec, hooks: NodeJS.ProcessEnv = {}): Runtime {
    const r = new Runtime(spec, hooks);
    runtimes.push(r);
    return r;
  }

  /** Frees the lease of a worker the test killed, as the spawner does for a dead local worker. */
  async function freeLease(name: string): Promise<void> {
    const client = await target.connect();
    try {
      const { rows } = await client.query<{ owner: string }>(
        "SELECT lease_owner AS owner FROM pgmigrate.migrations WHERE name = $1",
        [name],
      );
      if (rows[0]?.owner) await clearDeadLease(client, name, rows[0].owner);
    } finally {
      await client.end();
    }
  }

  function newPauses(): Pauses {
    const p = new Pauses();
    pauses.push(p);
    return p;
  }

  /** A source database with a table of `rows` rows (bigserial key), and a materialized view. */
  async function sourceDatabase(database: string, rows = 2_000): Promise<void> {
    await source.query(`CREATE DATABASE ${database}`);
    await source.query(
      `CREATE TABLE item (id bigserial PRIMARY KEY, label text NOT NULL, qty int NOT NULL);
       INSERT INTO item (label, qty) SELECT 'item ' || i, i % 97 FROM generate_series(1, ${rows}) i;
       CREATE MATERIALIZED VIEW item_totals AS SELECT qty, count(*) AS n FROM item GROUP BY qty`,
      [],
      database,
    );
  }

  /** Created and streaming under an external runtime: the migration waits for its cutover. */
  async function streaming(spec: MigrationSpec, hooks: NodeJS.ProcessEnv = {}): Promise<Runtime> {
    await createMigration(spec, { kind: "external" });
    const worker = runtime(spec, hooks);
    const settled = await waitForMigration(controlOf(spec), spec.migrationName, isSettled, {
      timeoutMs: 120_000,
    });
    assert.equal(settled.state, "WaitingForUserAction", `${settled.error}\n${worker.output}`);
    return worker;
  }

  async function ended(spec: MigrationSpec): Promise<MigrationOutputs> {
    return waitForMigration(controlOf(spec), spec.migrationName, (o) => isEnded(o.state), {
      timeoutMs: 120_000,
    });
  }

  /** Succeeded, identical data and sequences, nothing of ours left on either side. */
  async function assertExact(spec: MigrationSpec, done: MigrationOutputs): Promise<void> {
    const [database] = spec.databases;
    assert.equal(done.state, "Succeeded", JSON.stringify(done.error));
    assert.equal(done.dbDetails[database].migrationState, "Succeeded");
    const comparison = await compareDatabases(source, database, target, database);
    assert.deepEqual(comparison.differences, []);
    assert.deepEqual(
      [...(await sequenceStates(target, database))],
      [...(await sequenceStates(source, database))],
    );
    assert.deepEqual(await ourSourceObjects(source, database), []);
    const schemas = await target.query(
      "SELECT 1 FROM pg_namespace WHERE nspname = $1",
      [TARGET_BOOKKEEPING_SCHEMA],
      database,
    );
    assert.equal(schemas.length, 0, `${TARGET_BOOKKEEPING_SCHEMA} left in the target database`);
  }

  it("survives a fast restart of the target during the cutover with checksum verification (finding 1)", async () => {
    await sourceDatabase("restart_target");
    const spec = onlineSpec(source, target, "restart-target", ["restart_target"]);
    const pause = newPauses();
    const worker = await streaming(spec, pause.env("drained"));
    await source.query(
      "INSERT INTO item (label, qty) SELECT 'late ' || i, 1 FROM generate_series(1, 300) i",
      [],
      "restart_target",
    );
    await requestAction(controlOf(spec), spec.migrationName, "cutover");
    await pause.reached("drained", worker);
    // The worker goes on (triggers, sequences, views, checksums) into a target shutting down.
    await Promise.all([target.restart({ downMs: 1_500 }), pause.release("drained")]);
    const done = await ended(spec);
    await assertExact(spec, done);
    assert.equal(done.verification?.status, "Succeeded");
    assert.ok(done.verification?.tables.some((t) => t.method === "checksum" && t.match));
    assert.equal(await worker.exited, 0, worker.output);
  });

  it("survives a fast restart of the source while draining to the cutover LSN", async () => {
    await sourceDatabase("restart_source");
    const spec = onlineSpec(source, target, "restart-source", ["restart_source"]);
    const pause = newPauses();
    const worker = await streaming(spec, pause.env("cutover-lsn"));
    await source.query(
      "UPDATE item SET qty = qty + 1 WHERE id % 10 = 0; DELETE FROM item WHERE id % 50 = 0",
      [],
      "restart_source",
    );
    await requestAction(controlOf(spec), spec.migrationName, "cutover");
    await pause.reached("cutover-lsn", worker);
    await Promise.all([source.restart({ downMs: 1_500 }), pause.release("cutover-lsn")]);
    const done = await ended(spec);
    await assertExact(spec, done);
    assert.equal(done.verification?.status, "Succeeded");
    assert.equal(await worker.exited, 0, worker.output);
  });

  it("finishes after workers killed once drained and once the slot is dropped, and refuses a cancel meanwhile (finding 8)", async () => {
    await sourceDatabase("killed");
    const spec = onlineSpec(source, target, "killed", ["killed"], { verify: "counts" });
    const at = controlOf(spec);
    const pause = newPauses();
    const first = await streaming(spec, pause.env("drained"));
    await source.query("DELETE FROM item WHERE id <= 100", [], "killed");
    await requestAction(at, spec.migrationName, "cutover");
    await pause.reached("drained", first);
    await first.kill();
    // The target is complete: a cancel would drop it.
    await assert.rejects(requestAction(at, spec.migrationName, "cancel"), (err: Error) => {
      assert.match(err.message, /can no longer be canceled/);
      return true;
    });

    await freeLease(spec.migrationName);
    // The successor needs no slot (the database is drained); stopped once the slot is gone.
    const second = runtime(spec, pause.env("source-dropped"));
    await pause.reached("source-dropped", second);
    assert.deepEqual(await ourSourceObjects(source, "killed"), []);
    await second.kill();
    await freeLease(spec.migrationName);
    const middle = await getMigration(at, spec.migrationName);
    assert.equal(middle?.state, "InProgress");
    assert.equal(middle?.substate, "CompletingMigration");

    const last = runtime(spec);
    const done = await ended(spec);
    await assertExact(spec, done);
    assert.equal(await last.exited, 0, last.output);
  });

  it("stops exactly at the cutover LSN while writes go on, and reports it (finding 9)", async () => {
    const database = "busy";
    await sourceDatabase(database, 100);
    // A second database, quiet: the cutover stops both at the one position.
    await sourceDatabase("busy_quiet", 300);
    const spec = onlineSpec(source, target, "busy", [database, "busy_quiet"], { verify: "none" });
    const at = controlOf(spec);
    const pause = newPauses();
    const worker = await streaming(spec, pause.env("cutover-lsn"));
    const writer = new BoundedWriter(await source.connect(database));
    try {
      await until(() => writer.rows.length >= 20, { what: "the writer to commit rows" });
      await requestAction(at, spec.migrationName, "cutover");
      await pause.reached("cutover-lsn", worker);
      const during = await getMigration(at, spec.migrationName);
      const cutoverLsn = during?.cutoverLsn;
      assert.ok(cutoverLsn, "the cutover LSN is reported as soon as it is recorded");
      // Commits after the cutover LSN reach the stream while it drains: none may be applied.
      const after = writer.rows.length;
      await until(() => writer.rows.length >= after + 30, { what: "30 commits after the LSN" });
      pause.release("cutover-lsn");
      const done = await ended(spec);
      await writer.stop();
      assert.equal(done.state, "Succeeded", JSON.stringify(done.error));

      assert.equal(done.cutoverLsn, cutoverLsn);
      const details = done.dbDetails[database];
      assert.equal(details.cutoverLsn, cutoverLsn);
      assert.ok(details.lastAppliedCommitLsn, "the last applied commit is reported");
      assert.ok(compareLsn(details.lastAppliedCommitLsn, cutoverLsn) < 0);
      assert.ok(details.lastAppliedCommitTime, "with its commit time");
      assert.equal(done.dbDetails.busy_quiet.cutoverLsn, cutoverLsn);
      assert.deepEqual(
        (await compareDatabases(source, "busy_quiet", target, "busy_quiet")).differences,
        [],
      );

      const present = new Set(
        (await target.query<{ id: string }>("SELECT id FROM item", [], database)).map((r) =>
          Number(r.id),
        ),
      );
      const before = writer.rows.filter((r) => compareLsn(r.after, cutoverLsn) <= 0);
      const later = writer.rows.filter((r) => compareLsn(r.before, cutoverLsn) >= 0);
      assert.ok(before.length >= 20 && later.length >= 30, `${before.length}/${later.length}`);
      assert.deepEqual(
        before.filter((r) => !present.has(r.id)).map((r) => r.id),
        [],
        "committed before the cutover LSN, missing on the target",
      );
      assert.deepEqual(
        later.filter((r) => present.has(r.id)).map((r) => r.id),
        [],
        "committed after the cutover LSN, applied on the target",
      );
      // A commit-order prefix: the writer's ids grow with its commits.
      const top = Math.max(...present);
      assert.equal(present.size, 100 + writer.rows.filter((r) => r.id <= top).length);
      assert.equal(await worker.exited, 0, worker.output);
    } finally {
      await writer.stop();
    }
  });

  it("copies sequences and warns about one created on the source while replicating (finding 11)", async () => {
    await sourceDatabase("late_seq");
    const spec = onlineSpec(source, target, "late-seq", ["late_seq"], { verify: "counts" });
    const worker = await streaming(spec);
    await source.query(
      `CREATE SEQUENCE public.late_seq; SELECT nextval('public.late_seq');
       INSERT INTO item (label, qty) SELECT 'late ' || i, 2 FROM generate_series(1, 50) i`,
      [],
      "late_seq",
    );
    await requestAction(controlOf(spec), spec.migrationName, "cutover");
    const done = await ended(spec);
    assert.equal(done.state, "Succeeded", JSON.stringify(done.error));
    assert.ok(
      done.warnings.some((w) => w.database === "late_seq" && w.message.includes("public.late_seq")),
      JSON.stringify(done.warnings),
    );
    const [sourceSeqs, targetSeqs] = await Promise.all([
      sequenceStates(source, "late_seq"),
      sequenceStates(target, "late_seq"),
    ]);
    assert.equal(targetSeqs.has("public.late_seq"), false);
    sourceSeqs.delete("public.late_seq");
    assert.deepEqual([...targetSeqs], [...sourceSeqs]);
    assert.equal(await worker.exited, 0, worker.output);
  });

  it("fails a migration whose worker crashes three times at the same point, dropping the slot", async () => {
    await sourceDatabase("crashing", 200);
    const spec = onlineSpec(source, target, "crashing", ["crashing"], { verify: "counts" });
    const at = controlOf(spec);
    const crash = { PGMIGRATE_TEST_CRASH_AT: "drained" };
    const first = await streaming(spec, crash);
    await requestAction(at, spec.migrationName, "cutover");
    assert.equal(await first.exited, 70, first.output);
    for (let i = 2; i <= 3; i++) {
      const again = runtime(spec, crash);
      assert.equal(await again.exited, 70, again.output);
    }
    const counted = await target.query<{ crash_count: number }>(
      "SELECT crash_count FROM pgmigrate.migrations WHERE name = $1",
      [spec.migrationName],
    );
    assert.equal(counted[0].crash_count, 3);
    // The next worker does not start a fourth crash: it ends the migration with the cause.
    const last = runtime(spec, crash);
    assert.equal(await last.exited, 0, last.output);
    const done = (await getMigration(at, spec.migrationName)) as MigrationOutputs;
    assert.equal(done.state, "Failed");
    assert.match(done.error ?? "", /crashed 3 times in a row .*test crash at drained/);
    assert.deepEqual(await ourSourceObjects(source, "crashing"), []);
  });
});

/** One insert per transaction on `item`, each with the WAL insert positions around its commit. */
class BoundedWriter {
  /** Committed rows: the source's WAL insert position before the insert and after its commit. */
  readonly rows: { id: number; before: string; after: string }[] = [];
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(private readonly client: Client) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const lsn = "SELECT pg_current_wal_insert_lsn()::text AS lsn";
      const before = (await this.client.query<{ lsn: string }>(lsn)).rows[0].lsn;
      const { rows } = await this.client.query<{ id: string }>(
        "INSERT INTO item (label, qty) VALUES ('written', 3) RETURNING id",
      );
      const after = (await this.client.query<{ lsn: string }>(lsn)).rows[0].lsn;
      this.rows.push({ id: Number(rows[0].id), before, after });
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.loop;
    await this.client.end();
  }
}
