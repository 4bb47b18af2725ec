// What a migration is about to destroy on the target, so adapters can say so before it happens:
// the databases overwriteDbsInTarget drops and recreates, and those a cancel drops.
import type { ControlLocation } from "../control/db";
import { getMigrationRow } from "../control/migrations";
import { connect } from "../pg/connect";
import type { MigrationSpec } from "../spec/types";
import { readControl } from "./reads";

/**
 * The databases of `spec` that exist on the target: with overwriteDbsInTarget they are dropped
 * and recreated from the source. Undefined when the target cannot be asked (creating the
 * migration then fails with the reason).
 */
export async function targetDatabasesToOverwrite(
  spec: MigrationSpec,
): Promise<string[] | undefined> {
  if (!spec.overwriteDbsInTarget) return [];
  try {
    const client = await connect(spec.target, "postgres", {
      applicationName: "pgmigrate",
      connectTimeoutMs: 10_000,
    });
    try {
      const { rows } = await client.query<{ datname: string }>(
        "SELECT datname FROM pg_catalog.pg_database WHERE datname = ANY ($1::text[]) ORDER BY datname",
        [[...spec.databases]],
      );
      return rows.map((r) => r.datname);
    } finally {
      await client.end().catch(() => undefined);
    }
  } catch {
    return undefined;
  }
}

/** "database orders" / "databases a, b", for the announcements. */
export function databaseList(names: readonly string[]): string {
  return `database${names.length === 1 ? "" : "s"} ${names.join(", ")}`;
}

/**
 * The announcement before creating `spec`, when it will drop target databases; undefined when
 * it drops none (or the target cannot be asked).
 */
export async function overwriteAnnouncement(spec: MigrationSpec): Promise<string | undefined> {
  const dropped = await targetDatabasesToOverwrite(spec);
  if (!dropped || dropped.length === 0) return undefined;
  return (
    `overwriteDbsInTarget: dropping the target ${databaseList(dropped)} on ` +
    `${spec.target.host}:${spec.target.port} and recreating ${dropped.length === 1 ? "it" : "them"} from the source`
  );
}

/** The announcement before canceling migration `name`: what the rollback drops. */
export async function cancelAnnouncement(at: ControlLocation, name: string): Promise<string> {
  const dropped = await databasesDroppedByCancel(at, name);
  const target = `${at.target.host}:${at.target.port}`;
  return dropped.length > 0
    ? `canceling rolls the target back: dropping the target ${databaseList(dropped)} on ${target} (created by this migration) and the source's replication slot and publication`
    : `canceling drops the source's replication slot and publication; no target database is dropped (this migration created none on ${target})`;
}

/** The target databases migration `name` created: a cancel (or `pulumi destroy`) drops them. */
export async function databasesDroppedByCancel(
  at: ControlLocation,
  name: string,
): Promise<string[]> {
  return readControl(at, [], async (db) => [
    ...((await getMigrationRow(db, name))?.createdDatabases ?? []),
  ]);
}
