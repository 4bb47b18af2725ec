// One fault run: a new source database, an online migration with a spawned (local) worker and
// pgbench writing, one fault injected at a moment the seeded PRNG picks inside the aimed phase,
// then the user's path to the end (cutover once streaming) and the checks every run ends with.
import assert from "node:assert/strict";
import {
  createMigration,
  isEnded,
  isSettled,
  requestAction,
  waitForMigration,
  type RuntimeOptions,
} from "../../provider/api/index";
import type { MigrationOutputs, MigrationSpec, MigrationState } from "../../provider/spec/types";
import { compareDatabases } from "../support/checksum";
import { controlOf, leaseHolderPid, onlineSpec } from "../support/online";
import type { PgServer } from "../support/postgres";
import { processGone } from "../support/workers";
import { cloneTemplate } from "./source";
import {
  assertExact,
  assertNothingLeft,
  dropRun,
  outcomes,
  PhaseWatcher,
  Writers,
  type Phase,
  type PhaseReading,
  type Random,
} from "./support";

/** pgbench's rate on the source during every run (transactions per second, 2 clients). */
const WRITE_RATE = 40;

/** What a case does to a run and what it must end as. */
export interface FaultCase {
  readonly fault: string;
  /** The phase the fault is aimed at; the injection checks it landed there. */
  readonly phase: Exclude<Phase, "starting" | "after-copy" | "ended">;
  readonly expect: Extract<MigrationState, "Succeeded" | "Failed" | "Canceled">;
  /** For Failed/Canceled: what the error (or the events) must name. */
  readonly cause?: RegExp;
  /** Needs root (mount): reported as pending otherwise. */
  readonly needsRoot?: boolean;
  /** Before the migration is created (a pre-created target database, say). */
  prepare?(run: Run): Promise<void>;
  /** Waits for the moment and injects the fault; returns where it landed. */
  inject(run: Run, random: Random): Promise<string>;
  /** After the checks, whatever happened (unmount, drop a tablespace). */
  cleanup?(run: Run): Promise<void>;
}

/**
 * The fault would have struck outside its phase (the machine was faster than the window
 * assumed): nothing about the product is known from such a run, so it is run again at once.
 */
export class PhaseMissed extends Error {}

/** The servers, names and handles of one run. */
export class Run {
  readonly spec: MigrationSpec;
  readonly runtime: RuntimeOptions;
  readonly writers: Writers;
  watcher!: PhaseWatcher;

  constructor(
    readonly source: PgServer,
    readonly target: PgServer,
    readonly name: string,
    readonly database: string,
    logDir: string,
  ) {
    this.spec = onlineSpec(source, target, name, [database], { verify: "checksum" });
    this.runtime = { kind: "local", logDir };
    this.writers = new Writers(source, database, WRITE_RATE);
  }

  /** Waits as `pgmigrate ... --wait` does: a dead worker is started again while polling. */
  wait(done: (o: MigrationOutputs) => boolean, timeoutMs = 150_000): Promise<MigrationOutputs> {
    return waitForMigration(controlOf(this.spec), this.name, done, {
      timeoutMs,
      spec: this.spec,
      runtime: this.runtime,
    });
  }

  /** Polls the phase until `phase` (or later); fails when it was missed. */
  async enter(phase: Phase): Promise<PhaseReading> {
    const reading = await this.watcher.until(
      (r) => r.phase === phase || r.phase === "ended" || later(r.phase, phase),
      `phase ${phase}`,
    );
    if (reading.phase !== phase)
      throw new PhaseMissed(`phase ${phase} was over before it was seen`);
    return reading;
  }

  /** After `delayMs` in the current phase: the reading, which must still be `phase`. */
  async stillIn(phase: Phase, delayMs: number): Promise<PhaseReading> {
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    const reading = await this.watcher.read();
    if (reading.phase !== phase) {
      throw new PhaseMissed(`the fault would have landed in ${reading.phase}, not in ${phase}`);
    }
    return reading;
  }

  /** Pid of the worker serving the migration now. */
  async workerPid(): Promise<number> {
    const pid = await leaseHolderPid(this.target, this.name);
    assert.ok(pid, "a worker holds the lease");
    return pid;
  }

  /** SIGKILLs the serving worker and waits until it is gone. */
  async killWorker(): Promise<number> {
    const pid = await this.workerPid();
    process.kill(pid, "SIGKILL");
    await processGone(pid, `worker ${pid} to die`);
    return pid;
  }
}

const ORDER: readonly Phase[] = [
  "starting",
  "pre-data",
  "copy",
  "post-data",
  "after-copy",
  "streaming",
  "cutover",
  "ended",
];

function later(seen: Phase, aimed: Phase): boolean {
  return ORDER.indexOf(seen) > ORDER.indexOf(aimed);
}

/**
 * Runs `c` on database `database` of `source` migrated to `target` under migration `name`,
 * records its outcome, and leaves both servers as before (databases dropped, worker killed).
 */
export async function runCase(
  c: FaultCase,
  run: Run,
  random: Random,
  log: (line: string) => void,
): Promise<void> {
  const started = Date.now();
  const { source, target, name, database } = run;
  let moment = "not injected";
  let recorded = false;
  try {
    await cloneTemplate(source, database);
    await c.prepare?.(run);
    run.watcher = await PhaseWatcher.open(target, name);
    await createMigration(run.spec, run.runtime);
    run.writers.start();
    const copyPhase = ["pre-data", "copy", "post-data"].includes(c.phase);
    if (copyPhase) moment = await c.inject(run, random);

    let o = await run.wait(isSettled);
    if (!isEnded(o.state)) {
      // Some changes streamed before anything else happens.
      await run.watcher.until((r) => r.appliedChanges >= 50, "50 applied changes", 60_000, 100);
      if (c.phase === "streaming") moment = await c.inject(run, random);
      o = await run.wait(isSettled);
    }
    if (!isEnded(o.state)) {
      await run.writers.stop();
      await requestAction(controlOf(run.spec), name, "cutover");
      if (c.phase === "cutover") moment = await c.inject(run, random);
    }
    await run.writers.stop();
    const done = await run.wait((x) => isEnded(x.state), 180_000);
    log(
      `      ${c.fault} / ${c.phase}: ${moment} → ${done.state}${done.error ? `: ${done.error}` : ""}`,
    );

    // Every check runs, so a failing case says everything that is wrong with it.
    const problems: string[] = [];
    const check = async (what: string, body: () => Promise<string | void>): Promise<string> => {
      try {
        return (await body()) ?? "";
      } catch (err) {
        problems.push(`${what}: ${err instanceof Error ? err.message.split("\n")[0] : err}`);
        return "";
      }
    };
    await check("state", async () => {
      assert.equal(done.state, c.expect, `ended ${done.state}: ${done.error ?? "no error"}`);
    });
    const dataCheck = await check("data", async () => {
      if (done.state === "Succeeded") return assertExact(source, target, database, done);
      if (c.expect === "Succeeded") {
        // Not a pass either way; says whether the data itself was complete.
        const { differences } = await compareDatabases(source, database, target, database);
        return differences.length === 0
          ? "tables identical nevertheless"
          : `tables differ: ${differences.slice(0, 3).join("; ")}`;
      }
      const said = [done.error ?? "", ...done.events.map((e) => e.message)].join(" | ");
      assert.match(said, c.cause as RegExp);
      return `${done.state}: ${(said.match(c.cause as RegExp) ?? [""])[0]}`;
    });
    await check("left behind", () => assertNothingLeft(source, target, name, database));
    outcomes.push({
      fault: c.fault,
      phase: c.phase,
      moment,
      state: done.state,
      error: done.error,
      dataCheck: problems.length > 0 ? `FAILED: ${problems.join("; ")}; ${dataCheck}` : dataCheck,
      seconds: Math.round((Date.now() - started) / 1000),
    });
    recorded = true;
    if (problems.length > 0) assert.fail(problems.join("\n"));
  } catch (err) {
    if (recorded || err instanceof PhaseMissed) throw err;
    outcomes.push({
      fault: c.fault,
      phase: c.phase,
      moment,
      state: "did not end",
      error: null,
      dataCheck: `FAILED: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`,
      seconds: Math.round((Date.now() - started) / 1000),
    });
    throw err;
  } finally {
    await run.writers.stop().catch(() => undefined);
    await run.watcher?.close();
  }
}

/** Tears a run down whatever happened: its workers, slot and databases. */
export async function tearDown(
  c: FaultCase,
  run: Run,
  kill: (name: string) => void,
): Promise<void> {
  kill(run.name);
  try {
    await dropRun(run.source, run.target, run.name, run.database);
  } finally {
    await c.cleanup?.(run);
  }
}
