// Keeps a worker's lease on one migration alive with heartbeats and turns what they learn into
// signals: `stop` (lease lost or worker stopping: leave everything for the successor) and
// `cancel` (the user asked to cancel), plus the requested cutover.
import os from "node:os";
import { randomBytes } from "node:crypto";
import type { Queryable } from "../control/db";
import { heartbeat, LEASE_EXPIRY_SECONDS, releaseLease, type LeaseFence } from "../control/lease";
import type { RequestedAction } from "../spec/types";

/** A lease owner id that says which process holds it: `host:pid:random`. */
export function newOwnerId(): string {
  return `${os.hostname()}:${process.pid}:${randomBytes(4).toString("hex")}`;
}

/** Host and pid of a lease owner id made by newOwnerId. */
export function parseOwnerId(owner: string): { host: string; pid: number } | undefined {
  const m = /^(.*):(\d+):[0-9a-f]+$/.exec(owner);
  return m ? { host: m[1], pid: Number(m[2]) } : undefined;
}

export const HEARTBEAT_MS = 3_000;

/** The worker's lease on one migration; also the fence every one of its writes carries. */
export class LeaseKeeper implements LeaseFence {
  private readonly stopController = new AbortController();
  private readonly cancelController = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private lastBeat = Date.now();
  private action: RequestedAction | null = null;
  private readonly cutoverWaiters: (() => void)[] = [];

  constructor(
    private readonly db: Queryable,
    readonly migration: string,
    readonly owner: string,
    private readonly onWarning: (message: string) => void,
    private readonly intervalMs = HEARTBEAT_MS,
  ) {}

  /** Aborted when the lease is lost or the worker stops: quit without touching state. */
  get stop(): AbortSignal {
    return this.stopController.signal;
  }

  /** Aborted when the user requests a cancel. */
  get cancel(): AbortSignal {
    return this.cancelController.signal;
  }

  get requestedAction(): RequestedAction | null {
    return this.action;
  }

  /** Starts heartbeating; `external` (the worker's own signal) also stops this migration. */
  async start(external?: AbortSignal): Promise<void> {
    external?.addEventListener("abort", () => this.stopController.abort(external.reason), {
      once: true,
    });
    if (external?.aborted) this.stopController.abort(external.reason);
    await this.beat();
    this.timer = setInterval(() => void this.beat(), this.intervalMs);
  }

  /** Resolves when a cutover is requested (at once if it already was). */
  cutoverRequested(): Promise<void> {
    if (this.action === "cutover") return Promise.resolve();
    return new Promise((resolve) => this.cutoverWaiters.push(resolve));
  }

  /** A fenced write found the lease held by another owner: stop without touching anything. */
  lost(reason: Error): void {
    if (!this.stopController.signal.aborted) this.stopController.abort(reason);
  }

  /** Checks the control store now instead of waiting for the next heartbeat. */
  async refresh(): Promise<void> {
    await this.beat();
  }

  /** Stops heartbeating and gives the lease up. */
  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await releaseLease(this.db, this.migration, this.owner).catch(() => undefined);
  }

  private async beat(): Promise<void> {
    if (this.stopController.signal.aborted) return;
    try {
      const beat = await heartbeat(this.db, this.migration, this.owner);
      if (!beat.held) {
        this.stopController.abort(new Error("the lease was taken over by another worker"));
        return;
      }
      this.lastBeat = Date.now();
      this.observe(beat.requestedAction);
    } catch (err) {
      const silentFor = (Date.now() - this.lastBeat) / 1000;
      this.onWarning(
        `heartbeat failed (${(err as Error).message}); last one ${silentFor.toFixed(0)} s ago`,
      );
      // Past the expiry another worker may already have claimed the migration.
      if (silentFor > LEASE_EXPIRY_SECONDS - 5) {
        this.stopController.abort(new Error("lost contact with the control database"));
      }
    }
  }

  private observe(action: RequestedAction | null): void {
    this.action = action;
    if (action === "cancel" && !this.cancelController.signal.aborted) {
      this.cancelController.abort(new Error("cancel requested"));
    }
    if (action === "cutover") {
      for (const resolve of this.cutoverWaiters.splice(0)) resolve();
    }
  }
}
