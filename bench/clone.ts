// Bench: offline copy of one database, pg_dump | pg_restore (serial and parallel) against our
// cloneDatabase, on the same pair of servers, alternating, medians of the rounds; every
// target's row counts and index count are checked against the source.
// Usage: node dist/bench/clone.js [--dataset mixed|pgbench|wide] [--rows 1000000]
//   [--pgbench-scale 50] [--table-mb 1024] [--split-tables-larger-than MB]
//   [--parallel min(4, cpus)] [--repeat 3]
import os from "node:os";
import { parseArgs } from "node:util";
import { quoteIdent } from "../provider/pg/ident";
import { startPostgres, stopAllPostgres, type PgServer } from "../test/support/postgres";
import {
  DB,
  dumpCustomPipe,
  dumpDirectoryParallel,
  fillPgbench,
  fillSource,
  fillWideTable,
  ourClone,
} from "./clone-methods";
import {
  BENCH_SETTINGS,
  clientBinDir,
  formatTable,
  machine,
  median,
  mb,
  perSecond,
  positiveInt,
  runBench,
  secs,
  type CommandCost,
} from "./support";

const DATASETS = ["mixed", "pgbench", "wide"] as const;
type Dataset = (typeof DATASETS)[number];

/** The source's tables in the public schema, by name. */
async function tablesOf(server: PgServer, database: string): Promise<string[]> {
  const rows = await server.query<{ name: string }>(
    "SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1",
    [],
    database,
  );
  return rows.map((r) => r.name);
}

/** Heap + TOAST bytes of the benchmark tables (what has to travel), excluding indexes. */
async function dataBytes(source: PgServer, tables: readonly string[]): Promise<number> {
  const [row] = await source.query<{ bytes: string }>(
    "SELECT sum(pg_table_size(c.oid))::text AS bytes FROM pg_class c WHERE c.oid = ANY($1::regclass[])",
    [tables.map((t) => quoteIdent(t))],
    DB,
  );
  return Number(row.bytes);
}

/** Rows in the benchmark tables. */
async function rowCount(source: PgServer, tables: readonly string[]): Promise<number> {
  const sum = tables.map((t) => `(SELECT count(*) FROM ${quoteIdent(t)})`).join(" + ");
  const [row] = await source.query<{ n: string }>(`SELECT (${sum})::text AS n`, [], DB);
  return Number(row.n);
}

/** Row count per table and the number of indexes, as one comparable line per database. */
async function census(
  server: PgServer,
  database: string,
  tables: readonly string[],
): Promise<string[]> {
  const counts = tables.map((t) => `(SELECT count(*) FROM ${quoteIdent(t)})::text`).join(", ");
  const [row] = await server.query<{ counts: string[]; indexes: string }>(
    `SELECT ARRAY[${counts}] AS counts,
            (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public')::text AS indexes`,
    [],
    database,
  );
  return [...row.counts, row.indexes];
}

/** Median of a measure that every run has, else undefined. */
function medianOf(costs: CommandCost[], pick: (c: CommandCost) => number | undefined) {
  const values = costs.map(pick);
  return values.every((v) => v !== undefined) ? median(values as number[]) : undefined;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      dataset: { type: "string" },
      rows: { type: "string" },
      "pgbench-scale": { type: "string" },
      "table-mb": { type: "string" },
      "split-tables-larger-than": { type: "string" },
      parallel: { type: "string" },
      repeat: { type: "string" },
    },
  });
  const dataset = (values.dataset ?? "mixed") as Dataset;
  if (!DATASETS.includes(dataset))
    throw new Error(`--dataset must be one of ${DATASETS.join(", ")}`);
  const parallel = positiveInt("parallel", values.parallel, Math.min(4, os.cpus().length));
  const repeat = positiveInt("repeat", values.repeat, 3);
  // MB; absent: the engine's default (1 GiB).
  const splitMb =
    values["split-tables-larger-than"] === undefined
      ? undefined
      : positiveInt("split-tables-larger-than", values["split-tables-larger-than"], 1024);
  const bin = clientBinDir();

  const [source, target] = await Promise.all([
    startPostgres({ settings: BENCH_SETTINGS }),
    startPostgres({ settings: BENCH_SETTINGS }),
  ]);
  try {
    const fillStarted = performance.now();
    let what: string;
    if (dataset === "pgbench") {
      const scale = positiveInt("pgbench-scale", values["pgbench-scale"], 50);
      await fillPgbench(source, scale);
      what = `pgbench scale ${scale}`;
    } else if (dataset === "wide") {
      const tableMb = positiveInt("table-mb", values["table-mb"], 1024);
      await fillWideTable(source, tableMb);
      what = `one table of ~${tableMb} MB with two indexes`;
    } else {
      await fillSource(source, positiveInt("rows", values.rows, 1_000_000));
      what = "three tables (customers, orders, events), five indexes";
    }
    const tables = await tablesOf(source, DB);
    const bytes = await dataBytes(source, tables);
    const rows = await rowCount(source, tables);
    const expected = await census(source, DB, tables);
    console.log(
      `clone bench: ${what}: ${rows.toLocaleString("en-US")} rows, ${mb(bytes)} MB of table data, ` +
        `parallelism ${parallel}, ${repeat} round(s)`,
    );
    console.log(
      `machine: ${machine()}; PostgreSQL ${source.version}; source filled in ${secs(performance.now() - fillStarted)} s`,
    );

    const methods = [
      dumpCustomPipe(source, target, bin),
      dumpDirectoryParallel(source, target, bin, parallel),
      ourClone(source, target, parallel, splitMb && splitMb * 1024 * 1024),
    ];
    const costs = methods.map((): CommandCost[] => []);
    const censuses = methods.map((): string[] => []);
    for (let round = 0; round < repeat; round++) {
      // Each round starts with a different method, so no method always runs on the warmest caches.
      for (let k = 0; k < methods.length; k++) {
        const i = (round + k) % methods.length;
        // Clean buffers: no previous restore's dirty pages to write back during this one.
        await target.query("CHECKPOINT");
        costs[i].push(await methods[i].run());
        censuses[i] = await census(target, methods[i].database, tables);
        if (censuses[i].join() !== expected.join()) {
          throw new Error(
            `${methods[i].name}: row or index counts of ${methods[i].database} differ from the ` +
              `source: ${censuses[i].join(", ")} instead of ${expected.join(", ")}`,
          );
        }
      }
    }

    const headers = ["method", "seconds", "rows/s", "MB/s", "client CPU s", "peak RSS MB"];
    console.log(
      "\n" +
        formatTable(
          repeat > 1 ? [...headers, "seconds min–max"] : headers,
          methods.map((method, i) => {
            const ms = medianOf(costs[i], (c) => c.ms) as number;
            const cpu = medianOf(costs[i], (c) => c.cpuMs);
            const peaks = costs[i].map((c) => c.peakRssBytes);
            const peak = peaks.every((p) => p !== undefined)
              ? Math.max(...(peaks as number[]))
              : undefined;
            const cells = [
              method.name,
              secs(ms),
              perSecond(rows, ms),
              (bytes / 1024 / 1024 / (ms / 1000)).toFixed(1),
              cpu === undefined ? "n/a" : secs(cpu),
              peak === undefined ? "n/a" : mb(peak),
            ];
            const times = costs[i].map((c) => c.ms);
            return repeat > 1
              ? [...cells, `${secs(Math.min(...times))}–${secs(Math.max(...times))}`]
              : cells;
          }),
        ),
    );
    const medians = costs.map((c) => medianOf(c, (x) => x.ms) as number);
    const ours = medians[methods.length - 1];
    console.log(
      "\n" +
        formatTable(
          ["ours vs", "ratio of median seconds (below 1: ours faster)"],
          methods.slice(0, -1).map((m, i) => [m.name, (ours / medians[i]).toFixed(2)]),
        ),
    );
    console.log(
      (repeat > 1 ? "seconds, rows/s, MB/s, CPU: median of the rounds; peak RSS: largest.\n" : "") +
        "client CPU / peak RSS: pg_dump and pg_restore processes (GNU time: CPU summed, largest RSS); " +
        "cloneDatabase = this Node process (its pg_dump/pg_restore children for the schema not counted)",
    );
    console.log(
      "\n" +
        formatTable(
          ["database", ...tables, "indexes"],
          [["source", ...expected], ...methods.map((m, i) => [m.database, ...censuses[i]])],
        ),
    );
    console.log(
      "every target matched the source after every round (row counts per table, index count)",
    );
  } finally {
    await Promise.all([source.stop(), target.stop()]);
  }
}

runBench(main, stopAllPostgres);
