// One trust store for both kinds of connection: libpq children (pg_dump, pg_restore) verify the
// server exactly as our node-postgres connections do. Without sslRootCert, Node trusts its own
// bundle (tls.rootCertificates plus NODE_EXTRA_CA_CERTS) while libpq would read
// ~/.postgresql/root.crt; so the bundle Node uses is written to a private file for libpq.
import fs from "node:fs/promises";
import path from "node:path";
import tls from "node:tls";
import type { Endpoint } from "../spec/types";

/** The CA file name inside a private directory of ours (created 0700 by mkdtemp). */
const BUNDLE_FILE = "node-ca-bundle.pem";
/** A name that never exists: libpq's require/prefer then verifies nothing, as Node does. */
const NO_ROOT_CERT = "no-root-cert.pem";

/** Node ≥ 22.15 says which certificates it trusts by default (roots, system store, extra file). */
type CaCertificates = (which: "default") => string[];

/** The certificates Node verifies servers with: its bundled roots plus NODE_EXTRA_CA_CERTS. */
export async function nodeCaBundle(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const getCaCertificates = (tls as { getCACertificates?: CaCertificates }).getCACertificates;
  if (getCaCertificates) return getCaCertificates("default").join("\n") + "\n";
  const parts = [...tls.rootCertificates];
  const extra = env.NODE_EXTRA_CA_CERTS;
  // Node itself only warns about an unreadable extra file and goes on with its roots.
  if (extra) parts.push(await fs.readFile(extra, "utf8").catch(() => ""));
  return parts.filter((p) => p.trim().length > 0).join("\n") + "\n";
}

/**
 * The root certificate file libpq must use for `endpoint` so that it verifies as our own
 * connections do, written into `privateDir` (a directory only we can read, removed by the
 * caller) when needed:
 * - sslRootCert given: that file (both sides use it);
 * - verify-ca/verify-full without one: Node's bundle, written once to a 0600 file;
 * - require/prefer without one: a file that does not exist, so a ~/.postgresql/root.crt does not
 *   turn libpq's require into verify-ca while Node does not verify;
 * - disable: none.
 */
export async function libpqRootCert(
  endpoint: Endpoint,
  privateDir: string,
): Promise<string | undefined> {
  if (endpoint.sslRootCert) return endpoint.sslRootCert;
  switch (endpoint.sslMode) {
    case "disable":
      return undefined;
    case "prefer":
    case "require":
      return path.join(privateDir, NO_ROOT_CERT);
    case "verify-ca":
    case "verify-full": {
      const file = path.join(privateDir, BUNDLE_FILE);
      // wx: never through a file or link someone else put there.
      await fs.writeFile(file, await nodeCaBundle(), { mode: 0o600, flag: "wx" }).catch((err) => {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      });
      return file;
    }
  }
}
