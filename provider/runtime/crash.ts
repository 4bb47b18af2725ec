// A worker process dying of an error nothing handled: the crash is recorded on the migrations it
// served (with their position) and their leases released, so that the next worker starts at
// once — and, after CRASH_LIMIT crashes in a row at one position, fails the migration instead of
// crashing again (see runMigration).
import os from "node:os";
import { recordCrash } from "../control/crashes";
import type { ControlLocation } from "../control/db";
import { addEvent } from "../control/events";
import { withClient } from "../pg/connect";
import { sleep } from "../pg/retry";
import { logLine } from "./journal";

/** How long a crashing worker tries to record its crash before exiting anyway. */
const RECORD_TIMEOUT_MS = 10_000;

/** Records the crash of this process (`error` already redacted); never throws. */
export async function recordWorkerCrash(at: ControlLocation, error: string): Promise<void> {
  const owner = `${os.hostname()}:${process.pid}:`;
  const record = withClient(
    at.target,
    at.controlDatabase,
    async (client) => {
      for (const { name, crashCount } of await recordCrash(client, owner, error)) {
        await addEvent(
          client,
          name,
          "error",
          `the worker crashed (${crashCount} time(s) in a row at this point): ${error}`,
        );
      }
    },
    { applicationName: "pgmigrate-runtime" },
  );
  const timeout = sleep(RECORD_TIMEOUT_MS).then(() => {
    throw new Error(`timed out after ${RECORD_TIMEOUT_MS / 1000} s`);
  });
  try {
    await Promise.race([record, timeout]);
  } catch (err) {
    logLine([], "error", `could not record the crash: ${(err as Error).message}`);
  }
}
