// Worker processes as the OS lists them: which `pgmigrate runtime` processes serve a migration,
// waiting for one to exit, and killing what a test leaves behind.
import { execFileSync } from "node:child_process";
import { processAlive } from "../../provider/pg/process";
import { until } from "./wait";

/** Pids of the workers serving `name` (`pgmigrate runtime ... --migration-name name`). */
export function workerPids(name: string): number[] {
  const ps = execFileSync("ps", ["-eo", "pid,args"], { encoding: "utf8" });
  return ps
    .split("\n")
    .filter((l) => l.includes(" runtime ") && new RegExp(`--migration-name ${name}(\\s|$)`).test(l))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}

/** SIGKILLs every worker still serving one of `names` (a test's teardown). */
export function killWorkers(names: readonly string[]): void {
  for (const name of names) {
    for (const pid of workerPids(name)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}

/** Resolves once process `pid` has exited (a zombie counts as exited). */
export async function processGone(pid: number, what: string): Promise<void> {
  await until(() => !processAlive(pid), { what });
}
