// The connectivity check on its own, for a person filling in a migration (the console's Test
// connection): connect as validation does, read the version, and list the databases there.
import { redact } from "../pg/redact";
import type { ConnectionProbe, Endpoint } from "../spec/types";
import { address, openServerSession, release } from "./connectivity";
import { readServerFacts } from "./server";

/** Databases tried for the session, as the server-level checks do. */
const PROBE_DATABASES = ["postgres", "template1"];

/** Connects to `endpoint` as the `role` ("source" or "target") and says how it went. */
export async function probeConnection(
  endpoint: Endpoint,
  role: "source" | "target",
): Promise<ConnectionProbe> {
  const session = await openServerSession(endpoint, PROBE_DATABASES);
  if (!session.ok) return { status: "Failed", message: session.message };
  try {
    const facts = await readServerFacts(session.client);
    const { rows } = await session.client.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY 1",
    );
    return {
      status: "Succeeded",
      message:
        `connected to the ${role} ${address(endpoint)} as user "${endpoint.username}" ` +
        `(PostgreSQL ${facts.version}, SSL ${facts.ssl ? "on" : "off"})`,
      databases: rows.map((r) => r.datname),
    };
  } catch (err) {
    const reason = redact(err instanceof Error ? err.message : String(err), [endpoint.password]);
    return {
      status: "Failed",
      message: `connected to ${address(endpoint)}, but its settings could not be read: ${reason}`,
    };
  } finally {
    await release(session.client);
  }
}
