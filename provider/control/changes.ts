// Change notifications of the control schema (006_notify.sql): every write to a migration's row
// or its databases' rows notifies one channel with the migration's name, so a wait or a worker
// reacts at once instead of at its next poll. Polling stays the fallback: a notification is a
// hint, never the only way a change is seen.
import type { Client } from "pg";
import { connect } from "../pg/connect";
import type { ControlLocation } from "./db";

export const CHANGES_CHANNEL = "pgmigrate_changes";

/**
 * Calls `onChange` whenever migration `name` (undefined: any migration) changes; `client` must
 * stay idle between queries.
 */
export async function listenForChanges(
  client: Client,
  name: string | undefined,
  onChange: () => void,
): Promise<void> {
  client.on("notification", (message) => {
    if (message.channel !== CHANGES_CHANNEL) return;
    if (name === undefined || message.payload === name) onChange();
  });
  await client.query(`LISTEN ${CHANGES_CHANNEL}`);
}

/**
 * A connection of its own that listens for changes of `name` (a worker's pool cannot: LISTEN
 * belongs to one session). `onChange` runs at most once per `minIntervalMs`, the last change
 * never dropped. Close it on every path.
 */
export async function openChangeListener(
  at: ControlLocation,
  name: string | undefined,
  onChange: () => void,
  minIntervalMs = 250,
): Promise<{ close(): Promise<void> }> {
  const client = await connect(at.target, at.controlDatabase, {
    applicationName: "pgmigrate-listen",
  });
  let last = 0;
  let timer: NodeJS.Timeout | undefined;
  const fire = (): void => {
    timer = undefined;
    last = Date.now();
    onChange();
  };
  try {
    await listenForChanges(client, name, () => {
      if (timer) return;
      const wait = last + minIntervalMs - Date.now();
      if (wait <= 0) fire();
      else timer = setTimeout(fire, wait);
    });
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  return {
    close: async () => {
      if (timer) clearTimeout(timer);
      await client.end().catch(() => undefined);
    },
  };
}
