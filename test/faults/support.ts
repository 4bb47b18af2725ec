// The fault matrix's machinery: a seeded PRNG that picks every kill moment (so a failure can be
// replayed with PGMIGRATE_FAULT_SEED), the phase a migration is in as the control store shows
// it, restartable pgbench writers, the checks every run ends with, and the outcomes table.
import assert from "node:assert/strict";
import fs from "node:fs";
import type { Client } from "pg";
import type { MigrationOutputs } from "../../provider/spec/types";
import { publicationName, slotName, TARGET_BOOKKEEPING_SCHEMA } from "../../provider/pg/names";
import { compareDatabases, sequenceStates, type SequenceState } from "../support/checksum";
import { startPgbench, type PgbenchRun } from "../support/pgbench";
import type { PgServer } from "../support/postgres";
import { sequencePosition } from "../support/online";
import { until } from "../support/wait";
import { workerPids } from "../support/workers";

/** The seed when PGMIGRATE_FAULT_SEED is not set: runs are the same until someone asks otherwise. */
export const DEFAULT_SEED = 20261203;

/** mulberry32: a small PRNG whose whole state is one 32-bit number. */
export class Random {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer uniform in [min, max]. */
  between(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
}

/** The earliest moment every time: a missed phase is run again striking as soon as it is seen. */
export class Earliest extends Random {
  override between(min: number): number {
    return min;
  }
}

/** The seed of this run: PGMIGRATE_FAULT_SEED or DEFAULT_SEED. */
export function faultSeed(): number {
  const raw = process.env.PGMIGRATE_FAULT_SEED;
  if (raw === undefined || raw === "") return DEFAULT_SEED;
  const seed = Number(raw);
  if (!Number.isInteger(seed))
    throw new Error(`PGMIGRATE_FAULT_SEED must be an integer, got "${raw}"`);
  return seed;
}

/** Where a migration is, finer than its substate: the moments a fault is aimed at. */
export type Phase =
  "starting" | "pre-data" | "copy" | "post-data" | "after-copy" | "streaming" | "cutover" | "ended";

/** A phase read from the control store, with the database's own message (the cutover step). */
export interface PhaseReading {
  readonly phase: Phase;
  readonly message: string;
  /** The migration's latest event (within the cutover: its last completed step). */
  readonly lastEvent: string;
  readonly appliedChanges: number;
}

// One query over the control store: state, the database's step, the clone's events, tables left.
const PHASE_SQL = `
  SELECT m.state, m.substate, d.step, d.message, d.applied_changes::text AS applied,
         EXISTS (SELECT 1 FROM pgmigrate.events e WHERE e.migration = m.name
                  AND e.message LIKE 'schema (pre-data) restored%') AS predata,
         EXISTS (SELECT 1 FROM pgmigrate.events e WHERE e.migration = m.name
                  AND e.message LIKE 'indexes, constraints and triggers restored%') AS postdata,
         (SELECT e.message FROM pgmigrate.events e WHERE e.migration = m.name
           ORDER BY e.id DESC LIMIT 1) AS last_event,
         (SELECT count(*) FROM pgmigrate.tables t WHERE t.migration = m.name)::int AS tables,
         (SELECT count(*) FROM pgmigrate.tables t WHERE t.migration = m.name
           AND t.state <> 'completed')::int AS left
    FROM pgmigrate.migrations m JOIN pgmigrate.databases d ON d.migration = m.name
   WHERE m.name = $1`;

/** Reads a migration's phase over one connection of its own (fast polling, no pool). */
export class PhaseWatcher {
  private constructor(
    private readonly client: Client,
    private readonly name: string,
  ) {}

  static async open(target: PgServer, name: string): Promise<PhaseWatcher> {
    const client = await target.connect();
    client.on("error", () => undefined); // a restarted target: the next read reports it
    return new PhaseWatcher(client, name);
  }

  async read(): Promise<PhaseReading> {
    const { rows } = await this.client.query<{
      state: string;
      substate: string;
      step: string;
      message: string;
      applied: string;
      last_event: string | null;
      predata: boolean;
      postdata: boolean;
      tables: number;
      left: number;
    }>(PHASE_SQL, [this.name]);
    const r = rows[0];
    if (!r) return { phase: "starting", message: "", lastEvent: "", appliedChanges: 0 };
    const base = {
      message: r.message,
      lastEvent: r.last_event ?? "",
      appliedChanges: Number(r.applied),
    };
    if (["Succeeded", "Failed", "Canceled", "ValidationFailed"].includes(r.state)) {
      return { ...base, phase: "ended" };
    }
    if (r.substate === "CompletingMigration") return { ...base, phase: "cutover" };
    if (r.step === "streaming") return { ...base, phase: "streaming" };
    if (r.step !== "copying") return { ...base, phase: "starting" };
    if (!r.predata) return { ...base, phase: "pre-data" };
    if (r.tables === 0 || r.left > 0) return { ...base, phase: "copy" };
    return { ...base, phase: r.postdata ? "after-copy" : "post-data" };
  }

  /** Polls every `intervalMs` until `done(reading)`; fails after `timeoutMs` naming the last one. */
  async until(
    done: (reading: PhaseReading) => boolean,
    what: string,
    timeoutMs = 120_000,
    intervalMs = 20,
  ): Promise<PhaseReading> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const reading = await this.read();
      if (done(reading)) return reading;
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(reading)})`);
      }
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }

  async close(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }
}

/** pgbench on the source that can be started again after a restart killed it. */
export class Writers {
  private run?: PgbenchRun;

  constructor(
    private readonly source: PgServer,
    private readonly database: string,
    private readonly rate: number,
  ) {}

  /** Whether pgbench was started and not stopped since. */
  get running(): boolean {
    return this.run !== undefined;
  }

  start(): void {
    this.run = startPgbench(this.source, this.database, { clients: 2, rate: this.rate });
  }

  /** Stops pgbench (a restart may already have ended it); no transaction of it commits after. */
  async stop(): Promise<void> {
    const run = this.run;
    this.run = undefined;
    await run?.stop();
  }
}

/** One row of docs/reliability.md. */
export interface Outcome {
  readonly fault: string;
  readonly phase: string;
  /** Where the fault landed: the phase and step read just before it (and the delay chosen). */
  readonly moment: string;
  readonly state: string;
  readonly error: string | null;
  readonly dataCheck: string;
  readonly seconds: number;
}

/** Outcomes of this run, written as JSON to PGMIGRATE_FAULT_REPORT when set. */
export const outcomes: Outcome[] = [];

export function writeOutcomes(seed: number): void {
  const file = process.env.PGMIGRATE_FAULT_REPORT;
  if (!file) return;
  const report = { seed, date: new Date().toISOString(), outcomes };
  fs.writeFileSync(file, JSON.stringify(report, null, 2) + "\n");
}

/**
 * A Succeeded run's data: every table identical (row count and content hash), every sequence of
 * the source on the target and at least as far. Returns the data-check summary.
 */
export async function assertExact(
  source: PgServer,
  target: PgServer,
  database: string,
  done: MigrationOutputs,
): Promise<string> {
  assert.equal(done.error, null);
  assert.equal(done.state, "Succeeded");
  assert.equal(done.verification?.status, "Succeeded");
  const comparison = await compareDatabases(source, database, target, database);
  assert.deepEqual(comparison.differences, []);
  const [sourceSeqs, targetSeqs] = await Promise.all([
    sequenceStates(source, database),
    sequenceStates(target, database),
  ]);
  assert.deepEqual([...targetSeqs.keys()], [...sourceSeqs.keys()]);
  for (const [name, state] of sourceSeqs) {
    const copied = targetSeqs.get(name) as SequenceState;
    assert.ok(
      sequencePosition(copied) >= sequencePosition(state),
      `sequence ${name}: target ${copied.lastValue} behind source ${state.lastValue}`,
    );
  }
  const [rows] = await source.query<{ n: string }>(
    "SELECT (SELECT count(*) FROM pgbench_history) AS n",
    [],
    database,
  );
  return `exact: ${await tableCount(source, database)} tables (checksums), ${sourceSeqs.size} sequences; ${rows.n} history rows`;
}

async function tableCount(server: PgServer, database: string): Promise<number> {
  const [row] = await server.query<{ n: string }>(
    `SELECT count(*) AS n FROM pg_tables
      WHERE schemaname NOT IN ('pg_catalog', 'information_schema')`,
    [],
    database,
  );
  return Number(row.n);
}

/**
 * Whatever the outcome: no slot or publication of this migration on the source, no worker
 * serving it, no bookkeeping schema in the target database (when it still exists).
 */
export async function assertNothingLeft(
  source: PgServer,
  target: PgServer,
  name: string,
  database: string,
): Promise<void> {
  const slots = await source.query(
    "SELECT slot_name FROM pg_replication_slots WHERE slot_name = $1",
    [slotName(name, database)],
  );
  assert.deepEqual(slots, [], "a replication slot was left on the source");
  const publications = await source.query(
    "SELECT pubname FROM pg_publication WHERE pubname = $1",
    [publicationName(name)],
    database,
  );
  assert.deepEqual(publications, [], "a publication was left on the source");
  assert.deepEqual(workerPids(name), [], "a worker is still running");
  if (await databaseExists(target, database)) {
    const schemas = await target.query(
      "SELECT 1 FROM pg_namespace WHERE nspname = $1",
      [TARGET_BOOKKEEPING_SCHEMA],
      database,
    );
    assert.equal(
      schemas.length,
      0,
      `the ${TARGET_BOOKKEEPING_SCHEMA} schema was left in the target database`,
    );
  }
}

export async function databaseExists(server: PgServer, database: string): Promise<boolean> {
  const rows = await server.query("SELECT 1 FROM pg_database WHERE datname = $1", [database]);
  return rows.length > 0;
}

/** After a run, whatever happened: its slot and databases gone on both servers. */
export async function dropRun(
  source: PgServer,
  target: PgServer,
  name: string,
  database: string,
): Promise<void> {
  // A killed worker's walsender may still hold the slot for a moment: terminate, then drop.
  await until(
    async () => {
      const [slot] = await source.query<{ active_pid: number | null }>(
        "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
        [slotName(name, database)],
      );
      if (!slot) return true;
      if (slot.active_pid !== null) {
        await source.query("SELECT pg_terminate_backend($1)", [slot.active_pid]);
        return false;
      }
      await source.query("SELECT pg_drop_replication_slot($1)", [slotName(name, database)]);
      return true;
    },
    { what: `slot ${slotName(name, database)} to be dropped`, timeoutMs: 30_000 },
  );
  for (const server of [source, target]) {
    await server.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
  }
}
