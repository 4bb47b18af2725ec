// The fault matrix (issue 11): online migrations PG 15 → 15 under pgbench, each hit by one fault
// at a moment a seeded PRNG picks inside the aimed phase — SIGKILL of the worker in every phase,
// walsender terminated, source and target restarted while streaming and during the cutover, the
// target's disk full, cancels. Each run must end Succeeded with identical tables and sequences,
// or Failed/Canceled naming the cause, and leave no slot, publication, worker or bookkeeping.
// PGMIGRATE_FAULT_SEED replays a run; PGMIGRATE_FAULT_REPORT=file.json writes the outcomes.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { requestAction } from "../../provider/api/index";
import { slotName, TARGET_BOOKKEEPING_SCHEMA } from "../../provider/pg/names";
import { controlOf, terminateWalsender } from "../support/online";
import { startPostgres, type PgServer } from "../support/postgres";
import { until } from "../support/wait";
import { killWorkers } from "../support/workers";
import { PhaseMissed, runCase, tearDown, Run, type FaultCase } from "./run";
import { buildTemplate } from "./source";
import {
  databaseExists,
  Earliest,
  faultSeed,
  Random,
  writeOutcomes,
  type PhaseReading,
} from "./support";

/** Random delays inside each phase stay below these (ms): the phases last longer here. */
const WINDOW_MS = { "pre-data": 500, copy: 1_000, "post-data": 600, cutover: 600 };
/** Applied changes after which a streaming fault strikes: [min, max]. */
const STREAMING_CHANGES: [number, number] = [50, 800];

/** SIGKILL of the worker after a random delay inside `phase`. */
function killIn(phase: "pre-data" | "copy" | "post-data" | "cutover"): FaultCase {
  return {
    fault: "SIGKILL worker",
    phase,
    expect: "Succeeded",
    async inject(run, random) {
      const delay = random.between(0, WINDOW_MS[phase]);
      await run.enter(phase);
      const at = await run.stillIn(phase, delay);
      const pid = await run.killWorker();
      return `${delay} ms into ${phase} (${landing(at)}); killed ${pid}`;
    },
  };
}

/** Where a fault landed, in the migration's own words: its step and latest event. */
function landing(at: PhaseReading): string {
  const short = (text: string): string => text.replace(/ under the snapshot of slot .*/, "");
  return `${short(at.message)}; last event: ${short(at.lastEvent)}`;
}

/** Once `random` changes more than now were applied while streaming, runs `strike`. */
async function whileStreaming(
  run: Run,
  random: Random,
  strike: () => Promise<string>,
): Promise<string> {
  const now = (await run.watcher.read()).appliedChanges;
  const changes = random.between(...STREAMING_CHANGES);
  await run.watcher.until(
    (r) => r.appliedChanges >= now + changes,
    `${changes} more applied changes`,
    90_000,
    50,
  );
  const at = await run.stillIn("streaming", 0);
  return `after ${at.appliedChanges} applied changes: ${await strike()}`;
}

/** After a random delay inside the cutover, runs `strike`. */
async function duringCutover(
  run: Run,
  random: Random,
  strike: () => Promise<string>,
): Promise<string> {
  const delay = random.between(0, WINDOW_MS.cutover);
  await run.enter("cutover");
  const at = await run.stillIn("cutover", delay);
  return `${delay} ms into the cutover (${landing(at)}): ${await strike()}`;
}

/** Restarts one server (fast shutdown: every session and walsender is terminated). */
async function restart(run: Run, side: "source" | "target"): Promise<string> {
  await run[side].restart();
  // pgbench loses its connections to a restarted source: start it again (if still writing).
  if (side === "source" && run.writers.running) {
    await run.writers.stop();
    run.writers.start();
  }
  return `${side} restarted (pg_ctl restart -m fast)`;
}

describe("fault matrix", function () {
  const seed = faultSeed();
  let source: PgServer;
  let target: PgServer;
  let logDir: string;
  const names: string[] = [];
  let current: { c: FaultCase; run: Run } | undefined;

  before(async function () {
    this.timeout(300_000);
    console.log(`    fault seed ${seed} (PGMIGRATE_FAULT_SEED=${seed} replays these moments)`);
    [source, target] = await Promise.all([startPostgres(), startPostgres()]);
    logDir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-faults-"));
    await buildTemplate(source);
  });

  afterEach(async () => {
    // A failed teardown must not stop the matrix (mocha skips the rest after a hook failure);
    // the servers are destroyed at the end anyway.
    if (current) {
      await tearDown(current.c, current.run, (n) => killWorkers([n])).catch((err: unknown) =>
        console.log(`      teardown of ${current?.run.name}: ${(err as Error).message}`),
      );
    }
    current = undefined;
  });

  after(async () => {
    writeOutcomes(seed);
    killWorkers(names);
    await Promise.all([source?.stop(), target?.stop()]);
    if (logDir) fs.rmSync(logDir, { recursive: true, force: true });
  });

  const cases: FaultCase[] = [
    killIn("pre-data"),
    killIn("pre-data"),
    killIn("copy"),
    killIn("copy"),
    killIn("post-data"),
    killIn("post-data"),
    {
      fault: "SIGKILL worker",
      phase: "streaming",
      expect: "Succeeded",
      inject: (run, r) => whileStreaming(run, r, async () => `killed ${await run.killWorker()}`),
    },
    {
      fault: "SIGKILL worker",
      phase: "streaming",
      expect: "Succeeded",
      inject: (run, r) => whileStreaming(run, r, async () => `killed ${await run.killWorker()}`),
    },
    killIn("cutover"),
    killIn("cutover"),
    killAfterSlotDrop(),
    {
      fault: "walsender terminated",
      phase: "streaming",
      expect: "Succeeded",
      inject: (run, r) =>
        whileStreaming(run, r, async () => {
          const n = await terminateWalsender(run.source);
          assert.ok(n >= 1, "a walsender was terminated");
          return `terminated ${n} walsender(s)`;
        }),
    },
    {
      fault: "target restarted",
      phase: "streaming",
      expect: "Succeeded",
      inject: (run, r) => whileStreaming(run, r, () => restart(run, "target")),
    },
    {
      fault: "source restarted",
      phase: "streaming",
      expect: "Succeeded",
      inject: (run, r) => whileStreaming(run, r, () => restart(run, "source")),
    },
    {
      fault: "target restarted",
      phase: "cutover",
      expect: "Succeeded",
      inject: (run, r) => duringCutover(run, r, () => restart(run, "target")),
    },
    {
      fault: "source restarted",
      phase: "cutover",
      expect: "Succeeded",
      inject: (run, r) => duringCutover(run, r, () => restart(run, "source")),
    },
    diskFull(),
    {
      fault: "cancel",
      phase: "copy",
      expect: "Canceled",
      cause: /cancel requested/,
      async inject(run, random) {
        const delay = random.between(0, WINDOW_MS.copy);
        await run.enter("copy");
        const at = await run.stillIn("copy", delay);
        await requestAction(controlOf(run.spec), run.name, "cancel");
        await run.wait((o) => o.state === "Canceled" || o.state === "Failed");
        assert.ok(!(await databaseExists(run.target, run.database)), "target database dropped");
        return `${delay} ms into copy (${landing(at)})`;
      },
    },
    {
      fault: "cancel",
      phase: "streaming",
      expect: "Canceled",
      cause: /cancel requested/,
      inject: (run, r) =>
        whileStreaming(run, r, async () => {
          await requestAction(controlOf(run.spec), run.name, "cancel");
          await run.wait((o) => o.state === "Canceled" || o.state === "Failed");
          assert.ok(!(await databaseExists(run.target, run.database)), "target database dropped");
          return "cancel requested";
        }),
    },
  ];

  cases.forEach((c, i) => {
    const id = String(i + 1).padStart(2, "0");
    it(`${id}: ${c.fault} during ${c.phase} ends ${c.expect}`, async function () {
      this.timeout(300_000);
      if (c.needsRoot && process.getuid?.() !== 0) {
        console.log(`      ${c.fault}: needs root (mount); not run`);
        this.skip();
      }
      // One stream per case: a case replays alone with the same moments.
      const random = new Random((seed ^ Math.imul(i + 1, 0x9e3779b9)) >>> 0);
      const attempt = async (suffix: string, r: Random): Promise<void> => {
        const name = `fault-${id}${suffix}`;
        const run = new Run(source, target, name, `fault_${id}${suffix}`, logDir);
        names.push(name);
        current = { c, run };
        await runCase(c, run, r, (line) => console.log(line));
      };
      try {
        await attempt("", random);
      } catch (err) {
        if (!(err instanceof PhaseMissed) || !current) throw err;
        // A faster machine than the windows assume: strike as soon as the phase is seen.
        console.log(
          `      ${c.fault} / ${c.phase}: ${err.message}; run again at the earliest moment`,
        );
        await tearDown(current.c, current.run, (n) => killWorkers([n]));
        await attempt("b", new Earliest(0));
      }
    });
  });
});

/**
 * The target database on a 24 MB tmpfs tablespace (root only: mount): the copy runs out of
 * space and the migration fails naming it. Without root the case is reported as pending.
 */
function diskFull(): FaultCase {
  let mountPoint: string | undefined;
  const tablespace = "faults_small";
  return {
    fault: "target disk full",
    phase: "copy",
    needsRoot: true,
    expect: "Failed",
    cause: /No space left on device|could not extend file/,
    async prepare(run) {
      mountPoint = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-small-"));
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", mountPoint]);
      execFileSync("chown", ["postgres:postgres", mountPoint]);
      await run.target.query(`CREATE TABLESPACE ${tablespace} LOCATION '${mountPoint}'`);
      await run.target.query(`CREATE DATABASE "${run.database}" TABLESPACE ${tablespace}`);
    },
    async inject(run) {
      await run.enter("copy");
      return "the copy filled the 24 MB tablespace";
    },
    async cleanup(run) {
      await run.target.query(`DROP TABLESPACE IF EXISTS ${tablespace}`);
      if (mountPoint) {
        execFileSync("umount", [mountPoint]);
        fs.rmdirSync(mountPoint);
      }
    },
  };
}

/**
 * SIGKILL of the worker at the end of the cutover, after the slot was dropped and before the
 * migration is marked Completed (issue 11, finding 8): a transaction of the test holds a share
 * lock on the apply bookkeeping table, so the worker's DROP SCHEMA pgmigrate_apply waits; the
 * worker is killed while it waits, then the lock is released. Not random: the window is too short
 * to hit by chance.
 */
function killAfterSlotDrop(): FaultCase {
  return {
    fault: "SIGKILL worker while dropping the bookkeeping (after the slot drop)",
    phase: "cutover",
    expect: "Succeeded",
    async inject(run) {
      const holder = await run.target.connect(run.database);
      try {
        await holder.query("BEGIN");
        await holder.query(`LOCK TABLE ${TARGET_BOOKKEEPING_SCHEMA}.progress IN ACCESS SHARE MODE`);
        await run.enter("cutover");
        await until(
          async () => {
            const [row] = await run.target.query<{ n: string }>(
              `SELECT count(*) AS n FROM pg_stat_activity
                WHERE datname = $1 AND wait_event_type = 'Lock' AND query ILIKE 'DROP SCHEMA%'`,
              [run.database],
            );
            if (Number(row.n) > 0) return true;
            assert.notEqual((await run.watcher.read()).phase, "ended", "the cutover ended first");
            return false;
          },
          {
            what: "the worker's DROP SCHEMA to wait on the lock",
            timeoutMs: 120_000,
            intervalMs: 20,
          },
        );
        const slots = await run.source.query(
          "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
          [slotName(run.name, run.database)],
        );
        const at = await run.stillIn("cutover", 0);
        const pid = await run.killWorker();
        return `DROP SCHEMA ${TARGET_BOOKKEEPING_SCHEMA} waiting on a lock (slot ${slots.length > 0 ? "still there" : "already dropped"}; ${landing(at)}); killed ${pid}`;
      } finally {
        await holder.query("ROLLBACK").catch(() => undefined);
        await holder.end().catch(() => undefined);
      }
    },
  };
}
