// Bench: applying changes — our stream against a native subscription on the same backlog, side
// by side in one run, alternating which drains first, medians and ratios; then the lag of each
// under a steady rate. Every target is checksummed against the source at the end.
// Usage: node dist/bench/apply.js [--pairs 3] [--workloads tpcb,insert,update,lag]
//   [--tpcb-transactions 25000] [--scale 10] [--inserts 100000] [--updates 100000]
//   [--update-rows 1000000] [--rate 1000] [--lag-seconds 60]
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import {
  createSlotWithSnapshot,
  dropSlotAndPublication,
  ensurePublication,
  startReplication,
  type ReplicationStream,
} from "../provider/cdc";
import { quoteLiteral } from "../provider/pg/ident";
import { publicationName, slotName } from "../provider/pg/names";
import { compareDatabases } from "../test/support/checksum";
import { startPostgres, stopAllPostgres, type PgServer } from "../test/support/postgres";
import {
  BENCH_SETTINGS,
  ProcessSampler,
  clientBinDir,
  endpoint,
  formatTable,
  machine,
  median,
  mb,
  positiveInt,
  runBench,
  runCommand,
  secs,
  toolEnv,
} from "./support";
import { waitForMarker } from "./workload";

const MARKER_TABLE = "CREATE TABLE bench_marker (id int PRIMARY KEY, at timestamptz NOT NULL)";

/** A backlog workload: its tables (identical everywhere) and a pgbench script run on the source. */
interface Workload {
  readonly name: string;
  readonly describe: string;
  /** Creates the tables and rows in `database` of `server` (the same data on every call). */
  create(server: PgServer, database: string): Promise<void>;
  /** pgbench arguments after the connection ones (script, transactions, clients). */
  readonly pgbench: (scriptDir: string) => string[];
  readonly changes: number;
}

interface Drain {
  readonly ms: number;
  readonly peakRssBytes?: number;
  readonly cpuMs?: number;
}

const percentile = (values: readonly number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
};

/** One workload's three databases: the source, ours on the target, the native subscriber's. */
class Lane {
  readonly slot: string;
  readonly publication: string;
  readonly subscription: string;
  readonly nativeDb: string;
  private consistentPoint = "";
  private subscribed = false;
  stream?: ReplicationStream;
  private marker = 0;

  constructor(
    readonly source: PgServer,
    readonly target: PgServer,
    readonly db: string,
    readonly bin: string,
  ) {
    this.slot = slotName("bench-apply", db);
    this.publication = publicationName(`bench-apply-${db}`);
    this.subscription = `${db}_native`;
    this.nativeDb = `${db}_native`;
  }

  async create(workload: Workload): Promise<void> {
    for (const [server, database] of [
      [this.source, this.db],
      [this.target, this.db],
      [this.target, this.nativeDb],
    ] as const) {
      await server.query(`CREATE DATABASE ${database}`);
      await workload.create(server, database);
      await server.query(MARKER_TABLE, [], database);
      await server.query("VACUUM ANALYZE", [], database);
    }
    await this.source.query(`CREATE PUBLICATION ${this.subscription} FOR ALL TABLES`, [], this.db);
    const [socket] = await this.source.query<{ dir: string }>(
      "SELECT split_part(current_setting('unix_socket_directories'), ',', 1) AS dir",
    );
    // Over the Unix socket (trust in the harness): no password in the subscriber's catalog.
    const conninfo = `host=${socket.dir} port=${this.source.port} user=${this.source.user} dbname=${this.db}`;
    await this.target.query(
      `CREATE SUBSCRIPTION ${this.subscription} CONNECTION ${quoteLiteral(conninfo)}
         PUBLICATION ${this.subscription} WITH (copy_data = false, enabled = false)`,
      [],
      this.nativeDb,
    );
    this.subscribed = true;
    await ensurePublication(endpoint(this.source), this.db, this.publication);
    const handle = await createSlotWithSnapshot(endpoint(this.source), this.db, this.slot);
    await handle.release();
    this.consistentPoint = handle.consistentPoint;
  }

  /** Writes the workload's backlog on the source (nothing applies meanwhile); its marker id. */
  async burst(workload: Workload): Promise<number> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-bench-apply-"));
    try {
      await runCommand({
        bin: path.join(this.bin, "pgbench"),
        args: ["--no-vacuum", "--protocol=prepared", ...workload.pgbench(dir), this.db],
        env: toolEnv(this.source, this.db),
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    return this.mark();
  }

  async mark(): Promise<number> {
    const id = ++this.marker;
    await this.source.query("INSERT INTO bench_marker VALUES ($1, now())", [id], this.db);
    return id;
  }

  async setNative(enabled: boolean): Promise<void> {
    const verb = enabled ? "ENABLE" : "DISABLE";
    await this.target.query(`ALTER SUBSCRIPTION ${this.subscription} ${verb}`, [], this.nativeDb);
  }

  async drainNative(marker: number): Promise<Drain> {
    const started = performance.now();
    await this.setNative(true);
    await waitForMarker(this.target, this.nativeDb, marker, 1_800_000);
    const ms = performance.now() - started;
    await this.setNative(false);
    return { ms };
  }

  async startOurs(): Promise<ReplicationStream> {
    this.stream = await startReplication({
      source: endpoint(this.source),
      target: endpoint(this.target),
      database: this.db,
      slotName: this.slot,
      publication: this.publication,
      startLsn: this.consistentPoint,
    });
    return this.stream;
  }

  async stopOurs(): Promise<void> {
    await this.stream?.stop();
    this.stream = undefined;
  }

  async drainOurs(marker: number): Promise<Drain> {
    const sampler = new ProcessSampler();
    const started = performance.now();
    try {
      await this.startOurs();
      await waitForMarker(this.target, this.db, marker, 1_800_000);
      return { ms: performance.now() - started, ...sampler.stop() };
    } finally {
      await this.stopOurs();
    }
  }

  async verify(): Promise<void> {
    for (const database of [this.db, this.nativeDb]) {
      const comparison = await compareDatabases(this.source, this.db, this.target, database);
      if (!comparison.equal)
        throw new Error(
          `${database} differs from the source:\n${comparison.differences.join("\n")}`,
        );
    }
  }

  async cleanup(): Promise<void> {
    await this.stopOurs().catch((err: unknown) => console.error("stopping our stream:", err));
    if (this.subscribed) {
      await this.target
        .query(`DROP SUBSCRIPTION IF EXISTS ${this.subscription}`, [], this.nativeDb)
        .catch((err: unknown) => console.error("dropping the subscription:", err));
    }
    await dropSlotAndPublication(endpoint(this.source), this.db, this.slot, this.publication);
  }
}

function workloads(values: Record<string, string | undefined>): Workload[] {
  const scale = positiveInt("scale", values.scale, 10);
  const tpcb = positiveInt("tpcb-transactions", values["tpcb-transactions"], 25_000);
  const inserts = positiveInt("inserts", values.inserts, 100_000);
  const updates = positiveInt("updates", values.updates, 100_000);
  const updateRows = positiveInt("update-rows", values["update-rows"], 1_000_000);
  const clients = (transactions: number): string[] => [
    "--client=4",
    "--jobs=2",
    `--transactions=${Math.ceil(transactions / 4)}`,
  ];
  const script = (dir: string, name: string, text: string): string => {
    const file = path.join(dir, `${name}.sql`);
    fs.writeFileSync(file, text);
    return `--file=${file}`;
  };
  return [
    {
      name: "tpcb",
      describe: `pgbench TPC-B-like, scale ${scale}: ${tpcb.toLocaleString("en-US")} transactions of 3 UPDATEs + 1 INSERT`,
      create: async (server, database) => {
        await runCommand({
          bin: path.join(clientBinDir(), "pgbench"),
          // Client-side generation: the same rows in every database.
          args: ["--initialize", "--init-steps=dtgp", `--scale=${scale}`, "--quiet", database],
          env: toolEnv(server, database),
        });
      },
      pgbench: () => ["--builtin=tpcb-like", ...clients(tpcb)],
      changes: tpcb * 4,
    },
    {
      name: "insert",
      describe: `${inserts.toLocaleString("en-US")} single-row INSERT transactions into a 10-column table`,
      create: async (server, database) => {
        await server.query(
          `CREATE TABLE ins (id bigserial PRIMARY KEY, a int, b int, c bigint, d text, e text,
             f numeric(12,2), g timestamptz, h boolean, i jsonb)`,
          [],
          database,
        );
      },
      pgbench: (dir) => [
        script(
          dir,
          "insert",
          `\\set r random(1, 1000000000)
INSERT INTO ins (a, b, c, d, e, f, g, h, i) VALUES (:r % 1000, :r % 77, :r, 'name ' || :r, md5(:r::text), :r / 100.0, now(), :r % 2 = 0, jsonb_build_object('r', :r::bigint));
`,
        ),
        ...clients(inserts),
      ],
      changes: inserts,
    },
    {
      name: "update",
      describe: `${updates.toLocaleString("en-US")} single-row UPDATE transactions at random keys of a ${updateRows.toLocaleString("en-US")}-row table`,
      create: async (server, database) => {
        await server.query(
          `CREATE TABLE upd (id int PRIMARY KEY, v bigint NOT NULL, note text);
           INSERT INTO upd SELECT g, 0, 'row ' || g FROM generate_series(1, ${updateRows}) AS g`,
          [],
          database,
        );
      },
      pgbench: (dir) => [
        script(
          dir,
          "update",
          `\\set id random(1, ${updateRows})
UPDATE upd SET v = v + 1 WHERE id = :id;
`,
        ),
        ...clients(updates),
      ],
      changes: updates,
    },
  ];
}

/**
 * Steady load on `lane` with one side applying (the other idle, so the two do not share the CPU):
 * visibility lag of marker rows. The side first catches up with what it has not applied yet.
 */
async function lag(
  lane: Lane,
  side: "native" | "ours",
  rate: number,
  seconds: number,
): Promise<{ lags: number[]; peakRssBytes: number }> {
  const database = side === "native" ? lane.nativeDb : lane.db;
  const caughtUp = await lane.mark();
  if (side === "native") await lane.setNative(true);
  else await lane.startOurs();
  await waitForMarker(lane.target, database, caughtUp, 600_000);
  const sampler = new ProcessSampler();
  const sent = new Map<number, number>();
  const seen = new Map<number, number>();
  const watcher = await lane.target.connect(database);
  let running = true;
  const watching = (async (): Promise<void> => {
    while (running) {
      const { rows } = await watcher.query<{ id: number }>(
        "SELECT id FROM bench_marker WHERE id >= 1000000",
      );
      const now = performance.now();
      for (const { id } of rows) if (!seen.has(id)) seen.set(id, now);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  const load = runCommand({
    bin: path.join(lane.bin, "pgbench"),
    args: [
      "--no-vacuum",
      "--protocol=prepared",
      "--builtin=tpcb-like",
      "--client=4",
      "--jobs=2",
      `--rate=${rate}`,
      `--time=${seconds}`,
      lane.db,
    ],
    env: toolEnv(lane.source, lane.db),
  });
  const base = side === "native" ? 1_000_000 : 2_000_000;
  try {
    // A marker every 100 ms while pgbench writes.
    const deadline = performance.now() + seconds * 1000;
    for (let id = base; performance.now() < deadline; id++) {
      sent.set(id, performance.now());
      await lane.source.query("INSERT INTO bench_marker VALUES ($1, now())", [id], lane.db);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await load;
    await waitForMarker(lane.target, database, await lane.mark(), 600_000);
  } finally {
    running = false;
    await watching.catch(() => undefined);
    await watcher.end();
    if (side === "native") await lane.setNative(false);
    else await lane.stopOurs();
  }
  const lags = [...sent].map(([id, at]) => Math.max(0, (seen.get(id) ?? at) - at));
  return { lags, peakRssBytes: sampler.stop().peakRssBytes };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      pairs: { type: "string" },
      workloads: { type: "string" },
      scale: { type: "string" },
      "tpcb-transactions": { type: "string" },
      inserts: { type: "string" },
      updates: { type: "string" },
      "update-rows": { type: "string" },
      rate: { type: "string" },
      "lag-seconds": { type: "string" },
    },
  });
  const pairs = positiveInt("pairs", values.pairs, 3);
  const rate = positiveInt("rate", values.rate, 1000);
  const lagSeconds = positiveInt("lag-seconds", values["lag-seconds"], 60);
  const chosen = (values.workloads ?? "tpcb,insert,update,lag").split(",").map((w) => w.trim());
  const all = workloads(values);
  const unknown = chosen.filter((w) => w !== "lag" && !all.some((x) => x.name === w));
  if (unknown.length > 0) throw new Error(`unknown workloads: ${unknown.join(", ")}`);
  const bin = clientBinDir();

  const [source, target] = await Promise.all([
    // Walsenders send only flushed WAL: with asynchronous commit the WAL writer's 200 ms delay
    // would be in every figure (fsync stays off, so flushing costs little).
    startPostgres({ settings: { ...BENCH_SETTINGS, synchronous_commit: "on" } }),
    startPostgres({ settings: { ...BENCH_SETTINGS, max_logical_replication_workers: 8 } }),
  ]);
  const lanes: Lane[] = [];
  try {
    console.log(`apply bench: ${pairs} pairs per workload, native drains first in odd pairs`);
    console.log(`machine: ${machine()}; PostgreSQL ${source.version}`);
    const rows: string[][] = [];
    for (const workload of all.filter((w) => chosen.includes(w.name))) {
      const lane = new Lane(source, target, `apply_${workload.name}`, bin);
      lanes.push(lane);
      await lane.create(workload);
      const native: Drain[] = [];
      const ours: Drain[] = [];
      for (let pair = 0; pair < pairs; pair++) {
        const marker = await lane.burst(workload);
        await target.query("CHECKPOINT");
        if (pair % 2 === 0) {
          native.push(await lane.drainNative(marker));
          ours.push(await lane.drainOurs(marker));
        } else {
          ours.push(await lane.drainOurs(marker));
          native.push(await lane.drainNative(marker));
        }
        console.log(
          `  ${workload.name} pair ${pair + 1}: native ${secs(native[pair].ms)} s, ours ${secs(ours[pair].ms)} s`,
        );
      }
      await lane.verify();
      const n = median(native.map((d) => d.ms));
      const o = median(ours.map((d) => d.ms));
      const rate = (ms: number): string =>
        Math.round(workload.changes / (ms / 1000)).toLocaleString("en-US");
      rows.push([
        workload.describe,
        secs(n),
        secs(o),
        rate(n),
        rate(o),
        (n / o).toFixed(2),
        mb(Math.max(...ours.map((d) => d.peakRssBytes ?? 0))),
      ]);
    }
    if (rows.length > 0) {
      console.log(
        "\n" +
          formatTable(
            [
              "backlog drain (median)",
              "native s",
              "ours s",
              "native changes/s",
              "ours changes/s",
              "ours faster ×",
              "our peak RSS MB",
            ],
            rows,
          ),
      );
    }
    if (chosen.includes("lag")) {
      const workload = all[0];
      const lane =
        lanes.find((l) => l.db === `apply_${workload.name}`) ??
        new Lane(source, target, "apply_lag", bin);
      if (!lanes.includes(lane)) {
        lanes.push(lane);
        await lane.create(workload);
      }
      const native = await lag(lane, "native", rate, lagSeconds);
      const ours = await lag(lane, "ours", rate, lagSeconds);
      // Both catch up with everything (native missed the second run) before the comparison.
      const last = await lane.mark();
      await lane.setNative(true);
      await lane.startOurs();
      await waitForMarker(target, lane.nativeDb, last, 600_000);
      await waitForMarker(target, lane.db, last, 600_000);
      await lane.stopOurs();
      await lane.setNative(false);
      await lane.verify();
      const line = (name: string, lags: number[]): string[] => [
        name,
        ...[50, 95, 99].map((p) => secs(percentile(lags, p))),
        secs(Math.max(...lags)),
      ];
      console.log(
        `\nlag at pgbench --rate ${rate} (TPC-B-like, 4 clients) for ${lagSeconds} s, each side alone ` +
          `(native first): a marker row every 100 ms, lag = source insert → visible on the target ` +
          `(polled every 10 ms)\n` +
          formatTable(
            ["method", "p50 s", "p95 s", "p99 s", "max s"],
            [line("native subscription", native.lags), line("ours", ours.lags)],
          ) +
          `\nour peak RSS during the lag run: ${mb(ours.peakRssBytes)} MB`,
      );
    }
    console.log("every target matches the source: row counts and checksums of every table");
  } finally {
    for (const lane of lanes) await lane.cleanup().catch((err: unknown) => console.error(err));
    const left = await source
      .query<{ slot_name: string }>("SELECT slot_name FROM pg_replication_slots")
      .catch(() => []);
    if (left.length > 0) console.error(`slots left: ${left.map((s) => s.slot_name).join(", ")}`);
    await Promise.all([source.stop(), target.stop()]);
  }
}

runBench(main, stopAllPostgres);
