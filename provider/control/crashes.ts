// Worker crashes (an error nothing handled): counted per position, so that a worker which dies
// the same way on every respawn ends the migration instead of looping forever.
import type { Queryable } from "./db";

/** A worker that finds this many crashes in a row at one position fails the migration. */
export const CRASH_LIMIT = 3;

// Where a migration is: its state and each database's step and positions. A crash at the same
// position as the last one counts as a repetition; any progress starts the count again.
const POSITION_SQL = `
  m.state || '/' || m.substate || ' ' || coalesce((
    SELECT string_agg(d.name || ':' || d.step || ':' || coalesce(d.applied_lsn, '-') || ':' ||
                      coalesce(d.cutover_lsn, '-'), ' ' ORDER BY d.position)
      FROM pgmigrate.databases d WHERE d.migration = m.name), '')`;

/**
 * Records a crash of the worker whose lease owner ids start with `ownerPrefix` (host:pid:) on
 * every migration it held, and releases those leases so that a successor starts at once.
 * `error` must already be redacted. Returns the migrations and their crash counts.
 */
export async function recordCrash(
  db: Queryable,
  ownerPrefix: string,
  error: string,
): Promise<{ name: string; crashCount: number }[]> {
  const { rows } = await db.query<{ name: string; crashCount: number }>(
    `UPDATE pgmigrate.migrations m
        SET crash_count = CASE WHEN m.crash_position = ${POSITION_SQL} THEN m.crash_count + 1 ELSE 1 END,
            crash_position = ${POSITION_SQL},
            crash_error = $2, lease_owner = NULL, updated_at = now()
      WHERE m.ended_on IS NULL AND left(m.lease_owner, length($1)) = $1
     RETURNING m.name, m.crash_count AS "crashCount"`,
    [ownerPrefix, error],
  );
  return rows;
}
