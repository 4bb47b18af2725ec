// Connection tests before a migration exists (the console's Create page): the same connectivity
// check validation runs, for one server, with a bound on how long it may take.
import { probeConnectionInProcess } from "../runtime/supervise";
import type { ConnectionProbe, Endpoint } from "../spec/types";

export type { ConnectionProbe } from "../spec/types";

/** Longest a connection test waits (validation's connect timeout is 5 s per attempt). */
export const CONNECTION_TEST_TIMEOUT_MS = 15_000;

/**
 * Connects to `endpoint` as validation's SourceConnectivity/TargetConnectivity check does; on
 * success also lists the databases there. Failures (and a server too slow to answer) are data.
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

/** The databases of the source a migration may pick from (a failed connection says why). */
export async function listSourceDatabases(
  endpoint: Endpoint,
): Promise<{ readonly databases: readonly string[] } | { readonly error: string }> {
  const probe = await testConnection(endpoint, "source");
  return probe.status === "Succeeded" ? { databases: probe.databases } : { error: probe.message };
}
