// Local processes by pid: whether one still runs (workers, the owners of dump directories) and
// its argv. Liveness is decided here once: signal 0, then /proc so zombies count as gone.
import fs from "node:fs";

/** Whether this host has Linux's /proc (then a process's state and argv can be read). */
const HAS_PROC = fs.existsSync("/proc/self/stat");

function readProc(pid: number, file: "stat" | "cmdline"): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/${file}`, "utf8");
  } catch {
    return undefined;
  }
}

/**
 * True when a process with this pid exists on this host and has not exited. A killed worker
 * whose parent never reaps it (a detached worker is re-parented to PID 1, which in containers
 * and micro-VMs often reaps nothing) stays a zombie: signal 0 still reaches it, so /proc's state
 * decides.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  if (!HAS_PROC) return true;
  const stat = readProc(pid, "stat");
  if (stat === undefined) return false; // exited (and was reaped) since the signal
  // "pid (comm) S ...": comm may hold spaces and parentheses; the state follows the last ")".
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return state !== "Z" && state !== "X" && state !== "x";
}

/** The argv of a process on this host; undefined where it cannot be read. */
export function processArgv(pid: number): string[] | undefined {
  const cmdline = readProc(pid, "cmdline");
  return cmdline?.split("\0").filter((arg) => arg !== "");
}
