// Telling a live worker from a dead one by its pid: a SIGKILLed worker that nobody reaps (a
// detached worker's parent is PID 1 once its spawner exited) is a zombie, not alive; a pid reused
// by another program is not our worker.
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import { processAlive } from "../../provider/pg/process";
import { workerProcessAlive } from "../../provider/runtime/spawn";
import { until } from "../support/wait";

// Processes start and end within seconds: polled often, given up on soon.
const QUICKLY = { timeoutMs: 10_000, intervalMs: 50 };

const LINUX = process.platform === "linux";

/** Starts `argv` detached from a short-lived node process, so this process is not its parent. */
function orphan(argv: readonly string[]): number {
  const script =
    "const c = require('child_process').spawn(process.argv[1], process.argv.slice(2), " +
    "{ detached: true, stdio: 'ignore' }); c.unref(); process.stdout.write(String(c.pid));";
  return Number(execFileSync(process.execPath, ["-e", script, ...argv], { encoding: "utf8" }));
}

function stateOf(pid: number): string {
  return execFileSync("ps", ["-o", "stat=", "-p", String(pid)], { encoding: "utf8" }).trim();
}

describe("worker processes", () => {
  const started: number[] = [];
  const children: ChildProcess[] = [];

  after(() => {
    for (const pid of started) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone (or a zombie, which only its parent can remove)
      }
    }
    for (const child of children) child.kill("SIGKILL");
  });

  it("counts a killed, unreaped worker as dead at once", async function () {
    if (!LINUX) this.skip();
    const pid = orphan([
      process.execPath,
      "-e",
      "setTimeout(() => {}, 60000)",
      "runtime",
      "--migration-name",
      "orders",
    ]);
    started.push(pid);
    await until(() => workerProcessAlive(pid, "orders"), {
      what: "the worker to start",
      ...QUICKLY,
    });
    assert.equal(processAlive(pid), true);

    process.kill(pid, "SIGKILL");
    await until(() => !processAlive(pid), {
      what: "the worker to be noticed dead",
      ...QUICKLY,
    });
    // Where PID 1 does not reap (as in many containers), the kernel still lists it: a zombie
    // that signal 0 reaches, yet dead.
    if (fs.existsSync(`/proc/${pid}`)) assert.match(stateOf(pid), /^Z/);
    assert.equal(workerProcessAlive(pid, "orders"), false);
  });

  it("does not take a reused pid for a worker", async function () {
    if (!LINUX) this.skip();
    const other = spawn("sleep", ["60"], { stdio: "ignore" });
    children.push(other);
    const pid = other.pid as number;
    await until(() => processAlive(pid), {
      what: "sleep to start",
      ...QUICKLY,
    });
    assert.equal(workerProcessAlive(pid, "orders"), false, "not a pgmigrate runtime");

    const worker = spawn(
      process.execPath,
      ["-e", "setTimeout(() => {}, 60000)", "runtime", "--migration-name", "orders"],
      { stdio: "ignore" },
    );
    children.push(worker);
    const workerPid = worker.pid as number;
    await until(() => processAlive(workerPid), {
      what: "the worker to start",
      ...QUICKLY,
    });
    assert.equal(workerProcessAlive(workerPid, "orders"), true);
    assert.equal(workerProcessAlive(workerPid, "invoices"), false, "serves another migration");
    assert.equal(workerProcessAlive(process.pid, "orders"), true, "a worker in this process");
  });
});
