// `npm run demo`: an online migration end to end on two local servers. A sample database with
// an application writing to it, copy + replication, latency falling to ~0 once writes stop,
// cutover, verification of every row, and nothing left behind.
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  cliDriver,
  pulumiAvailable,
  pulumiDriver,
  status,
  workerPids,
  type DemoContext,
} from "./drivers";
import { compareSample, loadSample, slotsOnSource, startWriter, type Writer } from "./sample";
import { findBinDir, startServer, type LocalServer } from "./servers";

const say = (line: string): void => console.log(`\n\x1b[1m${line}\x1b[0m`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function summary(o: Awaited<ReturnType<typeof status>>): string {
  const db = Object.values(o.dbDetails)[0];
  const latency = o.latencySeconds === null ? "-" : `${o.latencySeconds.toFixed(1)} s`;
  const pending = db?.incomingChanges ?? 0; // received from the source, not applied yet
  return `${o.state}/${o.substate}: ${db?.appliedChanges ?? 0} changes applied (${db?.cdcInsertCounter ?? 0} inserts, ${db?.cdcUpdateCounter ?? 0} updates, ${db?.cdcDeleteCounter ?? 0} deletes), ${pending} pending, latency ${latency}`;
}

async function main(): Promise<boolean> {
  const servers: LocalServer[] = [];
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-demo-"));
  const migrationName = `demo-${randomBytes(3).toString("hex")}`;
  let writer: Writer | undefined;
  // Ctrl-C: servers stopped and files removed all the same.
  const interrupt = (): void => {
    for (const s of servers) s.stop();
    fs.rmSync(workDir, { recursive: true, force: true });
    process.exit(130);
  };
  process.once("SIGINT", interrupt);
  try {
    say("1. Two local PostgreSQL servers");
    const binDir = findBinDir();
    const source = await startServer("source", binDir);
    servers.push(source);
    const target = await startServer("target", binDir);
    servers.push(target);
    console.log(
      `   source 127.0.0.1:${source.port}, target 127.0.0.1:${target.port} (PostgreSQL ${source.version}, wal_level=logical)`,
    );

    say(`2. Sample database "shop" on the source, and an application writing to it`);
    const rows = await loadSample(source);
    writer = await startWriter(source);
    console.log(
      `   ${rows.toLocaleString("en-US")} rows in 4 tables; orders are being placed, paid and canceled`,
    );

    const ctx: DemoContext = { source, target, workDir, migrationName };
    const driver = pulumiAvailable() ? pulumiDriver(ctx) : cliDriver(ctx);
    say(`3. Online migration "${migrationName}" with ${driver.label}`);
    await driver.start();

    say("4. Replicating while the application keeps writing");
    for (let i = 0; i < 5; i++) {
      await sleep(2000);
      console.log(`   ${writer.committed()} transactions written; ${summary(await status(ctx))}`);
    }

    say("5. The application stops writing; the target catches up");
    await writer.stop();
    console.log(`   ${writer.committed()} transactions written in all`);
    writer = undefined;
    // Caught up: nothing pending, latency ~0, and the applied count steady for a few seconds
    // (the worker publishes its counters every few seconds).
    let steadySince = Date.now();
    let lastApplied = -1;
    for (const deadline = Date.now() + 90_000; ;) {
      const o = await status(ctx);
      const db = Object.values(o.dbDetails)[0];
      console.log(`   ${summary(o)}`);
      const applied = db?.appliedChanges ?? 0;
      if (applied !== lastApplied) [lastApplied, steadySince] = [applied, Date.now()];
      const drained = db?.incomingChanges === 0 && (o.latencySeconds ?? 0) <= 1;
      if (drained && Date.now() - steadySince >= 4_000) break;
      if (Date.now() > deadline) throw new Error("replication did not catch up within 90 s");
      await sleep(1000);
    }

    say("6. Cutover: drain, sync sequences, drop slot and publication");
    await driver.cutover();

    say("7. Verification: every table and sequence, source vs target");
    const comparisons = await compareSample(source, target);
    for (const c of comparisons) {
      console.log(
        `   ${c.match ? "✔" : "✘"} ${c.name.padEnd(17)} ${c.source}${c.match ? "" : `  ≠  ${c.target}`}`,
      );
    }
    const slots = await slotsOnSource(source);
    console.log(
      `   replication slots left on the source: ${slots.length === 0 ? "none" : slots.join(", ")}`,
    );
    await driver.finish();
    const ok = comparisons.every((c) => c.match) && slots.length === 0;
    say(ok ? "Done: the target holds exactly the source's data." : "Verification FAILED");
    return ok;
  } finally {
    say("Cleaning up: servers stopped, temporary files removed");
    await writer?.stop().catch(() => undefined);
    for (const pid of workerPids(migrationName)) {
      try {
        process.kill(pid, "SIGTERM");
      } catch {
        // already gone
      }
    }
    for (const s of servers.reverse()) s.stop();
    fs.rmSync(workDir, { recursive: true, force: true });
    process.removeListener("SIGINT", interrupt);
  }
}

main().then(
  (ok) => process.exit(ok ? 0 : 1),
  (err: unknown) => {
    console.error(`\ndemo failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
