// Text the CLI prints for people: the `list` grid, the `show` summary, `--wait` progress lines.
// (`--json` prints the MigrationOutputs object instead and nothing else.)
import type { MigrationListItem } from "../api/index";
import { formatLatency } from "../api/report";
import type {
  CheckResult,
  DbDetails,
  MigrationEvent,
  MigrationOutputs,
  RuntimeOutput,
} from "../spec/types";
import type { UnitView } from "../api/index";

/** "45s", "3m 12s", "2h 05m", "3d 04h". */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) {
    return "-";
  }
  const s = Math.floor(seconds);
  const pad = (n: number): string => String(n).padStart(2, "0");
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d ${pad(Math.floor((s % 86400) / 3600))}h`;
}

/** 1234567 → "1.2 MB". */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return "-";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** 2500000 → "2.5 MB/s"; "-" when unknown. */
export function formatRate(bytesPerSecond: number | null | undefined): string {
  if (bytesPerSecond === null || bytesPerSecond === undefined) return "- /s";
  return `${formatBytes(Math.round(bytesPerSecond))}/s`;
}

/** A database's table data: "data 45%: 12.3 MB / ~27.0 MB, 120000 rows, 4.1 MB/s, ETA 4s". */
export function copyProgressLine(d: DbDetails): string {
  const done = d.fullLoadPercent === 100;
  return (
    `data ${d.fullLoadPercent === null ? "-" : `${d.fullLoadPercent}%`}: ` +
    `${formatBytes(d.fullLoadBytesCopied)} / ${done ? "" : "~"}${formatBytes(d.fullLoadTotalBytes)}, ` +
    `${d.fullLoadRowsCopied} rows` +
    (done
      ? ""
      : `, ${formatRate(d.fullLoadBytesPerSecond)}, ETA ${formatDuration(d.fullLoadEtaSeconds)}`)
  );
}

/** ISO timestamp → "2025-03-01 14:02:07Z" (UTC, seconds). */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return "-";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, "Z");
}

/** Left-aligned columns separated by two spaces; trailing blanks trimmed. */
export function formatGrid(
  header: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

export const LIST_COLUMNS = [
  "Name",
  "Status",
  "Migration mode",
  "Migration type",
  "Source server",
  "Source server type",
  "Databases",
  "Duration",
  "Start time",
] as const;

/** The `list` grid, in the engine's order (newest first). */
export function formatList(items: readonly MigrationListItem[], now = Date.now()): string {
  const rows = items.map((m) => {
    let duration = m.durationSeconds;
    if (duration === null && m.startedOn) {
      const end = m.endedOn ? Date.parse(m.endedOn) : now;
      duration = (end - Date.parse(m.startedOn)) / 1000;
    }
    return [
      m.name,
      m.state,
      m.migrationMode,
      m.migrationOption,
      m.sourceServer,
      m.sourceServerType || "-",
      m.databases.join(", "),
      formatDuration(duration),
      formatTime(m.startedOn),
    ];
  });
  return formatGrid(LIST_COLUMNS, rows);
}

/** Tables done out of all tables of one database, e.g. "12/14". */
function tableCount(d: DbDetails): string {
  const total =
    d.fullLoadQueuedTables +
    d.fullLoadLoadingTables +
    d.fullLoadCompletedTables +
    d.fullLoadErroredTables;
  return `${d.fullLoadCompletedTables}/${total}`;
}

function checkLines(scope: string, checks: readonly CheckResult[]): string[] {
  return checks
    .filter((c) => c.state !== "Succeeded")
    .map(
      (c) =>
        `  ${c.state === "Failed" ? "✗" : "!"} ${scope}: ${c.type} ${c.state}` +
        (c.messages.length > 0 ? ` — ${c.messages.join("; ")}` : ""),
    );
}

function databaseLines(d: DbDetails): string[] {
  const lines = [
    `  ${d.databaseName}: ${d.migrationState}, tables ${tableCount(d)} copied` +
      (d.fullLoadLoadingTables > 0 ? `, ${d.fullLoadLoadingTables} loading` : "") +
      (d.fullLoadErroredTables > 0 ? `, ${d.fullLoadErroredTables} errored` : ""),
    `    changes: ${d.cdcInsertCounter} inserts, ${d.cdcUpdateCounter} updates, ` +
      `${d.cdcDeleteCounter} deletes; applied ${d.appliedChanges}, incoming ${d.incomingChanges}; ` +
      `latency ${formatLatency(d.latencySeconds)}`,
  ];
  if (d.fullLoadPercent !== null) lines.splice(1, 0, `    ${copyProgressLine(d)}`);
  if (d.cutoverLsn) {
    lines.push(
      `    cutover at ${d.cutoverLsn}; last applied commit ${d.lastAppliedCommitLsn ?? "-"}` +
        (d.lastAppliedCommitTime ? ` (${formatTime(d.lastAppliedCommitTime)})` : ""),
    );
  }
  if (d.message) lines.push(`    ${d.message}`);
  return lines;
}

/** "host pid N" of a runtime id (host:pid:random). */
function runtimeLabel(id: string | null): string {
  if (!id) return "-";
  const m = /^(.*):(\d+):[0-9a-f]+$/.exec(id);
  return m ? `${m[1]} pid ${m[2]}` : id;
}

/** `show --units`: every work unit with its state and the runtime that ran it. */
export function formatUnits(units: readonly UnitView[]): string {
  if (units.length === 0)
    return "Units:      none (only a pool migration's copy is split into units)";
  const copies = units.filter((u) => u.kind === "copy");
  const by = (state: string): number => copies.filter((u) => u.state === state).length;
  const lines = [
    `Units:      ${copies.length} copy unit(s): ${by("done")} done, ${by("running")} running, ${by("pending")} pending` +
      (by("failed") > 0 ? `, ${by("failed")} failed` : ""),
  ];
  const width = Math.max(...units.map((u) => `${u.database}: ${u.what}`.length));
  for (const u of units) {
    const claims = u.claims > 1 ? ` (claimed ${u.claims} times)` : "";
    lines.push(
      `  ${`${u.database}: ${u.what}`.padEnd(width)}  ${u.state.padEnd(8)} ${runtimeLabel(u.owner)}${claims}`,
    );
  }
  return lines.join("\n");
}

/** The runtimes serving a migration: who coordinates, who copies what. */
export function runtimeLines(runtimes: readonly RuntimeOutput[], now = Date.now()): string[] {
  if (runtimes.length === 0) return [];
  const lines = [`Runtimes:   ${runtimes.length} serving`];
  for (const r of runtimes) {
    const age = Math.max(0, (now - Date.parse(r.lastHeartbeat)) / 1000);
    const role = r.coordinator ? " (coordinator)" : "";
    lines.push(
      `  ${r.host} pid ${r.pid}${role}: heartbeat ${age.toFixed(1)} s ago, ${r.unitsDone} unit(s) copied` +
        (r.units.length > 0 ? `, running ${r.units.join("; ")}` : ""),
    );
  }
  return lines;
}

/** The readable `show` summary. */
export function formatShow(o: MigrationOutputs, server: string, now = Date.now()): string {
  const running = o.startedOn
    ? formatDuration(((o.endedOn ? Date.parse(o.endedOn) : now) - Date.parse(o.startedOn)) / 1000)
    : "-";
  const lines = [
    `Migration:  ${o.migrationName} on ${server}`,
    `Status:     ${o.state} (${o.substate})`,
    `Mode:       ${o.migrationMode}, ${o.migrationOption}`,
    `Started:    ${formatTime(o.startedOn)}    Ended: ${formatTime(o.endedOn)}    Duration: ${running}`,
    `Latency:    ${formatLatency(o.latencySeconds)}`,
  ];
  if (o.cutoverLsn) lines.push(`Cutover:    at source WAL position ${o.cutoverLsn}`);
  if (o.error) lines.push(`Error:      ${o.error}`);
  if (o.workerLog) lines.push(`Log:        ${o.workerLog}`);
  lines.push(...runtimeLines(o.runtimes, now));
  if (o.validation) {
    lines.push(`Validation: ${o.validation.status}`);
    lines.push(...checkLines("server", o.validation.serverLevel));
    for (const db of o.validation.databaseLevel) {
      lines.push(...checkLines(db.databaseName, db.summary));
    }
  }
  const dbs = Object.values(o.dbDetails);
  if (dbs.length > 0) {
    lines.push("Databases:");
    for (const d of dbs) lines.push(...databaseLines(d));
  }
  if (o.verification) {
    const mismatched = o.verification.tables.filter((t) => !t.match && !t.skippedReason);
    const skipped = o.verification.tables.filter((t) => t.skippedReason).length;
    lines.push(
      `Verification: ${o.verification.status} (${o.verification.tables.length} tables, ` +
        `${mismatched.length} mismatched${skipped > 0 ? `, ${skipped} skipped` : ""})`,
    );
    for (const t of mismatched) {
      lines.push(
        `  ✗ ${t.databaseName} ${t.table}: source ${t.sourceRows} rows, target ${t.targetRows} rows` +
          (t.difference ? `; ${t.difference}` : ""),
      );
    }
  }
  if (o.warnings.length > 0) {
    lines.push("Warnings:");
    for (const w of o.warnings) lines.push(`  ${eventLine(w)}`);
  }
  if (o.events.length > 0) {
    lines.push("Recent events:");
    for (const e of o.events.slice(-SHOWN_EVENTS)) lines.push(`  ${eventLine(e)}`);
  }
  return lines.join("\n");
}

/** How many of the recent events `show` lists (the outputs carry a few more). */
const SHOWN_EVENTS = 10;

/** One event as `show` and `watch` print it: time, level, database, message. */
export function eventLine(e: MigrationEvent): string {
  const where = e.database ? `${e.database}: ` : "";
  return `${formatTime(e.at)} ${e.level.padEnd(7)} ${where}${e.message}`;
}
