// Where a local worker writes its log: a private per-user directory (XDG state dir, else
// ~/.local/state/pgmigrate, else a uid-named directory under the temp dir), created 0700 and
// checked before use (ours, not a symlink, not open to others), and a file opened without
// following symlinks. A directory another local user could create or write (a shared /tmp)
// would let them point our log at any file we can write.
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { MigrationError } from "../pg/errors";
import type { MigrationSpec } from "../spec/types";

/** The error of a log location we refuse to use. */
function unsafe(message: string, cause?: unknown): MigrationError {
  return new MigrationError("runtime", message, { code: "PGM_LOG_LOCATION", cause });
}

function usableHome(env: NodeJS.ProcessEnv): string | undefined {
  const home = env.HOME || os.homedir();
  if (!home || !path.isAbsolute(home) || home === "/") return undefined;
  try {
    const st = fs.statSync(home);
    return st.isDirectory() && st.uid === process.getuid?.() ? home : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The default log directory: $XDG_STATE_HOME/pgmigrate, else ~/.local/state/pgmigrate, else
 * (no usable home) <tmpdir>/pgmigrate-<uid>.
 */
export function defaultLogDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_STATE_HOME;
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, "pgmigrate");
  const home = usableHome(env);
  if (home) return path.join(home, ".local", "state", "pgmigrate");
  return path.join(os.tmpdir(), `pgmigrate-${process.getuid?.() ?? "user"}`);
}

/**
 * Makes sure `dir` is a private directory of ours: created 0700 when missing (its parents as
 * needed), else it must be a real directory (not a symlink) owned by this user and not writable
 * by others. The default directory must not even be readable by others; a directory the user
 * chose (runtime.logDir) may be, since the files are 0600.
 */
export function ensurePrivateDir(dir: string, chosen: boolean): void {
  const parent = path.dirname(dir);
  try {
    fs.mkdirSync(parent, { recursive: true, mode: 0o700 });
    // Not recursive for the last component: mkdir never follows a symlink there (EEXIST).
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") {
      throw unsafe(`cannot create the worker log directory ${dir}: ${(err as Error).message}`, err);
    }
  }
  const st = fs.lstatSync(dir);
  if (st.isSymbolicLink() || !st.isDirectory()) {
    throw unsafe(
      `the worker log directory ${dir} is ${st.isSymbolicLink() ? "a symbolic link" : "not a directory"}: ` +
        "remove it (or set runtime.logDir to a directory of yours)",
    );
  }
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw unsafe(
      `the worker log directory ${dir} belongs to uid ${st.uid}, not to this user (uid ${uid}): ` +
        "someone else created it; remove it or set runtime.logDir to a directory of yours",
    );
  }
  const open = st.mode & (chosen ? 0o022 : 0o077);
  if (open !== 0) {
    throw unsafe(
      `the worker log directory ${dir} is open to other users (mode ${(st.mode & 0o777).toString(8)}): ` +
        `chmod ${chosen ? "go-w" : "700"} ${dir}`,
    );
  }
}

/**
 * The log file name of a migration: its name plus a short hash of the control store's place
 * (target host:port and control database), so two target servers' migrations of the same name
 * never share a file.
 */
export function logFileName(spec: MigrationSpec): string {
  const where = `${spec.target.host}:${spec.target.port}/${spec.controlDatabase}`;
  const hash = createHash("sha256").update(where).digest("hex").slice(0, 10);
  return `${spec.migrationName}-${hash}.log`;
}

/**
 * Opens the worker's log file for appending (O_NOFOLLOW: a symlink planted at its name is refused,
 * not followed; created 0600) in the private directory; returns its descriptor and path.
 */
export function openWorkerLog(
  spec: MigrationSpec,
  logDir: string | undefined,
): { fd: number; log: string } {
  const dir = logDir ?? defaultLogDir();
  ensurePrivateDir(dir, logDir !== undefined);
  const log = path.join(dir, logFileName(spec));
  const { O_WRONLY, O_APPEND, O_CREAT, O_NOFOLLOW } = fs.constants;
  let fd: number;
  try {
    fd = fs.openSync(log, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW, 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ELOOP" ? "it is a symbolic link" : (err as Error).message;
    throw unsafe(`cannot open the worker log file ${log}: ${why}`, err);
  }
  const st = fs.fstatSync(fd);
  if (!st.isFile() || st.nlink > 1 || (process.getuid && st.uid !== process.getuid())) {
    fs.closeSync(fd);
    throw unsafe(
      `the worker log file ${log} is not a plain file of this user (a link or someone else's): remove it`,
    );
  }
  if ((st.mode & 0o077) !== 0) fs.fchmodSync(fd, 0o600);
  return { fd, log };
}
