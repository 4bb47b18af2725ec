// What a worker says: redacted log lines on stdout (the spawner sends them to the log file) and
// events in the control store; also the control store's ProgressSink for the clone.
import type { Queryable } from "../control/db";
import { addWorkerEvent, type EventLevel } from "../control/events";
import type { LeaseFence } from "../control/lease";
import { queueTables, setTableState, type TableStateDetail } from "../control/progress";
import { redact } from "../pg/redact";
import type { ProgressSink, TableLoadState, TableRef } from "../spec/types";

/** A redacted line on stdout; never throws. */
export function logLine(
  secrets: readonly (string | undefined)[],
  level: EventLevel,
  message: string,
): void {
  const line = `${new Date().toISOString()} [${level}] ${redact(message, secrets)}\n`;
  try {
    process.stdout.write(line);
  } catch {
    // stdout closed (log file removed): nothing more useful to do with a log line
  }
}

/** The text of anything thrown, redacted. */
export function errorText(err: unknown, secrets: readonly (string | undefined)[]): string {
  const message = err instanceof Error ? err.message : String(err);
  return redact(message, secrets);
}

/** Events and progress of one migration, written to the control store under the worker's lease. */
export class Journal implements ProgressSink {
  constructor(
    private readonly db: Queryable,
    readonly fence: LeaseFence,
    private readonly secrets: readonly (string | undefined)[],
  ) {}

  get migration(): string {
    return this.fence.migration;
  }

  /** Logs and records an event; reporting failures are logged, never thrown. */
  async event(level: EventLevel, message: string, database?: string): Promise<void> {
    const text = redact(message, this.secrets);
    logLine(this.secrets, level, `${this.migration}${database ? "/" + database : ""}: ${text}`);
    await addWorkerEvent(this.db, this.fence, level, text, database).catch((err: unknown) =>
      logLine(
        this.secrets,
        "warning",
        `could not record an event: ${errorText(err, this.secrets)}`,
      ),
    );
  }

  async tablesQueued(
    database: string,
    tables: readonly (TableRef & {
      readonly estimatedBytes: number;
      readonly estimatedRows?: number;
    })[],
  ): Promise<void> {
    await queueTables(this.db, this.fence, database, tables).catch((err: unknown) =>
      this.reportFailure(err),
    );
  }

  async tableState(
    database: string,
    table: TableRef,
    state: TableLoadState,
    detail: TableStateDetail = {},
  ): Promise<void> {
    const safe = detail.error ? { ...detail, error: redact(detail.error, this.secrets) } : detail;
    await setTableState(this.db, this.fence, database, table, state, safe).catch((err: unknown) =>
      this.reportFailure(err),
    );
  }

  /** Redacts with this migration's secrets. */
  redact(text: string): string {
    return redact(text, this.secrets);
  }

  private reportFailure(err: unknown): void {
    logLine(this.secrets, "warning", `could not record progress: ${errorText(err, this.secrets)}`);
  }
}
