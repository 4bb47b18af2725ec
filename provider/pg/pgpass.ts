// libpq's password file (~/.pgpass or $PGPASSFILE): host:port:database:username:password lines,
// `*` wildcards, `\:` and `\\` escapes, first match wins — so the CLI finds passwords as psql does.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** One line of a password file, escapes already removed. */
export interface PgpassEntry {
  readonly host: string;
  readonly port: string;
  readonly database: string;
  readonly username: string;
  readonly password: string;
}

/** What a connection is looking for. */
export interface PgpassKey {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly username: string;
}

/** Splits one line on unescaped colons; the fifth field keeps any further (escaped) colons. */
function splitFields(line: string): string[] | undefined {
  const fields: string[] = [];
  let current = "";
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (ch === "\\" && i + 1 < line.length) {
      current += line[++i];
    } else if (ch === ":" && fields.length < 4) {
      fields.push(current);
      current = "";
    } else {
      current += ch;
    }
  }
  fields.push(current);
  return fields.length === 5 ? fields : undefined;
}

/** Parses a password file's text; comment lines, blank lines and malformed lines are skipped. */
export function parsePgpass(text: string): PgpassEntry[] {
  const entries: PgpassEntry[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/\r$/, "");
    if (line.length === 0 || line.startsWith("#")) continue;
    const fields = splitFields(line);
    if (!fields) continue;
    const [host, port, database, username, password] = fields;
    entries.push({ host, port, database, username, password });
  }
  return entries;
}

const matches = (pattern: string, value: string): boolean => pattern === "*" || pattern === value;

/** The password of the first entry matching `key`, as libpq picks it. */
export function findPgpassPassword(
  entries: readonly PgpassEntry[],
  key: PgpassKey,
): string | undefined {
  const found = entries.find(
    (e) =>
      matches(e.host, key.host) &&
      matches(e.port, String(key.port)) &&
      matches(e.database, key.database) &&
      matches(e.username, key.username),
  );
  return found?.password;
}

/** The password file libpq would read: $PGPASSFILE, else ~/.pgpass. */
export function pgpassPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.PGPASSFILE && env.PGPASSFILE.length > 0
    ? env.PGPASSFILE
    : path.join(os.homedir(), ".pgpass");
}

export interface PgpassLookup {
  readonly password?: string;
  /** Set when the file exists but was not used (libpq ignores group/world-readable files). */
  readonly warning?: string;
}

/** Looks `key` up in the password file; a missing file simply yields no password. */
export function lookupPgpass(key: PgpassKey, env: NodeJS.ProcessEnv = process.env): PgpassLookup {
  const file = pgpassPath(env);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    return {};
  }
  if (!stat.isFile()) return {};
  if (process.platform !== "win32" && (stat.mode & 0o077) !== 0) {
    return {
      warning: `password file "${file}" has group or world access and is ignored; permissions should be u=rw (0600) or less`,
    };
  }
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return { warning: `password file "${file}" could not be read and is ignored` };
  }
  return { password: findPgpassPassword(parsePgpass(text), key) };
}
