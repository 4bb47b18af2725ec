// DumpTools, the connecting half: pg_dump reaches the source through libpq, not node-postgres, so
// validation connects with it exactly as the copy will (same environment, same root certificate)
// and a TLS or authentication problem of the libpq path fails validation, not the copy after the
// slot was created.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { dbnameConninfo, runTool, toolEnv, type DumpTools } from "../pg/dump-tools";
import type { Endpoint } from "../spec/types";
import { address } from "./connectivity";

/** What to do about a libpq failure, from its message. */
function libpqAdvice(endpoint: Endpoint, stderr: string): string {
  if (/does not match host name/i.test(stderr)) {
    return (
      `the server's certificate does not name host "${endpoint.host}": connect with a host name ` +
      "listed in the certificate's subject alternative names, or have the certificate reissued for this name"
    );
  }
  if (/certificate verify failed|root certificate file|certificate/i.test(stderr)) {
    return endpoint.sslRootCert
      ? `check that sslRootCert "${endpoint.sslRootCert}" holds the CA that signed the server's certificate`
      : "set sslRootCert to the CA that signed the server's certificate (pg_dump was given the CA bundle Node.js uses, plus NODE_EXTRA_CA_CERTS)";
  }
  if (/password authentication failed|no password supplied/i.test(stderr)) {
    return "check the source password";
  }
  return "fix what pg_dump reports; it connects as the copy will";
}

/**
 * Connects to `database` on the source with pg_dump as the copy will, dumping nothing (every
 * schema excluded). Undefined when it worked, else what failed and what to do.
 */
export async function probeDumpConnection(
  tools: DumpTools,
  source: Endpoint,
  database: string,
): Promise<string | undefined> {
  const privateDir = await fs.mkdtemp(path.join(os.tmpdir(), "pgmigrate-probe-"));
  try {
    await runTool(
      tools.pgDump,
      [
        "--schema-only",
        "--exclude-schema=*",
        "--no-publications",
        "--no-subscriptions",
        `--dbname=${dbnameConninfo(database)}`,
      ],
      await toolEnv({ endpoint: source, database, privateDir }),
      [source.password],
    );
    return undefined;
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    return (
      `pg_dump (libpq) could not connect to database "${database}" on ${address(source)} with ` +
      `sslMode "${source.sslMode}" as the copy will: ${text}; ${libpqAdvice(source, text)}`
    );
  } finally {
    await fs.rm(privateDir, { recursive: true, force: true });
  }
}
