// The environment of every process we start, built from an allow-list rather than inherited: a
// child gets the paths, locale and CA settings it needs and, only when it connects to a server,
// that server's libpq settings and password. Unrelated variables of the caller (tokens, cloud
// credentials, a stray PGSERVICE) never reach a child.

/** Variables every child keeps, as the caller has them. */
const PASSED = ["PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "NODE_EXTRA_CA_CERTS"];

/** Locale categories (LC_ALL, LC_CTYPE, LC_MESSAGES, …). */
const PASSED_PREFIX = "LC_";

/**
 * The base environment of a child: paths, locale, time zone, temp dir and Node's extra CA file,
 * nothing else. `extra` is added on top (libpq settings, passwords for children that connect).
 */
export function childEnv(
  extra: Readonly<Record<string, string | undefined>> = {},
  env: NodeJS.ProcessEnv = process.env,
): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined) continue;
    if (PASSED.includes(key) || key.startsWith(PASSED_PREFIX)) out[key] = value;
  }
  for (const [key, value] of Object.entries(extra)) {
    if (value !== undefined) out[key] = value;
  }
  return out;
}
