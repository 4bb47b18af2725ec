// Named points of the cutover (and of a work unit: committed, not yet marked done) where tests
// stop the worker deterministically, through environment
// variables no user sets: PGMIGRATE_TEST_PAUSE_AT=point[,point] with PGMIGRATE_TEST_PAUSE_DIR
// (the worker writes DIR/point.reached and waits for DIR/point.go), PGMIGRATE_TEST_CRASH_AT=point
// (the worker dies of an unhandled error there). Without them a point costs nothing.
import fs from "node:fs";
import path from "node:path";
import { sleep } from "../pg/retry";

export type TestPoint = "cutover-lsn" | "drained" | "source-dropped" | "unit-committed";

const POLL_MS = 50;

function listed(variable: string, point: TestPoint): boolean {
  return (process.env[variable] ?? "").split(",").includes(point);
}

/** Pauses or crashes here when a test asked for it (see the file's header). */
export async function testPoint(point: TestPoint): Promise<void> {
  if (listed("PGMIGRATE_TEST_CRASH_AT", point)) {
    // Thrown outside any promise chain: what an unhandled error in an event handler does.
    setImmediate(() => {
      throw new Error(`test crash at ${point}`);
    });
    await new Promise<never>(() => undefined);
  }
  const dir = process.env.PGMIGRATE_TEST_PAUSE_DIR;
  if (!dir || !listed("PGMIGRATE_TEST_PAUSE_AT", point)) return;
  fs.writeFileSync(path.join(dir, `${point}.reached`), String(process.pid));
  while (!fs.existsSync(path.join(dir, `${point}.go`))) await sleep(POLL_MS);
}
