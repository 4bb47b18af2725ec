// What `pgmigrate watch` draws: per-table progress bars during the copy, and per database the
// latency and change counters during replication. Pure functions of one snapshot.
import type { MigrationOutputs } from "../spec/types";
import { formatLatency, statusLine } from "../api/report";
import { copyPercent, copyTotal, etaSeconds } from "../spec/progress";
import { copyProgressLine, eventLine, formatBytes, formatDuration, formatRate } from "./format";

export { formatBytes } from "./format";

/** One table's copy progress (control store `tables` row). */
export interface TableProgress {
  readonly schema: string;
  readonly name: string;
  readonly state: "queued" | "loading" | "completed" | "errored";
  /** Estimated COPY text bytes (the unit `bytes` counts). */
  readonly estimatedBytes: number;
  readonly rows: number | null;
  readonly bytes: number | null;
  readonly error: string | null;
  /** Recent rate while loading; absent or null when unknown. */
  readonly bytesPerSecond?: number | null;
}

export interface WatchSnapshot {
  readonly outputs: MigrationOutputs;
  /** Per database, its tables (may be empty before the copy is planned). */
  readonly tables: Readonly<Record<string, readonly TableProgress[]>>;
}

/** "[#######-------------]" for a fraction 0..1. */
export function progressBar(fraction: number, width = 20): string {
  const f = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0));
  const done = Math.round(f * width);
  return `[${"#".repeat(done)}${"-".repeat(width - done)}]`;
}

function tablePercent(t: TableProgress): number {
  return copyPercent(t.state, t.bytes, t.estimatedBytes);
}

/** Loading tables first (they move), then errored, queued, completed; at most `limit` lines. */
function tableLines(tables: readonly TableProgress[], limit: number): string[] {
  const order = { loading: 0, errored: 1, queued: 2, completed: 3 } as const;
  const sorted = [...tables].sort((a, b) => order[a.state] - order[b.state]);
  const shown = sorted.slice(0, Math.max(1, limit));
  const width = Math.min(40, Math.max(...shown.map((t) => t.schema.length + t.name.length + 1)));
  const lines = shown.map((t) => {
    const label = `${t.schema}.${t.name}`;
    const clipped = label.length > width ? label.slice(0, width - 1) + "…" : label.padEnd(width);
    const percent = tablePercent(t);
    const pct = `${percent}%`.padStart(4);
    const rows = t.rows === null ? "" : `${t.rows} rows  `;
    const total = copyTotal(t.state, t.bytes, t.estimatedBytes);
    // "~": until the table is copied its total is an estimate.
    const size =
      `${formatBytes(t.bytes ?? (t.state === "completed" ? total : 0))} / ` +
      `${t.state === "completed" ? "" : "~"}${formatBytes(total)}`;
    let speed = "";
    if (t.state === "loading") {
      const rate = t.bytesPerSecond ?? null;
      const eta = etaSeconds(t.bytes ?? 0, t.estimatedBytes, rate);
      speed = `  ${formatRate(rate)}  ETA ${formatDuration(eta)}`;
    }
    const tail = t.state === "errored" ? `  error: ${t.error ?? "unknown"}` : "";
    return `    ${clipped} ${progressBar(percent / 100)} ${pct}  ${rows}${size}${speed}${tail}`;
  });
  if (sorted.length > shown.length) {
    lines.push(`    … and ${sorted.length - shown.length} more tables`);
  }
  return lines;
}

/** The full-screen frame for a terminal of `rows` lines. */
export function renderFrame(snapshot: WatchSnapshot, rows = 40, now = Date.now()): string[] {
  const o = snapshot.outputs;
  const elapsed = o.startedOn
    ? formatDuration(((o.endedOn ? Date.parse(o.endedOn) : now) - Date.parse(o.startedOn)) / 1000)
    : "-";
  const lines = [
    `${o.migrationName}  ${o.state} (${o.substate})  ${o.migrationMode}  elapsed ${elapsed}` +
      (o.latencySeconds !== null ? `  latency ${formatLatency(o.latencySeconds)}` : ""),
  ];
  if (o.error) lines.push(`  error: ${o.error}`);
  const dbs = Object.values(o.dbDetails);
  // Table lines share what is left of the screen between databases that are copying.
  const copying = dbs.filter((d) => d.fullLoadQueuedTables + d.fullLoadLoadingTables > 0);
  const budget = Math.max(3, Math.floor((rows - 2 - dbs.length * 2) / Math.max(1, copying.length)));
  for (const d of dbs) {
    const total =
      d.fullLoadQueuedTables +
      d.fullLoadLoadingTables +
      d.fullLoadCompletedTables +
      d.fullLoadErroredTables;
    lines.push(
      `  ${d.databaseName}: ${d.migrationState}  tables ${d.fullLoadCompletedTables}/${total}` +
        (d.message ? `  ${d.message}` : ""),
    );
    if (copying.includes(d)) lines.push(`    ${copyProgressLine(d)}`);
    const tables = snapshot.tables[d.databaseName] ?? [];
    if (copying.includes(d) && tables.length > 0) {
      lines.push(...tableLines(tables, budget));
    } else if (
      o.migrationMode === "Online" &&
      d.fullLoadQueuedTables + d.fullLoadLoadingTables === 0
    ) {
      lines.push(
        `    latency ${formatLatency(d.latencySeconds)}  inserts ${d.cdcInsertCounter}  ` +
          `updates ${d.cdcUpdateCounter}  deletes ${d.cdcDeleteCounter}  ` +
          `applied ${d.appliedChanges}  incoming ${d.incomingChanges}`,
      );
    }
  }
  // The latest events fill what is left of the screen (at least the last warning shows).
  const room = Math.max(1, Math.min(WATCH_EVENTS, rows - lines.length - 1));
  const latest = o.events.slice(-room);
  if (latest.length > 0) {
    lines.push("  events:");
    for (const e of latest) lines.push(`    ${eventLine(e)}`);
  }
  return lines;
}

/** At most this many recent events under the progress. */
const WATCH_EVENTS = 5;

/** One plain line per change when stdout is not a terminal. */
export function renderPlainLine(snapshot: WatchSnapshot, now = new Date()): string {
  return `${now.toISOString().slice(11, 19)} ${statusLine(snapshot.outputs)}`;
}
