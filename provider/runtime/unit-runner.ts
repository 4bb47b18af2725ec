// The work-unit side of a runtime: registers the process in pgmigrate.runtimes, heartbeats
// (and touches the heartbeat file a container's liveness probe reads), and claims the copy units
// of pool migrations (or of its one named migration) while the coordinator of each holds the
// snapshot. A unit is one table or range, copied in one target transaction fenced twice: its
// transaction id is recorded (owner-checked) just before COMMIT, and whoever claims the unit
// again first ends the previous owner's target backend, then asks the server whether that
// transaction committed. A unit is thus never lost nor copied twice.
import fs from "node:fs/promises";
import os from "node:os";
import type { Pool } from "pg";
import {
  CopyCounter,
  closeCopySessions,
  copyUnitData,
  openCopySessions,
  type CopySessions,
  type CopyUnit,
} from "../clone";
import { openChangeListener } from "../control/changes";
import type { ControlLocation } from "../control/db";
import { getMigrationRow, type StoredSpec } from "../control/migrations";
import {
  claimCopyUnit,
  endBackends,
  forgetDeadRuntimes,
  heartbeatRuntime,
  MAX_UNIT_CLAIMS,
  OwnedUnit,
  removeRuntime,
  type ClaimedUnit,
  type RuntimeIdentity,
} from "../control/units";
import { MigrationError, pgFields } from "../pg/errors";
import { lookupPgpass } from "../pg/pgpass";
import { processAlive } from "../pg/process";
import { Wakeup } from "../pg/retry";
import { withPasswords } from "../pg/redact";
import type { MigrationSpec } from "../spec/types";
import { errorText, logLine } from "./journal";
import { testPoint } from "./test-hooks";

/** How often an idle runtime looks for units without being woken by a notification. */
const POLL_MS = 2_000;
/** How often a unit in progress records its rows and bytes. */
const PROGRESS_MS = 3_000;
/** A runtime that cannot connect for a migration leaves its units to the others this long. */
const CONNECT_BACKOFF_MS = 30_000;

/**
 * This runtime cannot open sessions for the unit (refused password, no route to a server): its
 * own configuration or network, not the unit's fault. Other runtimes of the pool may well can.
 */
function cannotConnectHere(err: unknown): boolean {
  const code = pgFields(err).code ?? (err as { code?: unknown } | null)?.code;
  if (typeof code !== "string") return false;
  return (
    code.startsWith("28") ||
    ["ECONNREFUSED", "ENOTFOUND", "EHOSTUNREACH", "ETIMEDOUT"].includes(code)
  );
}

export interface UnitRunnerOptions {
  readonly at: ControlLocation;
  readonly sourcePassword?: string;
  readonly heartbeatMs: number;
  /** Touched at every heartbeat (a container's liveness probe checks its age). */
  readonly heartbeatFile?: string;
  /** At most this many copy units at once (0: none, this runtime only coordinates); default: each migration's parallelism.tables. */
  readonly copyUnits?: number;
  readonly signal?: AbortSignal;
}

/** A unit whose owner is no longer this runtime (claimed again, canceled): roll back, say nothing. */
class UnitLost extends Error {
  override readonly name = "UnitLost";
}

export class UnitRunner {
  private readonly running = new Map<string, { sessions?: CopySessions }>();
  /** Migrations this runtime could not connect for, until when (ms) it leaves them alone. */
  private readonly backoff = new Map<string, number>();
  private readonly stop = new AbortController();
  private readonly wakeup = new Wakeup();
  /** Redacted from every line; grows with passwords found in the password file. */
  private readonly secrets: (string | undefined)[];

  constructor(
    private readonly pool: Pool,
    readonly identity: RuntimeIdentity,
    private readonly options: UnitRunnerOptions,
  ) {
    this.secrets = [options.at.target.password, options.sourcePassword];
    options.signal?.addEventListener("abort", () => this.stop.abort(), { once: true });
    if (options.signal?.aborted) this.stop.abort();
  }

  /** Heartbeats and runs units until `close()` or the signal; never throws. */
  async run(): Promise<void> {
    await this.beat();
    const timer = setInterval(() => void this.beat(), this.options.heartbeatMs);
    const listener = await openChangeListener(this.options.at, undefined, () =>
      this.wakeup.wake(),
    ).catch(() => undefined);
    try {
      while (!this.stop.signal.aborted) {
        await this.fill();
        await this.wakeup.wait(POLL_MS, this.stop.signal);
      }
    } finally {
      clearInterval(timer);
      await listener?.close();
      // Units in flight: their target transactions are rolled back with their connections.
      await Promise.all(
        [...this.running.values()].map((r) =>
          r.sessions ? closeCopySessions(r.sessions, true) : undefined,
        ),
      );
      await removeRuntime(this.pool, this.identity.id).catch(() => undefined);
    }
  }

  close(): void {
    this.stop.abort();
  }

  private async beat(): Promise<void> {
    try {
      await heartbeatRuntime(this.pool, this.identity);
      await forgetDeadRuntimes(this.pool, this.identity.host, processAlive);
      if (this.options.heartbeatFile) {
        await fs.writeFile(this.options.heartbeatFile, `${new Date().toISOString()}\n`);
      }
    } catch (err) {
      logLine(this.secrets, "warning", `runtime heartbeat: ${errorText(err, this.secrets)}`);
    }
  }

  /** Claims units while there is capacity (the claim itself counts this runtime's share). */
  private async fill(): Promise<void> {
    const most = this.options.copyUnits ?? Infinity;
    for (;;) {
      if (this.stop.signal.aborted || this.running.size >= most) return;
      let claimed: ClaimedUnit | undefined;
      try {
        const now = Date.now();
        for (const [migration, until] of this.backoff) {
          if (until <= now) this.backoff.delete(migration);
        }
        claimed = await claimCopyUnit(this.pool, this.identity, [...this.backoff.keys()]);
      } catch (err) {
        logLine(this.secrets, "warning", `claiming work units: ${errorText(err, this.secrets)}`);
        return;
      }
      if (!claimed) return;
      const unit = claimed;
      const slot: { sessions?: CopySessions } = {};
      this.running.set(unit.id, slot);
      void this.execute(unit, slot).finally(() => {
        this.running.delete(unit.id);
        this.wakeup.wake();
      });
    }
  }

  private async specOf(migration: string): Promise<MigrationSpec> {
    const row = await getMigrationRow(this.pool, migration);
    if (!row) throw new Error(`migration "${migration}" is gone`);
    const spec = withRuntimePasswords(row.spec, {
      source: this.options.sourcePassword,
      target: this.options.at.target.password,
    });
    if (!this.secrets.includes(spec.source.password)) this.secrets.push(spec.source.password);
    return spec;
  }

  private label(unit: ClaimedUnit): string {
    const u = unit.payload.unit as CopyUnit;
    const range = u.range ? ` range ${u.range.index + 1}/${u.range.count}` : "";
    return `${unit.migration}/${unit.database}: ${u.table.schema}.${u.table.name}${range}`;
  }

  private async execute(unit: ClaimedUnit, slot: { sessions?: CopySessions }): Promise<void> {
    const owned = new OwnedUnit(this.pool, unit.id, this.identity.id);
    let progress: NodeJS.Timeout | undefined;
    try {
      if (unit.previous && (await this.settlePrevious(unit, owned))) return;
      if (unit.claims > MAX_UNIT_CLAIMS) {
        throw new MigrationError(
          "data",
          `${this.label(unit)} was interrupted ${unit.claims - 1} times (its runtimes stopped heartbeating)`,
        );
      }
      const spec = await this.specOf(unit.migration);
      try {
        slot.sessions = await openCopySessions(
          spec,
          unit.database,
          unit.snapshot,
          unit.payload.encoding,
        );
      } catch (err) {
        if (!cannotConnectHere(err)) throw err;
        // Back to the queue for the other runtimes; the coordinator warns if none takes it.
        await owned.release();
        this.backoff.set(unit.migration, Date.now() + CONNECT_BACKOFF_MS);
        logLine(
          this.secrets,
          "warning",
          `${this.label(unit)}: this runtime cannot connect (${errorText(err, this.secrets)}); leaving the migration's units to other runtimes for ${CONNECT_BACKOFF_MS / 1000} s`,
        );
        return;
      }
      const sessions = slot.sessions;
      const { rows } = await sessions.target.query<{ pid: number; start: Date }>(
        "SELECT pid, backend_start AS start FROM pg_stat_activity WHERE pid = pg_backend_pid()",
      );
      if (!(await owned.backend({ pid: rows[0].pid, backendStart: rows[0].start }))) {
        throw new UnitLost();
      }
      const counter = new CopyCounter();
      progress = setInterval(() => {
        void owned.progress(counter.rows, counter.bytes).catch(() => undefined);
      }, PROGRESS_MS);
      let copied = 0;
      await copyUnitData(sessions, unit.payload.unit as CopyUnit, counter, async (target, n) => {
        copied = n;
        const xid = await target.query<{ xid: string }>("SELECT txid_current()::text AS xid");
        if (!(await owned.aboutToCommit(xid.rows[0].xid, n, counter.bytes))) throw new UnitLost();
      });
      clearInterval(progress);
      await closeCopySessions(sessions, false);
      slot.sessions = undefined;
      await testPoint("unit-committed");
      if (!(await owned.finish(copied, counter.bytes))) {
        logLine(this.secrets, "info", `${this.label(unit)}: copied, but the unit was taken over`);
      }
    } catch (err) {
      clearInterval(progress);
      if (slot.sessions) await closeCopySessions(slot.sessions, true);
      slot.sessions = undefined;
      if (err instanceof UnitLost || this.stop.signal.aborted) {
        logLine(this.secrets, "info", `${this.label(unit)}: no longer ours; rolled back`);
        return;
      }
      const text = errorText(err, this.secrets);
      logLine(this.secrets, "warning", `${this.label(unit)}: ${text}`);
      const code = pgFields(err).code ?? (err as { code?: unknown }).code;
      await owned.fail(text, typeof code === "string" ? code : undefined).catch(() => undefined);
    }
  }

  /**
   * A unit claimed again: its previous owner's target backend is ended (its transaction rolls
   * back unless it committed), then the transaction it recorded, if any, is looked up. True when
   * that transaction committed: the unit is done without copying it again.
   */
  private async settlePrevious(unit: ClaimedUnit, owned: OwnedUnit): Promise<boolean> {
    const previous = unit.previous;
    if (!previous) return false;
    if (previous.backend) await endBackends(this.pool, [previous.backend]);
    if (!previous.xid) return false;
    const { rows } = await this.pool.query<{ status: string | null }>(
      "SELECT txid_status($1::bigint) AS status",
      [previous.xid],
    );
    if (rows[0]?.status !== "committed") return false;
    logLine(
      this.secrets,
      "info",
      `${this.label(unit)}: committed by its previous runtime before it stopped`,
    );
    await owned.finish(previous.rows, previous.bytes);
    return true;
  }
}

/**
 * The stored spec (no passwords) with a runtime's passwords. The source password is the one the
 * runtime was given (PGMIGRATE_SOURCE_PASSWORD; set but empty: none); without one, the password
 * file's entry for the migration's source (~/.pgpass or PGPASSFILE), so one pool can serve
 * migrations from sources with different passwords.
 */
export function withRuntimePasswords(
  stored: StoredSpec,
  given: { readonly source?: string; readonly target?: string },
  env: NodeJS.ProcessEnv = process.env,
): MigrationSpec {
  const source =
    given.source ??
    lookupPgpass(
      {
        host: stored.source.host,
        port: stored.source.port,
        database: stored.databases[0] ?? "postgres",
        username: stored.source.username,
      },
      env,
    ).password;
  return withPasswords(stored, { source, target: given.target });
}

/** The identity of this runtime process in pgmigrate.runtimes. */
export function runtimeIdentity(id: string, migration?: string): RuntimeIdentity {
  return { id, host: os.hostname(), pid: process.pid, migration };
}
