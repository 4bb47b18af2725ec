// Connection tests before a migration exists (the console's Create page): the same connectivity
// check validation runs, for one server, with a bound on how long it may take.
import { probeConnectionInProcess } from "../runtime/supervise";
import type { ConnectionProbe, Endpoint } from "../spec/types";

export type { ConnectionProbe } from "../spec/types";

/** Longest a connection test waits (validation's connect timeout is 5 s per attempt). */
export const CONNECTION_TEST_TIMEOUT_MS = 15_000;

/**
 * Connects to `endpoint` as validation's SourceConnectivity/TargetConnectivity check does; on
 * success also lists the databases there (the Create page offers the source's to pick from).
 * Failures (and a server too slow to answer) are data.
 */
export async function testConnection(
  endpoint: Endpoint,
  role: "source" | "target",
  timeoutMs: number = CONNECTION_TEST_TIMEOUT_MS,
): Promise<ConnectionProbe> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<ConnectionProbe>((resolve) => {
    timer = setTimeout(
      () =>
        resolve({
          status: "Failed",
          message: `no answer from the ${role} within ${timeoutMs / 1000} s: check the host and port`,
        }),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([probeConnectionInProcess(endpoint, role), late]);
  } finally {
    clearTimeout(timer);
  }
}
