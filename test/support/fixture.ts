// Source fixture for migration tests: loads test/support/fixture.sql (a realistic, tricky,
// deterministic schema) and drives a small mixed write workload for online-replication tests.
import fs from "node:fs";
import path from "node:path";
import type { Client } from "pg";
import { quoteIdent } from "../../provider/pg/ident";
import type { TableRef } from "../../provider/spec/types";
import { STABLE_SESSION_SQL } from "./checksum";
import type { PgServer } from "./postgres";
import { pause } from "./wait";

/** Schemas the fixture creates besides `public`. */
export const FIXTURE_SCHEMAS: readonly string[] = ["public", "Sales", "inventory"];

/**
 * Every table holding rows, as `checksumDatabase` sees them: ordinary tables and the leaf
 * partitions of `public.events` (the partitioned parent itself holds no rows).
 */
export const FIXTURE_TABLES: readonly TableRef[] = [
  { schema: "public", name: "customers" },
  { schema: "public", name: "Customer Notes" },
  { schema: "public", name: "user" },
  { schema: "public", name: "type_zoo" },
  { schema: "public", name: "documents" },
  { schema: "public", name: "events_2023" },
  { schema: "public", name: "events_2024" },
  { schema: "public", name: "events_default" },
  { schema: "inventory", name: "categories" },
  { schema: "inventory", name: "items" },
  { schema: "inventory", name: "warehouses" },
  { schema: "inventory", name: "stock_moves" },
  { schema: "inventory", name: "empty_bin" },
  { schema: "Sales", name: "order" },
  { schema: "Sales", name: "order_line" },
  { schema: "Sales", name: "order_audit" },
];

/** Ids of the wide (TOASTed) rows in `public.documents`. */
export const WIDE_DOCUMENT_IDS: readonly number[] = Array.from({ length: 12 }, (_, i) => i + 1);

export interface FixtureOptions {
  /** Rows in the main tables (customers, orders, events, stock moves); default 2000. */
  rows?: number;
}

// The build copies only .js files: read the SQL from the source tree (dist/test/support →
// ../../../test/support), or from next to this file when run from source.
function fixtureSql(): string {
  const candidates = [
    path.join(__dirname, "fixture.sql"),
    path.resolve(__dirname, "../../../test/support/fixture.sql"),
  ];
  const file = candidates.find((f) => fs.existsSync(f));
  if (!file) throw new Error(`fixture.sql not found (looked in ${candidates.join(", ")})`);
  return fs.readFileSync(file, "utf8");
}

/** Creates `database` (UTF8) on `server` and fills it with the fixture schema and rows. */
export async function loadFixture(
  server: PgServer,
  database: string,
  options: FixtureOptions = {},
): Promise<void> {
  const rows = options.rows ?? 2000;
  if (!Number.isInteger(rows) || rows < 10)
    throw new Error(`rows must be an integer >= 10, got ${rows}`);
  await server.query(`CREATE DATABASE ${quoteIdent(database)} ENCODING 'UTF8' TEMPLATE template0`);
  const client = await server.connect(database);
  try {
    await client.query(STABLE_SESSION_SQL);
    await client.query("SELECT set_config('fixture.rows', $1, false)", [String(rows)]);
    await client.query(fixtureSql());
    await client.query("ANALYZE");
  } finally {
    await client.end();
  }
}

/**
 * Adds `public.no_pk_log`: no primary key, no unique index, duplicate rows — the shape online
 * migration must reject or fix with REPLICA IDENTITY FULL.
 */
export async function addTableWithoutPrimaryKey(
  server: PgServer,
  database: string,
): Promise<TableRef> {
  await server.query(
    `CREATE TABLE public.no_pk_log (logged_at timestamptz, level text, message text, payload jsonb);
     INSERT INTO public.no_pk_log
     SELECT timestamptz '2024-01-01 00:00:00+00' + (i / 2) * interval '1 minute',
            (ARRAY['info', 'warn', 'error'])[1 + (i / 2) % 3], 'message ' || i / 2,
            jsonb_build_object('n', i / 2)
     FROM generate_series(0, 99) AS i`,
    [],
    database,
  );
  return { schema: "public", name: "no_pk_log" };
}

export interface WorkloadOptions {
  /** Transactions to commit. */
  transactions: number;
  /** Stops before the next transaction once aborted. */
  signal?: AbortSignal;
  /** Pause between transactions, to spread the workload over time. */
  pauseMs?: number;
}

/** Rows touched by the workload's own statements (trigger rows and cascades not counted). */
export interface WorkloadCounts {
  readonly transactions: number;
  readonly inserts: number;
  readonly updates: number;
  readonly deletes: number;
}

// Values that trip naive text handling: COPY's null marker and end-of-data line, escapes.
const TRICKY_TEXT = ["\\N", "\\.", "multi\nline\ttab", "🐘 emoji ", "", null, 'quote " and \\'];
const TRICKY_FLOATS = ["NaN", "Infinity", "-0", "1e-300", "-Infinity"];

let workloadRuns = 0;

/**
 * Commits a mixed INSERT/UPDATE/DELETE workload on the fixture tables: new customers with
 * orders, enum and tricky-type updates, a non-TOAST update of a wide row (and sometimes of its
 * TOASTed body), cross-partition moves, cascading deletes.
 */
export async function writeWorkload(
  server: PgServer,
  database: string,
  options: WorkloadOptions,
): Promise<WorkloadCounts> {
  const run = `${process.pid}-${Date.now().toString(36)}-${++workloadRuns}`;
  const counts = { transactions: 0, inserts: 0, updates: 0, deletes: 0 };
  const client = await server.connect(database);
  try {
    await client.query(STABLE_SESSION_SQL);
    for (let k = 0; k < options.transactions; k++) {
      if (options.signal?.aborted) break;
      if (k > 0 && options.pauseMs) await pause(options.pauseMs); // the workload's pace
      await client.query("BEGIN");
      try {
        await workloadTransaction(client, k, run, counts);
        await client.query("COMMIT");
      } catch (err) {
        await client.query("ROLLBACK").catch(() => undefined);
        throw err;
      }
      counts.transactions++;
    }
  } finally {
    await client.end();
  }
  return counts;
}

type Kind = "inserts" | "updates" | "deletes";

async function workloadTransaction(
  client: Client,
  k: number,
  run: string,
  counts: { inserts: number; updates: number; deletes: number },
): Promise<void> {
  const exec = async (
    kind: Kind,
    sql: string,
    params: unknown[],
  ): Promise<Record<string, unknown>[]> => {
    const res = await client.query(sql, params);
    counts[kind] += res.rowCount ?? 0;
    return res.rows;
  };
  const text = TRICKY_TEXT[k % TRICKY_TEXT.length];

  const [customer] = await exec(
    "inserts",
    `INSERT INTO public.customers (email, full_name, address, tags, created_at, is_active, loyalty_points, balance)
     VALUES ($1, $2, ROW($3, 'Köln', NULL, 'DE')::public.postal_address, $4::text[],
             timestamptz '2024-06-01 00:00:00.000001+00' + $5::int * interval '1.000001 second', true, $5::int,
             $6::numeric::money)
     RETURNING customer_id`,
    [
      `wl-${run}-${k}@example.com`,
      `Workload Ünïcode ${k}`,
      text,
      ["wl", null, 'q"uote', text],
      k,
      `${k}.25`,
    ],
  );
  const [order] = await exec(
    "inserts",
    `INSERT INTO "Sales"."order" (customer_id, "Order Date", placed_at, discount_window, notes)
     VALUES ($1, date '2024-06-01' + $2::int, timestamptz '2024-06-01 12:00:00.5+00' + $2::int * interval '1 minute',
             tstzrange(timestamptz '2024-06-01 00:00:00+00', NULL), $3)
     RETURNING order_id`,
    [customer.customer_id, k, text],
  );
  await exec(
    "inserts",
    `INSERT INTO "Sales".order_line (order_id, line_no, item_id, quantity, unit_price)
     SELECT $1, g, i.item_id, g + 1, $2::numeric + g
     FROM generate_series(1, 2) AS g
     CROSS JOIN LATERAL (SELECT item_id FROM inventory.items ORDER BY item_id OFFSET ($3 + g) % 50 LIMIT 1) AS i`,
    [order.order_id, `${k}.1234`, k],
  );
  await exec(
    "updates",
    `UPDATE "Sales"."order" SET status = 'paid', notes = $2
     WHERE order_id = (SELECT order_id FROM "Sales"."order" WHERE status = 'pending' ORDER BY order_id
                       LIMIT 1 OFFSET $1)`,
    [k % 7, text],
  );
  await exec(
    "updates",
    `UPDATE public.type_zoo
     SET txt = $2, bin = $3, f8 = $4::float8, jsb = jsonb_build_object('wl', $5::int, 's', $2::text),
         int_arr = CASE WHEN array_ndims(int_arr) > 1 THEN int_arr ELSE array_append(int_arr, NULL) END, tstz = tstz + interval '0.000001 second',
         iv = iv + interval '1 microsecond', r_num = numrange($5::int, NULL)
     WHERE id = (SELECT id FROM public.type_zoo ORDER BY id OFFSET $1::int % (SELECT count(*) FROM public.type_zoo) LIMIT 1)`,
    [
      k * 13,
      text,
      Buffer.from([0, 255, k % 256, 0x5c]),
      TRICKY_FLOATS[k % TRICKY_FLOATS.length],
      k,
    ],
  );
  const docId = WIDE_DOCUMENT_IDS[k % WIDE_DOCUMENT_IDS.length];
  // Most updates leave the TOASTed body untouched: the change carries it as "unchanged".
  await exec(
    "updates",
    `UPDATE public.documents SET revision = revision + 1, meta = meta || jsonb_build_object('rev', $2::int)
     WHERE doc_id = $1`,
    [docId, k],
  );
  if (k % 4 === 3) {
    await exec("updates", "UPDATE public.documents SET body = body || $2 WHERE doc_id = $1", [
      docId,
      ` rev ${k} 🐘`,
    ]);
  }
  await exec(
    "inserts",
    `INSERT INTO public.events (occurred_at, kind, payload, source_ip)
     VALUES (timestamptz '2024-03-01 00:00:00+00' + $1::int * interval '1 minute 0.000001 second', 'workload',
             jsonb_build_object('k', $1::int), '192.0.2.1')`,
    [k],
  );
  await exec(
    "updates",
    `UPDATE public."user" SET "select" = $2, "from" = "from" + 1 WHERE user_id = $1`,
    [1 + (k % 40), text],
  );
  await exec(
    "inserts",
    `INSERT INTO inventory.stock_moves (item_id, warehouse_code, qty, moved_at)
     VALUES ((SELECT min(item_id) FROM inventory.items), 'NYC"4', $1, timestamptz '2024-06-01 00:00:00+00')`,
    [k + 1],
  );
  if (k % 3 === 0) {
    // Crosses partitions: the source publishes it as a delete plus an insert.
    await exec(
      "updates",
      `UPDATE public.events SET occurred_at = occurred_at + interval '1 year'
       WHERE (event_id, occurred_at) = (SELECT event_id, occurred_at FROM public.events_2023 ORDER BY event_id LIMIT 1)`,
      [],
    );
    await exec(
      "deletes",
      `DELETE FROM "Sales"."order"
       WHERE order_id = (SELECT min(order_id) FROM "Sales"."order" WHERE status = 'cancelled')`,
      [],
    );
  }
  if (k % 2 === 1) {
    await exec(
      "deletes",
      `DELETE FROM public."Customer Notes" WHERE note_id = (SELECT min(note_id) FROM public."Customer Notes")`,
      [],
    );
  }
}
