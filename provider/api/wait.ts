// Waiting for a migration (`--wait`, Pulumi create/update/delete): one control-database client for
// the whole wait and one query per tick returning the outputs with the worker's lease and
// heartbeat; a new connection only after an error (the target restarting is no reason to give up).
import type { Client } from "pg";
import { listenForChanges } from "../control/changes";
import type { ControlLocation } from "../control/db";
import { readSnapshot, type MigrationSnapshot } from "../control/outputs";
import { checkSchemaVersion, controlPrivilegeError } from "../control/schema";
import { connect } from "../pg/connect";
import { isTransient, MigrationError, pgFields, SQLSTATE } from "../pg/errors";
import { sleep } from "../pg/retry";
import { superviseWorker, type WorkerCheck } from "../runtime/supervise";
import { isEnded } from "../spec/states";
import type { MigrationOutputs, MigrationSpec, RuntimeOptions } from "../spec/types";

/** The wait's connection shows under this application_name in pg_stat_activity. */
export const WAIT_APPLICATION_NAME = "pgmigrate-wait";
const POLL_MS = 1_000;
/** How often waitForMigration repeats the "no worker is running" warning. */
const WAIT_WARNING_EVERY_MS = 60_000;
const CONTROL_RETRY_MS = 2_000;
/** How long waiting survives an unreachable control store before reporting the error. */
const CONTROL_OUTAGE_MS = 5 * 60_000;

// No control database or schema (yet): there is no such migration.
const NOTHING_YET: readonly string[] = [SQLSTATE.undefinedTable, SQLSTATE.invalidCatalogName];

function notFound(name: string): MigrationError {
  return new MigrationError("control", `no migration named "${name}" on this server`, {
    code: "PGM_NOT_FOUND",
  });
}

export interface WaitOptions {
  readonly onProgress?: (o: MigrationOutputs) => void;
  readonly onWarning?: (message: string) => void;
  readonly timeoutMs?: number;
  /** With the spec (it carries the passwords), a dead local worker is spawned again. */
  readonly spec?: MigrationSpec;
  /** The caller's runtime (recorded when it differs from the stored one); else the stored one. */
  readonly runtime?: RuntimeOptions;
}

/**
 * Polls (every ~1 s) until `until(outputs)` is true; calls onProgress with each new outputs;
 * rejects on timeout. When `spec` is given, restarts a dead worker as ensureWorker does (with
 * `runtime`, else the stored runtime); a gone external worker goes to `onWarning` (once a
 * minute), which also works without `spec`. Transient control-store errors are retried for up
 * to five minutes.
 */
export async function waitForMigration(
  at: ControlLocation,
  name: string,
  until: (o: MigrationOutputs) => boolean,
  options: WaitOptions = {},
): Promise<MigrationOutputs> {
  const deadline = Date.now() + (options.timeoutMs ?? Number.POSITIVE_INFINITY);
  const control = new WaitConnection(at, name, deadline, options.onWarning);
  let last = "";
  let warnedAt = Number.NEGATIVE_INFINITY;
  try {
    for (;;) {
      const snapshot = await control.run((db) => readSnapshot(db, name), undefined);
      if (snapshot === RETRY) continue;
      if (!snapshot) throw notFound(name);
      const { outputs } = snapshot;
      const seen = JSON.stringify(outputs);
      if (seen !== last) {
        last = seen;
        options.onProgress?.(outputs);
      }
      if (until(outputs)) return outputs;
      if ((options.spec || options.onWarning) && !isEnded(outputs.state)) {
        const check = await control.run((db) => superviseFrom(db, at, snapshot, options), {
          started: false,
        });
        if (check !== RETRY && check.warning && Date.now() - warnedAt >= WAIT_WARNING_EVERY_MS) {
          warnedAt = Date.now();
          options.onWarning?.(check.warning);
        }
      }
      if (Date.now() >= deadline) {
        throw new MigrationError(
          "control",
          `timed out waiting for migration "${name}" (now ${outputs.state}/${outputs.substate})`,
          { code: "PGM_TIMEOUT" },
        );
      }
      await control.nextChange(Math.min(POLL_MS, Math.max(0, deadline - Date.now())));
    }
  } finally {
    await control.close();
  }
}

// The row just read decides: a worker with a fresh heartbeat costs no further query.
function superviseFrom(
  db: Client,
  at: ControlLocation,
  snapshot: MigrationSnapshot,
  options: WaitOptions,
): Promise<WorkerCheck> {
  const name = snapshot.row.name;
  return options.spec
    ? superviseWorker(db, at, name, {
        spec: options.spec,
        declared: options.runtime,
        row: snapshot.row,
      })
    : superviseWorker(db, at, name, { row: snapshot.row });
}

/** Returned by WaitConnection.run after a transient failure: try the tick again. */
const RETRY = Symbol("retry");

/**
 * The wait's one client: opened on first use, replaced only after an error. It listens for the
 * control schema's change notifications: a tick follows a change at once, or the poll interval.
 */
class WaitConnection {
  private client: Client | undefined;
  private unreachableSince: number | undefined;
  /** A change was notified since the last tick. */
  private changed = false;
  private wake?: () => void;

  constructor(
    private readonly at: ControlLocation,
    private readonly name: string,
    private readonly deadline: number,
    private readonly onWarning?: (message: string) => void,
  ) {}

  /** Resolves after a change of this migration is notified, or after `ms`. */
  async nextChange(ms: number): Promise<void> {
    if (!this.changed) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        timer = setTimeout(resolve, ms);
      });
      clearTimeout(timer);
      this.wake = undefined;
    }
    this.changed = false;
  }

  /**
   * Runs `fn` on the client: `nothing` when there is no control store (yet), RETRY after a
   * transient failure within the outage window.
   */
  async run<T>(fn: (db: Client) => Promise<T>, nothing: T): Promise<T | typeof RETRY> {
    try {
      this.client ??= await this.open();
      const result = await fn(this.client);
      this.unreachableSince = undefined;
      return result;
    } catch (err) {
      await this.close();
      if (NOTHING_YET.includes(pgFields(err).code ?? "")) return nothing;
      if (pgFields(err).code === SQLSTATE.insufficientPrivilege) {
        throw controlPrivilegeError(this.at, err, "use");
      }
      this.unreachableSince ??= Date.now();
      const outage = Date.now() - this.unreachableSince;
      if (!isTransient(err) || Date.now() >= this.deadline || outage >= CONTROL_OUTAGE_MS) {
        throw MigrationError.wrap(
          "control",
          err,
          "reading the migration records on the target server",
        );
      }
      this.onWarning?.(`the target server is unreachable (${(err as Error).message}); retrying`);
      await sleep(CONTROL_RETRY_MS);
      return RETRY;
    }
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async open(): Promise<Client> {
    const client = await connect(this.at.target, this.at.controlDatabase, {
      applicationName: WAIT_APPLICATION_NAME,
    });
    try {
      await checkSchemaVersion(client);
      // A schema older than the notifications still works: the wait then polls.
      await listenForChanges(client, this.name, () => {
        this.changed = true;
        this.wake?.();
      });
      return client;
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
  }
}
