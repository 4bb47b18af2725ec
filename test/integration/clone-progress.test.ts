// Byte-level copy progress (issue 13): while a wide table is being copied, `show` reports bytes
// and rows counted on the COPY stream against an estimate in the same unit, with a rate and an
// ETA, never 100 % or more before the copy committed; at the end exactly 100 % and the source's
// row count. The copy is held mid-table deterministically: the table's CHECK constraint calls a
// function that, at one row, takes a shared advisory lock the test holds on the target database.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Client } from "pg";
import { getTableProgress } from "../../provider/api/index";
import type { TableProgressRow } from "../../provider/control/progress";
import type { DbDetails, MigrationOutputs } from "../../provider/spec/types";
import { compareDatabases } from "../support/checksum";
import { runCli } from "../support/cli";
import { startPostgres, type PgServer } from "../support/postgres";
import { endpointOf } from "../support/spec";
import { until } from "../support/wait";
import { killWorkers } from "../support/workers";

const ROWS = 300_000;
const STALL_AT_ROW = 150_000;
const LOCK_KEY = 424_242;

const SCHEMA = `
  CREATE FUNCTION public.stall_at(id int) RETURNS boolean LANGUAGE plpgsql AS $$
  BEGIN
    IF id = ${STALL_AT_ROW} THEN PERFORM pg_advisory_xact_lock_shared(${LOCK_KEY}); END IF;
    RETURN true;
  END $$;
  CREATE TABLE public.wide (
    id int PRIMARY KEY CHECK (public.stall_at(id)),
    payload text NOT NULL,
    note text);
  -- Every 1000th note has a newline and a tab inside: COPY text escapes them, rows stay exact.
  INSERT INTO public.wide
  SELECT i, repeat(md5(i::text), 6),
         CASE WHEN i % 1000 = 0 THEN E'line\\nbreak\\tand tab' WHEN i % 3 = 0 THEN NULL ELSE 'n' || i END
    FROM generate_series(1, ${ROWS}) i;
  CREATE TABLE public.tiny (id int PRIMARY KEY, name text);
  INSERT INTO public.tiny SELECT i, 'tiny ' || i FROM generate_series(1, 50) i;
  ANALYZE;`;

describe("clone progress: bytes, rows, rate and ETA while copying", function () {
  const name = `progress-${randomBytes(3).toString("hex")}`;
  let source: PgServer;
  let target: PgServer;
  let dir: string;
  let server: string;
  let env: NodeJS.ProcessEnv;
  let holder: Client | undefined;

  before(async () => {
    [source, target] = await Promise.all([startPostgres(), startPostgres()]);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-progress-"));
    await source.query("CREATE DATABASE wide");
    await source.query(SCHEMA, [], "wide");
    // An empty target database is used as is: the lock taken in it stays valid for the copy.
    await target.query("CREATE DATABASE wide");
    server = `postgresql://${target.user}@${target.host}:${target.port}/postgres?sslmode=disable`;
    env = {
      PGMIGRATE_TARGET_PASSWORD: target.password,
      PGMIGRATE_SOURCE_PASSWORD: source.password,
      PGPASSFILE: path.join(dir, "none"),
    };
  });

  after(async () => {
    killWorkers([name]);
    await holder?.end().catch(() => undefined);
    await Promise.all([source?.stop(), target?.stop()]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function show(): Promise<MigrationOutputs> {
    const r = await runCli(["show", "--server", server, "--migration-name", name, "--json"], env);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as MigrationOutputs;
  }

  /** What must hold at every poll, mid-copy or not. */
  function checkDetails(d: DbDetails, seen: string[]): void {
    seen.push(`${d.fullLoadPercent}% ${d.fullLoadBytesCopied}/${d.fullLoadTotalBytes}`);
    assert.ok(d.fullLoadPercent === null || d.fullLoadPercent <= 100, seen.join(", "));
    assert.ok(d.fullLoadBytesCopied <= d.fullLoadTotalBytes, seen.join(", "));
    const done = d.fullLoadQueuedTables + d.fullLoadLoadingTables + d.fullLoadErroredTables === 0;
    if (!done) assert.ok((d.fullLoadPercent ?? 0) < 100, `not done yet: ${seen.join(", ")}`);
  }

  function checkTable(t: TableProgressRow): void {
    assert.ok(t.percent >= 0 && t.percent <= 100, `${t.name}: ${t.percent}%`);
    if (t.state !== "completed") assert.ok(t.percent < 100, `${t.name} ${t.state}: ${t.percent}%`);
  }

  it("reports mid-copy progress below 100 % and exactly 100 % with every row at the end", async () => {
    holder = await target.connect("wide");
    await holder.query("SELECT pg_advisory_lock($1)", [LOCK_KEY]);
    const props = path.join(dir, "props.json");
    fs.writeFileSync(
      props,
      JSON.stringify({
        properties: {
          SourceDBServerResourceId: `${source.host}:${source.port}@${source.user}`,
          DBsToMigrate: ["wide"],
          sslMode: "Disable",
          runtime: { logDir: path.join(dir, "logs") },
        },
      }),
      { mode: 0o600 },
    );
    const created = await runCli(
      ["create", "--server", server, "--migration-name", name, "--properties", props],
      env,
    );
    assert.equal(created.code, 0, created.stderr);

    const at = { target: endpointOf(target), controlDatabase: "postgres" };
    const seen: string[] = [];
    // The worker reports a loading table every few seconds; the copy waits at the lock meanwhile,
    // so a report eventually counts the rows before it.
    const mid = await until(
      async () => {
        const d = (await show()).dbDetails.wide;
        if (d) checkDetails(d, seen);
        const reached = d && d.fullLoadRowsCopied >= STALL_AT_ROW - 1;
        return reached && d.fullLoadLoadingTables === 1 ? d : undefined;
      },
      { what: "a loading report with rows", timeoutMs: 60_000, intervalMs: 250 },
    );
    const stalled = await target.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = 'wide' AND wait_event_type = 'Lock' AND query LIKE 'COPY %'",
    );
    assert.equal(stalled[0].n, 1, "the COPY into wide waits at the lock: this is mid-copy");
    assert.ok(mid.fullLoadRowsCopied < ROWS, `rows ${mid.fullLoadRowsCopied}`);
    assert.ok(mid.fullLoadPercent !== null && mid.fullLoadPercent > 0 && mid.fullLoadPercent < 100);
    assert.ok(mid.fullLoadBytesPerSecond !== null && mid.fullLoadBytesPerSecond > 0, "a rate");
    assert.ok(
      typeof mid.fullLoadEtaSeconds === "number" && mid.fullLoadEtaSeconds > 0,
      `an ETA: ${mid.fullLoadEtaSeconds}`,
    );

    const tables = (await getTableProgress(at, name)).wide;
    const wide = tables.find((t) => t.name === "wide");
    assert.ok(wide && wide.state === "loading", JSON.stringify(tables));
    tables.forEach(checkTable);
    assert.ok(wide.rows !== null && wide.rows >= STALL_AT_ROW - 1 && wide.rows < ROWS);
    assert.ok(wide.percent > 0 && wide.percent < 100, `${wide.percent}%`);
    assert.ok(wide.bytesPerSecond !== null && wide.bytesPerSecond > 0);
    assert.equal(typeof wide.etaSeconds, "number");
    assert.ok(wide.estimatedRows !== null && Math.abs(wide.estimatedRows - ROWS) < ROWS * 0.2);

    const plain = await runCli(["show", "--server", server, "--migration-name", name], env);
    assert.match(
      plain.stdout,
      /data \d{1,2}%: [\d.]+ MB \/ ~[\d.]+ MB, \d+ rows, [\d.]+ [kM]B\/s, ETA/,
    );

    await holder.query("SELECT pg_advisory_unlock($1)", [LOCK_KEY]);
    await holder.end();
    holder = undefined;

    const end = await until(
      async () => {
        const o = await show();
        if (o.dbDetails.wide) checkDetails(o.dbDetails.wide, seen);
        return o.state === "Succeeded" || o.state === "Failed" ? o : undefined;
      },
      { what: "the migration to end", timeoutMs: 90_000, intervalMs: 250 },
    );
    assert.equal(end.state, "Succeeded", end.error ?? "");
    const d = end.dbDetails.wide;
    assert.equal(d.fullLoadPercent, 100);
    assert.equal(d.fullLoadRowsCopied, ROWS + 50);
    assert.equal(d.fullLoadBytesCopied, d.fullLoadTotalBytes);
    assert.equal(d.fullLoadBytesPerSecond, null);
    assert.equal(d.fullLoadEtaSeconds, null);

    const done = (await getTableProgress(at, name)).wide;
    const rows = Object.fromEntries(done.map((t) => [t.name, [t.state, t.percent, t.rows]]));
    assert.deepEqual(rows, { wide: ["completed", 100, ROWS], tiny: ["completed", 100, 50] });
    const finalWide = done.find((t) => t.name === "wide");
    // The estimate is in the stream's unit: close to what went through (a sample scaled up).
    assert.ok(finalWide && finalWide.bytes !== null);
    const ratio = finalWide.estimatedBytes / finalWide.bytes;
    assert.ok(ratio > 0.9 && ratio < 1.1, `estimate/actual = ${ratio}`);

    const cmp = await compareDatabases(source, "wide", target, "wide");
    assert.deepEqual(cmp.differences, []);
  });
});
