// The event log: what happened to a migration, in order (state changes, warnings, the worker's
// log file). Messages are redacted before they get here.
import type { Queryable } from "./db";
import { fencedBy, fencedWrite, type LeaseFence } from "./lease";

export type EventLevel = "info" | "warning" | "error";

export interface EventRow {
  readonly id: number;
  readonly at: Date;
  readonly level: EventLevel;
  readonly database: string | null;
  readonly message: string;
}

export async function addEvent(
  db: Queryable,
  migration: string,
  level: EventLevel,
  message: string,
  database?: string,
): Promise<void> {
  await db.query(
    `INSERT INTO pgmigrate.events (migration, level, database, message)
     SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT FROM pgmigrate.migrations WHERE name = $1)`,
    [migration, level, database ?? null, message],
  );
}

/** An event written by a worker: recorded only while it holds the lease. */
export async function addWorkerEvent(
  db: Queryable,
  fence: LeaseFence,
  level: EventLevel,
  message: string,
  database?: string,
): Promise<void> {
  await fencedWrite(
    db,
    fence,
    `INSERT INTO pgmigrate.events (migration, level, database, message)
     SELECT $1, $3, $4, $5 WHERE ${fencedBy(2)}`,
    [fence.migration, fence.owner, level, database ?? null, message],
  );
}

/** Events after `afterId`, oldest first (a watcher passes the last id it showed). */
export async function listEvents(
  db: Queryable,
  migration: string,
  afterId = 0,
  limit = 200,
): Promise<EventRow[]> {
  const { rows } = await db.query<EventRow>(
    `SELECT id::float8 AS id, at, level, database, message FROM pgmigrate.events
      WHERE migration = $1 AND id > $2 ORDER BY id LIMIT $3`,
    [migration, afterId, limit],
  );
  return rows;
}

/** A state the migration entered, and when (from the creation and the `state X/Y` events). */
export interface StateEntry {
  readonly at: Date;
  readonly state: string;
  readonly substate: string;
}

/**
 * Every state the migration went through, oldest first: the one it was created in, then each
 * transition the worker recorded (runtime/context.ts `transition` writes "state STATE/SUBSTATE").
 * A repeated state (a resumed worker entering it again) is kept once, at its first entry.
 */
export async function stateChanges(db: Queryable, migration: string): Promise<StateEntry[]> {
  const { rows } = await db.query<StateEntry>(
    `SELECT at, state, substate FROM (
       SELECT created_at AS at, 0::bigint AS id, 'InProgress' AS state,
              'PerformingPreRequisiteSteps' AS substate
         FROM pgmigrate.migrations WHERE name = $1
       UNION ALL
       SELECT at, id, m[1], m[2] FROM (
         SELECT at, id, regexp_match(message, '^state ([A-Za-z]+)/([A-Za-z]+)') AS m
           FROM pgmigrate.events
          WHERE migration = $1 AND database IS NULL AND level IN ('info', 'error')
            AND message LIKE 'state %') transitions
        WHERE m IS NOT NULL) entries
     ORDER BY id`,
    [migration],
  );
  return rows.filter(
    (row, i) => i === 0 || row.state !== rows[i - 1].state || row.substate !== rows[i - 1].substate,
  );
}
