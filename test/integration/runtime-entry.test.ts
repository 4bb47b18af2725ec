// The worker's one entry point (runtime/main.js, what the spawner starts): it runs against the
// control store named by --server, stops cleanly on the first SIGTERM/SIGINT (exit 0), gives up
// at once on a second (exit 130), refuses bad arguments with exit 2 without the password, and
// registers in pgmigrate.runtimes with a heartbeat file a liveness probe can read.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { controlUrl } from "../../provider/runtime/spawn";
import { until } from "../support/wait";
import { startPostgres, type PgServer } from "../support/postgres";
import { endpointOf } from "../support/spec";

const WORKER_MAIN = path.join(__dirname, "..", "..", "provider", "runtime", "main.js");

interface Worker {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  output(): string;
}

describe("worker entry point (runtime/main.js)", () => {
  let target: PgServer;
  const children: ChildProcess[] = [];

  before(async () => {
    target = await startPostgres();
  });
  after(async () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    await target?.stop();
  });

  function startWorker(extra: string[] = []): Worker {
    const url = controlUrl(endpointOf(target), "ctl_entry");
    const child = spawn(process.execPath, [WORKER_MAIN, "runtime", "--server", url, ...extra], {
      env: { ...process.env, PGMIGRATE_TARGET_PASSWORD: target.password },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(child);
    let output = "";
    child.stdout?.on("data", (c: Buffer) => (output += c.toString()));
    child.stderr?.on("data", (c: Buffer) => (output += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
    return { child, exited, output: () => output };
  }

  /** The worker is up once its control pool is connected to the control database. */
  async function serving(worker: Worker): Promise<void> {
    await until(
      async () => {
        const rows = await target.query(
          `SELECT 1 FROM pg_stat_activity
          WHERE application_name = 'pgmigrate-runtime' AND datname = 'ctl_entry'`,
        );
        return rows.length > 0 ? true : undefined;
      },
      { what: `the worker to connect (output so far: ${worker.output()})` },
    );
  }

  it("stops cleanly on SIGTERM and exits 0", async () => {
    await target.query("CREATE DATABASE ctl_entry");
    const worker = startWorker();
    await serving(worker);
    worker.child.kill("SIGTERM");
    assert.equal(await worker.exited, 0, worker.output());
    assert.match(worker.output(), /SIGTERM received: stopping/);
  });

  it("registers as a runtime, touches its heartbeat file at every heartbeat, and leaves the registry on a clean stop", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-heartbeat-"));
    const file = path.join(dir, "alive");
    try {
      const worker = startWorker(["--heartbeat-file", file]);
      await serving(worker);
      const first = await until(
        () => (fs.existsSync(file) ? fs.statSync(file).mtimeMs : undefined),
        {
          what: "the heartbeat file",
        },
      );
      await until(() => fs.statSync(file).mtimeMs > first, {
        what: "the heartbeat file touched again",
        timeoutMs: 10_000,
      });
      const registered = await target.query<{ host: string; migration: string | null }>(
        "SELECT host, migration FROM pgmigrate.runtimes WHERE pid = $1",
        [worker.child.pid],
        "ctl_entry",
      );
      assert.deepEqual(registered, [{ host: os.hostname(), migration: null }]);
      worker.child.kill("SIGTERM");
      assert.equal(await worker.exited, 0, worker.output());
      const left = await target.query(
        "SELECT 1 FROM pgmigrate.runtimes WHERE pid = $1",
        [worker.child.pid],
        "ctl_entry",
      );
      assert.deepEqual(left, []);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("exits 130 on a second signal while the clean stop is still under way", async () => {
    const worker = startWorker();
    await serving(worker);
    // Hold the worker's next poll of the control store, so its clean stop cannot finish.
    const blocker = await target.connect("ctl_entry");
    try {
      await blocker.query("BEGIN");
      await blocker.query("LOCK TABLE pgmigrate.migrations IN ACCESS EXCLUSIVE MODE");
      await until(
        async () => {
          const rows = await target.query(
            `SELECT 1 FROM pg_stat_activity
            WHERE application_name = 'pgmigrate-runtime' AND wait_event_type = 'Lock'`,
          );
          return rows.length > 0 ? true : undefined;
        },
        { what: "the worker's poll to wait for the lock" },
      );
      worker.child.kill("SIGTERM");
      await until(
        async () => (/SIGTERM received: stopping/.test(worker.output()) ? true : undefined),
        { what: "the worker to start stopping" },
      );
      worker.child.kill("SIGINT");
      assert.equal(await worker.exited, 130, worker.output());
    } finally {
      await blocker.query("ROLLBACK").catch(() => undefined);
      await blocker.end();
    }
  });

  it("refuses bad arguments with exit 2, never showing the password", () => {
    const run = (args: string[]): { status: number | null; output: string } => {
      const r = spawnSync(process.execPath, [WORKER_MAIN, "runtime", ...args], {
        env: { ...process.env, PGMIGRATE_TARGET_PASSWORD: "s3cret-pw" },
        encoding: "utf8",
        timeout: 30_000,
      });
      return { status: r.status, output: r.stdout + r.stderr };
    };
    const missing = run([]);
    assert.equal(missing.status, 2, missing.output);
    assert.match(missing.output, /--server URL/);
    const badUrl = run(["--server", "postgresql://me:s3cret-pw@db/x?sslmode=allow"]);
    assert.equal(badUrl.status, 2, badUrl.output);
    assert.match(badUrl.output, /sslmode "allow"/);
    const badName = run(["--server", "postgresql://me@db/x", "--migration-name", "no spaces"]);
    assert.equal(badName.status, 2, badName.output);
    for (const r of [missing, badUrl, badName]) assert.ok(!r.output.includes("s3cret-pw"));
  });
});
