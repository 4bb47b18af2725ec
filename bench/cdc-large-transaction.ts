// Bench: one source transaction updating 1,000,000 rows, streamed and applied to the target.
// Prints the apply process's peak RSS (it must not grow with the transaction) and the timings.
// Usage: node dist/bench/cdc-large-transaction.js [rows]   (default 1000000; PostgreSQL 15)
import {
  createSlotWithSnapshot,
  currentWalLsn,
  dropSlotAndPublication,
  ensurePublication,
  startReplication,
} from "../provider/cdc";
import type { Endpoint } from "../provider/spec/types";
import { startPostgres, stopAllPostgres, type PgServer } from "../test/support/postgres";

const SLOT = "pgmigrate_bench_large_txn";
const PUBLICATION = "pgmigrate_bench_large_txn";
const DB = "bench";

function endpoint(server: PgServer): Endpoint {
  return {
    host: server.host,
    port: server.port,
    username: server.user,
    password: server.password,
    sslMode: "disable",
  };
}

const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

async function main(): Promise<void> {
  const rows = Number(process.argv[2] ?? 1_000_000);
  if (!Number.isInteger(rows) || rows < 1)
    throw new Error(`rows must be a positive integer, got ${process.argv[2]}`);
  const settings = { max_wal_size: "'4GB'", logical_decoding_work_mem: "'64MB'" };
  const [source, target] = await Promise.all([
    startPostgres({ settings }),
    startPostgres({ settings }),
  ]);
  for (const server of [source, target]) {
    await server.query(`CREATE DATABASE ${DB}`);
    await server.query(
      `CREATE TABLE public.accounts (id int PRIMARY KEY, balance numeric(14,2) NOT NULL, note text);
       INSERT INTO public.accounts SELECT g, g / 100.0, 'account ' || g FROM generate_series(1, ${rows}) AS g`,
      [],
      DB,
    );
    await server.query("VACUUM ANALYZE public.accounts", [], DB);
  }
  await ensurePublication(endpoint(source), DB, PUBLICATION);
  const slot = await createSlotWithSnapshot(endpoint(source), DB, SLOT);
  await slot.release();
  const stream = await startReplication({
    source: endpoint(source),
    target: endpoint(target),
    database: DB,
    slotName: SLOT,
    publication: PUBLICATION,
    startLsn: slot.consistentPoint,
  });
  try {
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 100);
    const started = Date.now();
    await source.query(
      "UPDATE public.accounts SET balance = balance + 1, note = note || ' +1'",
      [],
      DB,
    );
    const committed = Date.now();
    await stream.waitForLsn(await currentWalLsn(endpoint(source), DB));
    const applied = Date.now();
    clearInterval(sampler);
    const stats = stream.stats();
    const [check] = await target.query<{ n: string }>(
      "SELECT count(*) AS n FROM public.accounts WHERE note LIKE '% +1'",
      [],
      DB,
    );
    console.log(`rows updated in one transaction: ${rows}`);
    console.log(
      `source transaction: ${seconds(committed - started)}; applied on target ${seconds(applied - committed)} after its commit`,
    );
    console.log(`updates applied: ${stats.updates}; target rows updated: ${check.n}`);
    console.log(`rss before: ${mb(before)}; peak: ${mb(peak)}; growth: ${mb(peak - before)}`);
  } finally {
    await stream.stop();
    await dropSlotAndPublication(endpoint(source), DB, SLOT, PUBLICATION);
  }
}

main()
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => stopAllPostgres());
