// Bench: applying a burst of small source transactions on the target, native logical replication
// (subscription) against our startReplication; both targets are checksummed against the source.
// Usage: node dist/bench/replication.js [--changes 200000] [--accounts 100000] [--clients 4]
//        [--modes backlog,live]
import { parseArgs } from "node:util";
import { compareDatabases } from "../test/support/checksum";
import { startPostgres, stopAllPostgres } from "../test/support/postgres";
import { DB, NATIVE_DB, Setup } from "./replication-setup";
import {
  BENCH_SETTINGS,
  ProcessSampler,
  clientBinDir,
  formatTable,
  machine,
  mb,
  perSecond,
  positiveInt,
  runBench,
  secs,
} from "./support";
import { createWorkloadSchema, runBurst, waitForMarker, type Burst } from "./workload";

const MODES = ["backlog", "live"] as const;
type Mode = (typeof MODES)[number];

interface Row {
  readonly mode: Mode;
  readonly method: string;
  readonly burst: Burst;
  /** From burst end (marker committed on the source) to the marker visible on the target. */
  readonly catchUpMs: number;
  /** backlog: the drain; live: burst start → caught up. */
  readonly spanMs: number;
  /** Ours only: this process during the phase. */
  readonly peakRssBytes?: number;
  readonly cpuMs?: number;
}

interface Plan {
  readonly bin: string;
  readonly changes: number;
  readonly accounts: number;
  readonly clients: number;
  readonly timeoutMs: number;
}

/** Backlog: the burst is written while nothing applies; then each side drains it alone. */
async function backlog(setup: Setup, plan: Plan, marker: number): Promise<Row[]> {
  const { source, target } = setup;
  const burst = await runBurst(source, { ...plan, database: DB, marker });

  const nativeStart = performance.now();
  await setup.setNative(true);
  await waitForMarker(target, NATIVE_DB, marker, plan.timeoutMs);
  const nativeMs = performance.now() - nativeStart;
  await setup.setNative(false);

  const sampler = new ProcessSampler();
  const oursStart = performance.now();
  let oursMs: number;
  try {
    await setup.startOurs();
    await waitForMarker(target, DB, marker, plan.timeoutMs);
    oursMs = performance.now() - oursStart;
  } finally {
    await setup.stopOurs();
  }
  const usage = sampler.stop();
  return [
    {
      mode: "backlog",
      method: "native subscription",
      burst,
      catchUpMs: nativeMs,
      spanMs: nativeMs,
    },
    {
      mode: "backlog",
      method: "startReplication",
      burst,
      catchUpMs: oursMs,
      spanMs: oursMs,
      ...usage,
    },
  ];
}

/** Live: each side applies while its own burst is written; catch-up is measured from burst end. */
async function live(setup: Setup, plan: Plan, firstMarker: number): Promise<Row[]> {
  const { source, target } = setup;
  const timed = async (
    applied: string,
    marker: number,
  ): Promise<{ burst: Burst; catchUpMs: number; spanMs: number }> => {
    const start = performance.now();
    const burst = await runBurst(source, { ...plan, database: DB, marker });
    const end = performance.now();
    await waitForMarker(target, applied, marker, plan.timeoutMs);
    const now = performance.now();
    return { burst, catchUpMs: now - end, spanMs: now - start };
  };

  await setup.setNative(true);
  await setup.nativeRunning(plan.timeoutMs);
  const native = await timed(NATIVE_DB, firstMarker);
  await setup.setNative(false);

  // Ours first drains the native burst (untimed), then applies its own while it is written.
  let ours: Awaited<ReturnType<typeof timed>>;
  let usage: ReturnType<ProcessSampler["stop"]>;
  await setup.startOurs();
  try {
    await waitForMarker(target, DB, firstMarker, plan.timeoutMs);
    const sampler = new ProcessSampler();
    try {
      ours = await timed(DB, firstMarker + 1);
    } finally {
      usage = sampler.stop();
    }
  } finally {
    await setup.stopOurs();
  }
  // The native subscriber catches up on the second burst too, for the final comparison.
  await setup.setNative(true);
  await waitForMarker(target, NATIVE_DB, firstMarker + 1, plan.timeoutMs);
  return [
    { mode: "live", method: "native subscription", ...native },
    { mode: "live", method: "startReplication", ...ours, ...usage },
  ];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      changes: { type: "string" },
      accounts: { type: "string" },
      clients: { type: "string" },
      modes: { type: "string" },
    },
  });
  const modes = (values.modes ?? MODES.join(",")).split(",").map((m) => m.trim());
  const unknown = modes.filter((m) => !(MODES as readonly string[]).includes(m));
  if (unknown.length > 0)
    throw new Error(`--modes takes ${MODES.join(", ")}; got ${unknown.join(", ")}`);
  const changes = positiveInt("changes", values.changes, 200_000);
  const plan: Plan = {
    bin: clientBinDir(),
    changes,
    accounts: positiveInt("accounts", values.accounts, 100_000),
    clients: positiveInt("clients", values.clients, 4),
    timeoutMs: Math.max(600_000, changes * 10),
  };

  const [source, target] = await Promise.all([
    // Walsenders send only flushed WAL: with the harness's asynchronous commit the wal writer's
    // 200 ms delay would be in every catch-up time (fsync stays off, so flushing costs little).
    startPostgres({ settings: { ...BENCH_SETTINGS, synchronous_commit: "on" } }),
    startPostgres({ settings: BENCH_SETTINGS }),
  ]);
  const setup = new Setup(source, target);
  try {
    await createWorkloadSchema(source, DB, plan.accounts);
    await createWorkloadSchema(target, DB, plan.accounts);
    await createWorkloadSchema(target, NATIVE_DB, plan.accounts);
    await setup.createNative();
    await setup.createOurs();
    console.log(
      `replication bench: bursts of ${changes.toLocaleString("en-US")} changes (UPDATE + INSERT per transaction), ` +
        `${plan.accounts.toLocaleString("en-US")} accounts, ${plan.clients} pgbench clients`,
    );
    console.log(`machine: ${machine()}; PostgreSQL ${source.version}`);

    const rows: Row[] = [];
    if (modes.includes("backlog")) rows.push(...(await backlog(setup, plan, 1)));
    if (modes.includes("live")) rows.push(...(await live(setup, plan, 2)));

    console.log(
      "\n" +
        formatTable(
          [
            "mode",
            "method",
            "changes",
            "burst s",
            "catch-up s",
            "changes/s",
            "our CPU s",
            "peak RSS MB",
          ],
          rows.map((r) => [
            r.mode,
            r.method,
            r.burst.changes.toLocaleString("en-US"),
            secs(r.burst.ms),
            secs(r.catchUpMs),
            perSecond(r.burst.changes, r.spanMs),
            r.cpuMs === undefined ? "n/a" : secs(r.cpuMs),
            r.peakRssBytes === undefined ? "n/a" : mb(r.peakRssBytes),
          ]),
        ),
    );
    console.log(
      "backlog: apply starts after the burst; catch-up = drain time; changes/s = changes / drain time\n" +
        "live: apply runs during the burst; catch-up = burst end → marker on target; changes/s = changes / (burst start → caught up)\n" +
        "our CPU / peak RSS: this Node process during the phase (RSS sampled every 50 ms); the native apply worker is a server process",
    );

    for (const database of [DB, NATIVE_DB]) {
      const comparison = await compareDatabases(source, DB, target, database);
      if (!comparison.equal) {
        throw new Error(
          `target ${database} differs from the source:\n${comparison.differences.join("\n")}`,
        );
      }
    }
    console.log(
      `both targets (${DB}, ${NATIVE_DB}) match the source: row counts and checksums of every table`,
    );
  } finally {
    await setup.cleanup().catch((err: unknown) => console.error("cleanup:", err));
    await Promise.all([source.stop(), target.stop()]);
  }
}

runBench(main, stopAllPostgres);
