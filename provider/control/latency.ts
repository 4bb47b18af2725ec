// The latency history: samples the worker records while streaming, bounded per migration, and
// the read the console's chart uses.
import type { Queryable } from "./db";
import { fencedBy, fencedWrite, type LeaseFence } from "./lease";

/** Samples kept per migration (about 50 minutes at one per 3 s); older ones are pruned. */
export const LATENCY_SAMPLES_KEPT = 1_000;

/** One point of the chart: seconds since the epoch, latency in seconds, WAL left in bytes. */
export interface LatencySample {
  readonly at: number;
  readonly latencySeconds: number;
  readonly lagBytes: number | null;
}

/** Adds a sample (while the fence's owner holds the lease) and keeps the newest `keep`. */
export async function recordLatencySample(
  db: Queryable,
  fence: LeaseFence,
  latencySeconds: number,
  lagBytes: number | null,
  keep: number = LATENCY_SAMPLES_KEPT,
): Promise<void> {
  await fencedWrite(
    db,
    fence,
    `INSERT INTO pgmigrate.latency_samples (migration, latency_seconds, lag_bytes)
     SELECT $1, $3, $4 WHERE ${fencedBy(2)}
     ON CONFLICT DO NOTHING`,
    [fence.migration, fence.owner, latencySeconds, lagBytes],
  );
  await db.query(
    `DELETE FROM pgmigrate.latency_samples
      WHERE migration = $1
        AND at < (SELECT at FROM pgmigrate.latency_samples WHERE migration = $1
                   ORDER BY at DESC OFFSET $2 - 1 LIMIT 1)`,
    [fence.migration, keep],
  );
}

/** The newest `limit` samples of a migration, oldest first. */
export async function latencySamples(
  db: Queryable,
  migration: string,
  limit: number = LATENCY_SAMPLES_KEPT,
): Promise<LatencySample[]> {
  const { rows } = await db.query<{ at: number; latency: number; lag: string | null }>(
    `SELECT extract(epoch FROM at)::float8 AS at, latency_seconds AS latency, lag_bytes AS lag
       FROM (SELECT * FROM pgmigrate.latency_samples WHERE migration = $1
              ORDER BY at DESC LIMIT $2) newest
      ORDER BY at`,
    [migration, limit],
  );
  return rows.map((r) => ({
    at: r.at,
    latencySeconds: r.latency,
    lagBytes: r.lag === null ? null : Number(r.lag),
  }));
}
