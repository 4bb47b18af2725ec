// The one-line status of a migration, read from its outputs: what every adapter prints while it
// waits (Pulumi diagnostics, `pgmigrate --wait` and plain `watch` lines) and how latency reads.
import { copyPercent } from "../spec/progress";
import type { MigrationOutputs } from "../spec/types";

/** "0.4 s", "12 s", "-" when unknown. */
export function formatLatency(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "-";
  return seconds < 10 ? `${seconds.toFixed(1)} s` : `${Math.round(seconds)} s`;
}

/** "latency 0.4 s", "latency 12 s", or "latency not measured yet". */
export function latency(seconds: number | null): string {
  const value = formatLatency(seconds);
  return value === "-" ? "latency not measured yet" : `latency ${value}`;
}

/**
 * "InProgress/MigratingData, tables 3/10 done (1 loading), 120 changes applied, latency 0.4 s",
 * summed over the databases. With `replication: false` it leaves out the figures that move
 * without a visible change (applied changes, latency), so that it tells when something happened.
 */
export function statusLine(o: MigrationOutputs, options: { replication?: boolean } = {}): string {
  const dbs = Object.values(o.dbDetails);
  const sum = (pick: (d: (typeof dbs)[number]) => number): number =>
    dbs.reduce((n, d) => n + pick(d), 0);
  const done = sum((d) => d.fullLoadCompletedTables);
  const loading = sum((d) => d.fullLoadLoadingTables);
  const errored = sum((d) => d.fullLoadErroredTables);
  const total = done + loading + errored + sum((d) => d.fullLoadQueuedTables);
  const applied = sum((d) => d.appliedChanges);
  const parts = [`${o.state}/${o.substate}`];
  if (total > 0) {
    const extra = [loading ? `${loading} loading` : "", errored ? `${errored} errored` : ""]
      .filter(Boolean)
      .join(", ");
    parts.push(`tables ${done}/${total} done${extra ? ` (${extra})` : ""}`);
    if (done < total) {
      const percent = copyPercent(
        "loading",
        sum((d) => d.fullLoadBytesCopied),
        sum((d) => d.fullLoadTotalBytes),
      );
      parts.push(`data ${percent}%`);
    }
  }
  // Replication figures once there is replication to speak of.
  const replicating = o.state === "WaitingForUserAction" || o.substate === "CompletingMigration";
  if (
    options.replication !== false &&
    o.migrationMode === "Online" &&
    (replicating || applied > 0 || o.latencySeconds !== null)
  ) {
    parts.push(`${applied.toLocaleString("en-US")} changes applied`, latency(o.latencySeconds));
  }
  return parts.join(", ");
}
