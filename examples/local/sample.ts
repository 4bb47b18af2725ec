// The quick start's sample data: a small shop database, an application that keeps writing to
// it, and the check that source and target hold the same rows (counts + checksums).
import { Client } from "pg";
import type { LocalServer } from "./servers";

export const SAMPLE_DATABASE = "shop";
export const SAMPLE_TABLES = ["customers", "products", "orders", "order_lines"] as const;
const SEQUENCES = ["customers_id_seq", "products_id_seq", "orders_id_seq"] as const;

export async function connect(server: LocalServer, database = "postgres"): Promise<Client> {
  const client = new Client({
    host: server.host,
    port: server.port,
    user: server.user,
    password: server.password,
    database,
  });
  await client.connect();
  // Text forms (and so checksums) independent of server defaults.
  await client.query(
    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET extra_float_digits = 1",
  );
  return client;
}

const SCHEMA = `
CREATE TABLE customers (
  id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE products (
  id serial PRIMARY KEY, sku text NOT NULL UNIQUE, title text NOT NULL, price numeric(10,2) NOT NULL);
CREATE TABLE orders (
  id bigserial PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers,
  placed_at timestamptz NOT NULL DEFAULT now(), status text NOT NULL DEFAULT 'new', note text);
CREATE TABLE order_lines (
  order_id bigint NOT NULL REFERENCES orders ON DELETE CASCADE, line int NOT NULL,
  product_id int NOT NULL REFERENCES products, quantity int NOT NULL CHECK (quantity > 0),
  PRIMARY KEY (order_id, line));
CREATE INDEX ON orders (customer_id);
INSERT INTO customers (email, name, created_at)
  SELECT 'customer' || i || '@example.com', 'Customer ' || i, timestamptz '2024-01-01' + i * interval '1 hour'
  FROM generate_series(1, 2000) i;
INSERT INTO products (sku, title, price)
  SELECT 'SKU-' || i, 'Product ' || i || CASE WHEN i % 7 = 0 THEN ' – ünïcode ☕' ELSE '' END, (i * 3.7)::numeric(10,2)
  FROM generate_series(1, 200) i;
INSERT INTO orders (customer_id, placed_at, status, note)
  SELECT 1 + i % 2000, timestamptz '2024-02-01' + i * interval '7 minutes',
         (ARRAY['new', 'paid', 'shipped'])[1 + i % 3], CASE WHEN i % 11 = 0 THEN 'gift wrap' END
  FROM generate_series(1, 5000) i;
INSERT INTO order_lines (order_id, line, product_id, quantity)
  SELECT o, l, 1 + (o * l) % 200, 1 + (o + l) % 5 FROM generate_series(1, 5000) o, generate_series(1, 3) l;
ANALYZE;`;

/** Creates the sample database on `server`; returns its row count. */
export async function loadSample(server: LocalServer): Promise<number> {
  const admin = await connect(server);
  try {
    await admin.query(`CREATE DATABASE ${SAMPLE_DATABASE}`);
  } finally {
    await admin.end();
  }
  const client = await connect(server, SAMPLE_DATABASE);
  try {
    await client.query(SCHEMA);
    const { rows } = await client.query<{ n: string }>(
      `SELECT ${SAMPLE_TABLES.map((t) => `(SELECT count(*) FROM ${t})`).join(" + ")} AS n`,
    );
    return Number(rows[0].n);
  } finally {
    await client.end();
  }
}

/** The application: orders placed, paid and canceled until `stop()`. */
export interface Writer {
  /** Transactions committed so far. */
  readonly committed: () => number;
  stop(): Promise<void>;
}

export async function startWriter(server: LocalServer): Promise<Writer> {
  const client = await connect(server, SAMPLE_DATABASE);
  let committed = 0;
  let running = true;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      await client.query("BEGIN");
      const { rows } = await client.query<{ id: string }>(
        "INSERT INTO orders (customer_id, note) VALUES ($1, $2) RETURNING id",
        [1 + (i % 2000), `live order ${i}`],
      );
      await client.query(
        "INSERT INTO order_lines (order_id, line, product_id, quantity) VALUES ($1, 1, $2, 1), ($1, 2, $3, 2)",
        [rows[0].id, 1 + (i % 200), 1 + ((i * 7) % 200)],
      );
      await client.query("UPDATE orders SET status = 'paid' WHERE id = $1", [
        1 + ((i * 13) % 5000),
      ]);
      if (i % 10 === 0) await client.query("DELETE FROM orders WHERE id = $1", [5000 - i]);
      await client.query("COMMIT");
      committed++;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  })();
  return {
    committed: () => committed,
    async stop() {
      running = false;
      try {
        await loop;
      } finally {
        await client.end();
      }
    },
  };
}

/** One table (or sequence) on both sides. */
export interface Comparison {
  readonly name: string;
  readonly source: string;
  readonly target: string;
  readonly match: boolean;
}

async function fingerprints(server: LocalServer): Promise<Map<string, string>> {
  const client = await connect(server, SAMPLE_DATABASE);
  try {
    const out = new Map<string, string>();
    for (const table of SAMPLE_TABLES) {
      const { rows } = await client.query<{ n: string; md5: string }>(
        `SELECT count(*) AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS md5 FROM ${table} t`,
      );
      out.set(table, `${rows[0].n} rows, md5 ${rows[0].md5.slice(0, 12)}`);
    }
    for (const sequence of SEQUENCES) {
      const { rows } = await client.query<{ v: string }>(`SELECT last_value AS v FROM ${sequence}`);
      out.set(sequence, `last value ${rows[0].v}`);
    }
    return out;
  } finally {
    await client.end();
  }
}

/** Row counts and checksums of every table, and sequence positions, side by side. */
export async function compareSample(
  source: LocalServer,
  target: LocalServer,
): Promise<Comparison[]> {
  const [a, b] = await Promise.all([fingerprints(source), fingerprints(target)]);
  return [...a].map(([name, value]) => ({
    name,
    source: value,
    target: b.get(name) ?? "(missing)",
    match: value === b.get(name),
  }));
}

/** Replication slots left on the source (a forgotten one would retain WAL forever). */
export async function slotsOnSource(source: LocalServer): Promise<string[]> {
  const client = await connect(source);
  try {
    const { rows } = await client.query<{ slot_name: string }>(
      "SELECT slot_name FROM pg_replication_slots",
    );
    return rows.map((r) => r.slot_name);
  } finally {
    await client.end();
  }
}
