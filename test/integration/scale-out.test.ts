// Scale-out (issue 16): several `pgmigrate runtime` processes without a migration name (a pool)
// share one migration of runtime kind "pool". The coordinator (the runtime holding the
// migration's lease) holds each database's snapshot and applies its change stream; the tables
// are work units any runtime claims. Runtimes are separate processes; faults are real SIGKILLs
// and SIGSTOPs. One table's copy is held mid-COPY deterministically: its CHECK constraint takes,
// at one row, a shared advisory lock the test holds on the target.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Client } from "pg";
import { createMigration, isEnded, requestAction } from "../../provider/api/index";
import { waitForMigration } from "../../provider/api/wait";
import { controlUrl } from "../../provider/runtime/spawn";
import type { MigrationOutputs, MigrationSpec } from "../../provider/spec/types";
import { compareDatabases } from "../support/checksum";
import { runCli } from "../support/cli";
import { controlOf, leaseHolderPid } from "../support/online";
import { startPostgres, type PgServer } from "../support/postgres";
import { endpointOf, specOf } from "../support/spec";
import { until } from "../support/wait";
import { processGone } from "../support/workers";

const RUNTIME_MAIN = path.join(__dirname, "..", "..", "provider", "runtime", "main.js");
const TABLES = 20;
const LOCK_KEY = 616_161;
const STALL_AT_ROW = 200;

/** Twenty tables of 300 to 6,000 rows; in `held`, t01's CHECK stalls its copy at one row. */
function schema(held: boolean): string {
  const tables = Array.from({ length: TABLES }, (_, i) => {
    const name = `t${String(i + 1).padStart(2, "0")}`;
    const check = held && i === 0 ? " CHECK (public.stall_at(id))" : "";
    return `CREATE TABLE public.${name} (id int PRIMARY KEY${check}, label text NOT NULL, amount numeric(12,2), at timestamptz);
      INSERT INTO public.${name} SELECT g, md5(g::text) || repeat('x', g % 50), g * 1.25, '2026-01-01'::timestamptz + g * interval '1 minute'
        FROM generate_series(1, ${300 * (i + 1)}) g;`;
  });
  return `
    CREATE FUNCTION public.stall_at(id int) RETURNS boolean LANGUAGE plpgsql AS $$
    BEGIN
      IF id = ${STALL_AT_ROW} THEN PERFORM pg_advisory_xact_lock_shared(${LOCK_KEY}); END IF;
      RETURN true;
    END $$;
    ${tables.join("\n")}
    -- No key: a change applied twice would show as a second row.
    CREATE TABLE public.log (at timestamptz NOT NULL, what text NOT NULL);
    ALTER TABLE public.log REPLICA IDENTITY FULL;
    ANALYZE;`;
}

interface Runtime {
  readonly child: ChildProcess;
  readonly pid: number;
  output(): string;
}

type UnitRow = {
  id: string;
  database: string;
  kind: string;
  snapshot: string | null;
  table: string | null;
  state: string;
  owner: string | null;
  history: string[];
  target_pid: number | null;
};

describe("scale-out: a pool of runtimes shares a migration's work", function () {
  const suffix = randomBytes(3).toString("hex");
  let source: PgServer;
  let target: PgServer;
  const runtimes: Runtime[] = [];
  let holder: Client | undefined;

  before(async () => {
    [source, target] = await Promise.all([startPostgres(), startPostgres()]);
  });

  // No runtime of one test may serve the next one's migration.
  afterEach(async function () {
    if (this.currentTest?.state === "failed") {
      for (const r of runtimes) console.log(`--- runtime ${r.pid}\n${r.output()}`);
      const rows = await target.query(
        "SELECT id, database, kind, unit -> 'unit' -> 'table' ->> 'name' AS t, state, owner, history, target_pid, claims, error FROM pgmigrate.work_units WHERE state <> 'done' ORDER BY id",
      );
      console.log(JSON.stringify(rows, null, 1));
      console.log(JSON.stringify(await target.query("SELECT * FROM pgmigrate.runtimes")));
      console.log(
        JSON.stringify(
          await target.query(
            "SELECT pid, datname, state, wait_event, query FROM pg_stat_activity WHERE datname LIKE 'pool%'",
          ),
        ),
      );
    }
    await release();
    for (const r of runtimes.splice(0)) {
      try {
        process.kill(r.pid, "SIGCONT");
        process.kill(r.pid, "SIGKILL");
      } catch {
        continue; // already gone
      }
      await processGone(r.pid, "a runtime of the test");
    }
  });

  after(async () => {
    for (const r of runtimes) {
      try {
        process.kill(r.pid, "SIGCONT");
        process.kill(r.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await holder?.end().catch(() => undefined);
    await Promise.all([source?.stop(), target?.stop()]);
  });

  /** A pool runtime (`runtime --server URL`, no migration name) as a process of its own. */
  /** `env` overrides the passwords and adds variables; an undefined value removes one. */
  function startRuntime(extra: string[] = [], env: NodeJS.ProcessEnv = {}): Runtime {
    const url = controlUrl(endpointOf(target), "postgres");
    const childEnv: NodeJS.ProcessEnv = {
      ...process.env,
      PGMIGRATE_TARGET_PASSWORD: target.password,
      PGMIGRATE_SOURCE_PASSWORD: source.password,
      ...env,
    };
    for (const [key, value] of Object.entries(childEnv)) {
      if (value === undefined) delete childEnv[key];
    }
    const child = spawn(process.execPath, [RUNTIME_MAIN, "runtime", "--server", url, ...extra], {
      env: childEnv,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout?.on("data", (c: Buffer) => (output += c.toString()));
    child.stderr?.on("data", (c: Buffer) => (output += c.toString()));
    assert.ok(child.pid, "runtime started");
    const runtime = { child, pid: child.pid, output: () => output };
    runtimes.push(runtime);
    return runtime;
  }

  /**
   * Creates `spec` as a pool migration coordinated by a runtime that copies nothing itself
   * (`--copy-units 0`), so which runtime holds what is known; resolves once it holds the lease.
   */
  async function createCoordinated(spec: MigrationSpec): Promise<Runtime> {
    const coordinator = startRuntime(["--copy-units", "0"]);
    await createMigration(spec, { kind: "pool" });
    await until(
      async () => (await leaseHolderPid(target, spec.migrationName)) === coordinator.pid,
      {
        what: "the first runtime coordinating the migration",
      },
    );
    return coordinator;
  }

  async function kill(runtime: Runtime, what: string): Promise<void> {
    process.kill(runtime.pid, "SIGKILL");
    await processGone(runtime.pid, what);
  }

  async function prepare(databases: string[], heldIn: string): Promise<void> {
    for (const database of databases) {
      await source.query(`CREATE DATABASE ${database}`);
      await source.query(schema(database === heldIn), [], database);
    }
    // Empty, so the test can hold the lock in it before the copy starts.
    await target.query(`CREATE DATABASE ${heldIn}`);
  }

  async function hold(database: string): Promise<void> {
    holder = await target.connect(database);
    holder.on("error", () => undefined); // ended with a dropped database
    await holder.query("SELECT pg_advisory_lock($1)", [LOCK_KEY]);
  }

  /** Lets the held copy go (the connection may already be gone with a dropped database). */
  async function release(): Promise<void> {
    await holder?.query("SELECT pg_advisory_unlock($1)", [LOCK_KEY]).catch(() => undefined);
    await holder?.end().catch(() => undefined);
    holder = undefined;
  }

  async function units(name: string): Promise<UnitRow[]> {
    return target.query<UnitRow>(
      `SELECT id::text, database, kind, snapshot, unit -> 'unit' -> 'table' ->> 'name' AS table,
              state, owner, history, target_pid
         FROM pgmigrate.work_units u WHERE migration = $1 ORDER BY u.id`,
      [name],
    );
  }

  function runtimeIdOf(runtime: Runtime, rows: readonly UnitRow[]): string | undefined {
    return rows
      .flatMap((u) => u.history)
      .find((id) => id.split(":").at(-2) === String(runtime.pid));
  }

  function pidOfRuntimeId(id: string): number {
    return Number(id.split(":").at(-2));
  }

  /** The held unit (t01 of `database`, newest snapshot) copying and waiting at the lock. */
  async function heldAtLock(name: string, database: string, claims: number): Promise<UnitRow> {
    return until(
      async () => {
        const held = (await units(name)).filter(
          (u) => u.database === database && u.table === "t01" && u.state === "running",
        );
        const unit = held.at(-1);
        if (!unit?.target_pid || unit.history.length !== claims) return undefined;
        const [waiting] = await target.query<{ n: string }>(
          `SELECT count(*) AS n FROM pg_stat_activity
            WHERE pid = $1 AND wait_event_type = 'Lock' AND wait_event = 'advisory'`,
          [unit.target_pid],
        );
        return waiting.n === "1" ? unit : undefined;
      },
      { what: `the copy of ${database}.t01 waiting at the lock`, timeoutMs: 60_000 },
    );
  }

  async function assertSame(databases: string[]): Promise<void> {
    for (const database of databases) {
      const c = await compareDatabases(source, database, target, database);
      assert.ok(c.equal, `${database}: ${c.differences.join("; ")}`);
    }
  }

  it("offline: units spread over the runtimes; a killed unit runtime's unit is claimed again; a killed snapshot holder restarts the copy from a new snapshot; exact", async () => {
    const databases = ["pool_a", "pool_b"];
    await prepare(databases, "pool_a");
    const name = `pool-off-${suffix}`;
    const spec: MigrationSpec = specOf(source, target, {
      migrationName: name,
      databases,
      parallelism: { tables: 2 },
    });
    await hold("pool_a");
    const coordinator = await createCoordinated(spec);
    const workers = [startRuntime(), startRuntime()];

    // Both unit runtimes copy tables while t01 of pool_a is held.
    await until(
      async () => {
        const done = (await units(name)).filter((u) => u.kind === "copy" && u.state === "done");
        return new Set(done.map((u) => u.owner)).size >= 2 && done.length >= 10;
      },
      { what: "copy units done by two runtimes", timeoutMs: 60_000 },
    );
    const first = await heldAtLock(name, "pool_a", 1);
    const firstOwner = workers.find((w) => first.owner?.split(":").at(-2) === String(w.pid));
    assert.ok(firstOwner, `held by a unit runtime: ${first.owner}`);
    const survivor = workers.find((w) => w !== firstOwner) as Runtime;
    const snapshot = await target.query<UnitRow>(
      "SELECT owner, state FROM pgmigrate.work_units WHERE migration = $1 AND kind = 'snapshot' AND database = 'pool_a'",
      [name],
    );
    assert.equal(snapshot[0]?.state, "running");
    assert.equal(pidOfRuntimeId(snapshot[0].owner as string), coordinator.pid);

    // SIGKILL the runtime copying t01: the survivor claims the unit, ends the dead runtime's
    // target backend (its transaction rolls back) and copies the table again.
    await kill(firstOwner, "the runtime holding t01");
    const again = await heldAtLock(name, "pool_a", 2);
    assert.equal(again.id, first.id, "the same unit, claimed again");
    assert.equal(pidOfRuntimeId(again.owner as string), survivor.pid);
    assert.deepEqual(again.history, [first.owner, again.owner]);
    const [oldBackend] = await target.query<{ n: string }>(
      "SELECT count(*) AS n FROM pg_stat_activity WHERE pid = $1",
      [first.target_pid],
    );
    assert.equal(oldBackend.n, "0", "the dead runtime's target backend was ended");

    // SIGKILL the coordinator, which holds the snapshot: the survivor takes the migration over,
    // cancels the units of the dead snapshot and copies from a new one.
    await kill(coordinator, "the coordinator");
    await until(
      async () => (await units(name)).some((u) => u.id === first.id && u.state === "canceled"),
      { what: "the held unit of the dead snapshot canceled" },
    );
    await release();
    const end = await waitForMigration(controlOf(spec), name, (o) => isEnded(o.state), {
      timeoutMs: 120_000,
    });
    assert.equal(end.state, "Succeeded", end.error ?? "");
    await assertSame(databases);

    const all = await units(name);
    const copies = all.filter((u) => u.kind === "copy" && u.database === "pool_a");
    const snapshots = [...new Set(copies.map((u) => u.snapshot))];
    assert.ok(snapshots.length >= 2, `snapshots of pool_a: ${snapshots.join(", ")}`);
    const newest = copies.filter((u) => u.snapshot === copies.at(-1)?.snapshot);
    assert.equal(newest.length, TABLES + 1);
    assert.ok(
      newest.every((u) => u.state === "done"),
      JSON.stringify(copies.map((u) => [u.id, u.snapshot, u.table, u.state, u.history])),
    );
    assert.ok(
      copies.some((u) => u.snapshot === snapshots[0] && u.state === "canceled"),
      "units of the first snapshot canceled",
    );
    // Every copy unit of the last snapshot of each database is done by a live runtime.
    assert.ok(runtimeIdOf(survivor, all));
    const events = await target.query<{ message: string }>(
      "SELECT message FROM pgmigrate.events WHERE migration = $1",
      [name],
    );
    assert.ok(
      events.some((e) => /starting it again from a new snapshot/.test(e.message)),
      "the copy restarted from a new snapshot",
    );
    // The dead runtimes are forgotten by the survivor.
    const live = await target.query<{ pid: number }>("SELECT pid FROM pgmigrate.runtimes");
    assert.ok(!live.some((r) => r.pid === coordinator.pid || r.pid === firstOwner.pid));
    process.kill(survivor.pid, "SIGTERM");
    await processGone(survivor.pid, "the survivor stopping");
  });

  it("online: one stream per database; a killed stream owner is succeeded exactly once; a paused one past its lease stops without writing; cutover exact, no slot left", async () => {
    const databases = ["pool_c", "pool_d"];
    await prepare(databases, "pool_c");
    const name = `pool-on-${suffix}`;
    const spec = specOf(source, target, {
      migrationName: name,
      databases,
      mode: "Online",
      verify: "checksum",
      parallelism: { tables: 2 },
    });
    const first = await createCoordinated(spec);
    const others = [startRuntime(), startRuntime()];
    await waitForMigration(controlOf(spec), name, (o) => o.state === "WaitingForUserAction", {
      timeoutMs: 120_000,
    });
    let rows = await units(name);
    const copiedBy = new Set(
      rows.filter((u) => u.kind === "copy" && u.state === "done").map((u) => u.owner),
    );
    assert.ok(copiedBy.size >= 2, `copied by ${[...copiedBy].join(", ")}`);
    const streams = rows.filter((u) => u.kind === "stream" && u.state === "running");
    assert.deepEqual(streams.map((u) => u.database).sort(), databases);
    assert.ok(streams.every((u) => pidOfRuntimeId(u.owner as string) === first.pid));

    // What the user sees: the runtimes serving it (show, outputs) and who copied each unit.
    const env = { PGMIGRATE_TARGET_PASSWORD: target.password };
    const server = controlUrl(endpointOf(target), "postgres");
    const shown = await runCli(
      ["show", "--server", server, "--migration-name", name, "--units"],
      env,
    );
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^Runtimes: +3 serving$/m);
    assert.match(
      shown.stdout,
      new RegExp(
        `^  \\S+ pid ${first.pid} \\(coordinator\\): heartbeat [\\d.]+ s ago, 0 unit\\(s\\) copied, running pool_c: stream; pool_d: stream$`,
        "m",
      ),
    );
    assert.match(shown.stdout, /^Units: +42 copy unit\(s\): 42 done, 0 running, 0 pending$/m);
    for (const r of others) {
      assert.match(
        shown.stdout,
        new RegExp(`^  pool_[cd]: public\\.t\\d\\d +done +\\S+ pid ${r.pid}$`, "m"),
      );
    }
    const json = await runCli(
      ["show", "--server", server, "--migration-name", name, "--json"],
      env,
    );
    const outputs = JSON.parse(json.stdout) as MigrationOutputs;
    assert.deepEqual(
      outputs.runtimes.map((r) => [r.pid, r.coordinator]).sort(),
      [[first.pid, true], ...others.map((r) => [r.pid, false])].sort(),
    );
    assert.equal(
      outputs.runtimes.reduce((n, r) => n + r.unitsDone, 0),
      2 * (TABLES + 1),
    );
    assert.ok(!json.stdout.includes(target.password) && !shown.stdout.includes(target.password));

    // Writes all along: keyed updates and inserts into the keyless log of both databases.
    let writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing) {
        for (const database of databases) {
          await source.query(
            `UPDATE public.t03 SET amount = amount + 1 WHERE id = ${(written % 900) + 1};
             INSERT INTO public.log VALUES (now(), 'write ${written}');`,
            [],
            database,
          );
        }
        written++;
        await new Promise((resolve) => setTimeout(resolve, 10)); // pacing, not synchronization
      }
    })();

    /** The runtime applying both streams, once it is not `previous`. */
    const streamOwner = async (previous: Runtime): Promise<Runtime> =>
      until(
        async () => {
          rows = await units(name);
          const live = rows.filter((u) => u.kind === "stream" && u.state === "running");
          if (live.length !== databases.length) return undefined;
          const pids = new Set(live.map((u) => pidOfRuntimeId(u.owner as string)));
          const [pid] = [...pids];
          if (pids.size !== 1 || pid === previous.pid) return undefined;
          return others.find((r) => r.pid === pid);
        },
        { what: "another runtime applying the streams", timeoutMs: 90_000 },
      );

    // SIGKILL the stream owner: another runtime takes over and resumes from the stored positions.
    await until(() => written > 50, { what: "writes before the kill" });
    await kill(first, "the stream owner");
    const second = await streamOwner(first);

    // SIGSTOP the new owner past its lease: the third takes over; resumed, the paused one must
    // stop without writing (its lease and the target's applied position moved on).
    process.kill(second.pid, "SIGSTOP");
    const third = await streamOwner(second);
    process.kill(second.pid, "SIGCONT");
    await until(
      () => /taken over by another worker|no longer holds the lease/.test(second.output()),
      {
        what: "the paused runtime noticing it lost the migration",
        timeoutMs: 30_000,
      },
    );
    writing = false;
    await writer;

    await requestAction(controlOf(spec), name, "cutover");
    const end = await waitForMigration(controlOf(spec), name, (o) => isEnded(o.state), {
      timeoutMs: 120_000,
    });
    assert.equal(end.state, "Succeeded", end.error ?? "");
    await assertSame(databases);
    for (const database of databases) {
      const [log] = await target.query<{ n: string }>(
        "SELECT count(*) AS n FROM public.log",
        [],
        database,
      );
      assert.equal(Number(log.n), written, `${database}: every change applied exactly once`);
    }
    const slots = await source.query("SELECT slot_name FROM pg_replication_slots");
    assert.deepEqual(slots, []);
    assert.ok(third.pid !== second.pid);
    for (const r of others) process.kill(r.pid, "SIGTERM");
    await Promise.all(others.map((r) => processGone(r.pid, "runtime stopping")));
  });
  it("a runtime that cannot connect leaves its units to the others; with none taking them the coordinator says so; one without a source password uses its password file", async () => {
    const database = "pool_e";
    await source.query(`CREATE DATABASE ${database}`);
    await source.query(schema(false), [], database);
    const name = `pool-auth-${suffix}`;
    const spec = specOf(source, target, { migrationName: name, databases: [database] });
    await createCoordinated(spec);
    const wrong = startRuntime([], { PGMIGRATE_SOURCE_PASSWORD: "not-the-source-password" });
    await until(() => /this runtime cannot connect/.test(wrong.output()), {
      what: "the misconfigured runtime giving its unit back",
    });
    assert.ok(!wrong.output().includes(source.password));
    const [warned] = await until(
      () =>
        target.query<{ message: string }>(
          "SELECT message FROM pgmigrate.events WHERE migration = $1 AND level = 'warning' AND message LIKE '%wait for a runtime%'",
          [name],
        ),
      { what: "the coordinator's warning", timeoutMs: 60_000, accept: (rows) => rows.length > 0 },
    );
    assert.match(
      warned.message,
      /^\d+ copy unit\(s\) wait for a runtime: none of the pool is taking them/,
    );
    let rows = await units(name);
    assert.ok(rows.filter((u) => u.kind === "copy").every((u) => u.state === "pending"));
    assert.ok(
      rows.every((u) => u.kind !== "copy" || u.history.length <= 2),
      "no claim loop",
    );

    // A runtime given no source password finds it in its password file (one pool, many sources).
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-pool-pgpass-"));
    const pgpass = path.join(dir, "pgpass");
    fs.writeFileSync(
      pgpass,
      `${source.host}:${source.port}:*:${source.user}:${source.password}\n`,
      { mode: 0o600 },
    );
    const good = startRuntime([], { PGMIGRATE_SOURCE_PASSWORD: undefined, PGPASSFILE: pgpass });
    const end = await waitForMigration(controlOf(spec), name, (o) => isEnded(o.state), {
      timeoutMs: 120_000,
    }).finally(() => fs.rmSync(dir, { recursive: true, force: true }));
    assert.equal(end.state, "Succeeded", end.error ?? "");
    await assertSame([database]);
    assert.ok(!good.output().includes(source.password));
    rows = await units(name);
    const copies = rows.filter((u) => u.kind === "copy");
    assert.equal(copies.length, TABLES + 1);
    assert.ok(
      copies.every((u) => u.state === "done" && pidOfRuntimeId(u.owner as string) === good.pid),
    );
  });
  it("a unit committed by a runtime that died before marking it done is not copied again", async () => {
    const database = "pool_f";
    await source.query(`CREATE DATABASE ${database}`);
    await source.query(schema(false), [], database);
    const name = `pool-commit-${suffix}`;
    // Small tables split into ctid ranges: a range copied twice would show as extra rows.
    const spec = specOf(source, target, {
      migrationName: name,
      databases: [database],
      parallelism: { tables: 2, splitTablesLargerThan: 64 * 1024 },
    });
    await createCoordinated(spec);
    const pauseDir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-unit-pause-"));
    try {
      const paused = startRuntime([], {
        PGMIGRATE_TEST_PAUSE_AT: "unit-committed",
        PGMIGRATE_TEST_PAUSE_DIR: pauseDir,
      });
      const reached = path.join(pauseDir, "unit-committed.reached");
      await until(() => fs.existsSync(reached), { what: "a unit committed and held there" });
      await kill(paused, "the runtime holding committed units");
      const successor = startRuntime();
      const end = await waitForMigration(controlOf(spec), name, (o) => isEnded(o.state), {
        timeoutMs: 120_000,
      });
      assert.equal(end.state, "Succeeded", end.error ?? "");
      await assertSame([database]);
      const settled = (await units(name)).filter(
        (u) => u.kind === "copy" && u.history.length === 2,
      );
      assert.ok(settled.length >= 1, "units the dead runtime had committed were claimed again");
      assert.ok(
        settled.every((u) => u.state === "done" && pidOfRuntimeId(u.history[0]) === paused.pid),
      );
      assert.match(successor.output(), /committed by its previous runtime before it stopped/);
      const ranges = await target.query<{ n: string }>(
        `SELECT count(*) AS n FROM pgmigrate.work_units
          WHERE migration = $1 AND kind = 'copy' AND unit -> 'unit' -> 'range' IS NOT NULL`,
        [name],
      );
      assert.ok(Number(ranges[0].n) > TABLES, `ranges: ${ranges[0].n}`);
    } finally {
      fs.rmSync(pauseDir, { recursive: true, force: true });
    }
  });
  it("a unit that fails on its runtime fails the migration naming the table; the other units are canceled", async () => {
    const database = "pool_g";
    await source.query(`CREATE DATABASE ${database}`);
    await source.query(
      `CREATE FUNCTION public.refuse_here(id int) RETURNS boolean LANGUAGE plpgsql AS $$
       BEGIN
         IF current_setting('app.refuse_copy', true) = 'on' AND id = 7 THEN
           RAISE EXCEPTION 'row % refused on this server', id;
         END IF;
         RETURN true;
       END $$;
       CREATE TABLE public.fragile (id int PRIMARY KEY CHECK (public.refuse_here(id)), v text);
       INSERT INTO public.fragile SELECT g, 'v' || g FROM generate_series(1, 100) g;
       ${Array.from({ length: 8 }, (_, i) => `CREATE TABLE public.s${i} (id int PRIMARY KEY); INSERT INTO public.s${i} SELECT generate_series(1, 2000);`).join("\n")}`,
      [],
      database,
    );
    // Only sessions on the target see the setting: the copy into public.fragile fails there.
    await target.query(`CREATE DATABASE ${database}`);
    await target.query(`ALTER DATABASE ${database} SET app.refuse_copy = 'on'`);
    const name = `pool-fail-${suffix}`;
    const spec = specOf(source, target, { migrationName: name, databases: [database] });
    startRuntime();
    startRuntime();
    await createMigration(spec, { kind: "pool" });
    const end = await waitForMigration(controlOf(spec), name, (o) => isEnded(o.state), {
      timeoutMs: 120_000,
    });
    assert.equal(end.state, "Failed");
    assert.match(end.error ?? "", /public\.fragile[\s\S]*row 7 refused on this server/);
    const rows = await units(name);
    const failed = rows.filter((u) => u.state === "failed");
    assert.deepEqual(
      failed.map((u) => u.table),
      ["fragile"],
    );
    assert.ok(
      rows.every((u) => u.state !== "running" && u.state !== "pending"),
      JSON.stringify(rows),
    );
    const [code] = await target.query<{ error_code: string }>(
      "SELECT error_code FROM pgmigrate.work_units WHERE migration = $1 AND state = 'failed'",
      [name],
    );
    assert.equal(code.error_code, "P0001");
    const [table] = await target.query<{ state: string }>(
      "SELECT state FROM pgmigrate.tables WHERE migration = $1 AND table_name = 'fragile'",
      [name],
    );
    assert.equal(table.state, "errored");
  });
});
