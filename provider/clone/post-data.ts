// Post-data in two steps. Each large copied table's own indexes and primary-key, unique and
// exclusion constraints are built as soon as its data is complete (and the table analyzed), while
// other tables are still being copied, at most `parallelism.indexes` tables at a time. Everything else
// (foreign keys, which need both of their tables; triggers; rules; partition index attachments;
// materialized view refreshes; comments) follows once every table is done.
import fs from "node:fs/promises";
import path from "node:path";
import type { Client } from "pg";
import { qualify } from "../pg/ident";
import { withClient } from "../pg/connect";
import type { MigrationSpec, TableRef } from "../spec/types";

/** Tables at least this large (or split) get their indexes built as soon as they are copied. */
export const EARLY_BUILD_MIN_BYTES = 16 * 1024 ** 2;

/** Keys of the tables built early: EARLY_BUILD_MIN_BYTES or more on disk, or split (over `splitThreshold`). */
export function earlyTables(
  tables: readonly (TableRef & { readonly heapBytes: number })[],
  splitThreshold: number,
): Set<string> {
  const min = Math.min(EARLY_BUILD_MIN_BYTES, splitThreshold);
  return new Set(tables.filter((t) => t.heapBytes >= min).map(tableKey));
}

/** pg_class and pg_constraint: the catalogs of the TOC entries built early. */
const PG_CLASS_OID = 1259;
const PG_CONSTRAINT_OID = 2606;

/** Memory shared by the concurrent index builds of one database (maintenance_work_mem each). */
export const MAINTENANCE_WORK_MEM_BUDGET = 1024 ** 3;

export function tableKey(table: TableRef): string {
  return `${table.schema}\0${table.name}`;
}

/**
 * For each ordinary table at the snapshot, the catalog OIDs of the post-data objects that need
 * only that table: its indexes (not those backing a constraint) and its primary-key, unique and
 * exclusion constraints. The caller's transaction must have imported the clone's snapshot.
 */
export async function readTableOwnObjects(client: Client): Promise<Map<string, Set<number>>> {
  const { rows } = await client.query<{ schema: string; name: string; oids: string[] }>(
    `SELECT n.nspname AS schema, c.relname AS name, array_agg(x.oid::text) AS oids
       FROM (SELECT i.indexrelid AS oid, i.indrelid AS rel FROM pg_index i
              WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid
                                   AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x'))
             UNION ALL
             SELECT k.oid, k.conrelid FROM pg_constraint k WHERE k.contype IN ('p', 'u', 'x')) x
       JOIN pg_class c ON c.oid = x.rel AND c.relkind = 'r'
       JOIN pg_namespace n ON n.oid = c.relnamespace
      GROUP BY 1, 2`,
  );
  return new Map(rows.map((r) => [tableKey(r), new Set(r.oids.map(Number))]));
}

/** The restore lists of the two steps. */
export interface PostDataPlan {
  /** Per table key: the TOC lines of its own indexes and constraints (none: no entry). */
  readonly early: ReadonlyMap<string, readonly string[]>;
  /** The TOC without those lines: what the final post-data pass restores. */
  readonly rest: string;
}

// `dumpId; tableoid oid DESC schema tag owner`; "FK CONSTRAINT" and "INDEX ATTACH" entries have
// another catalog (or none) and stay in the final pass.
const ENTRY = /^\d+; (\d+) (\d+) (INDEX|CONSTRAINT) /;

/** Splits a `pg_restore --list` into each table's early entries and the rest. */
export function planPostData(toc: string, own: ReadonlyMap<string, Set<number>>): PostDataPlan {
  const owner = new Map<string, string>();
  for (const [key, oids] of own) {
    for (const oid of oids) owner.set(String(oid), key);
  }
  const early = new Map<string, string[]>();
  const rest: string[] = [];
  for (const line of toc.split("\n")) {
    const m = ENTRY.exec(line);
    const catalog = m ? Number(m[1]) : 0;
    const expected = m?.[3] === "INDEX" ? PG_CLASS_OID : PG_CONSTRAINT_OID;
    const key = m && catalog === expected ? owner.get(m[2]) : undefined;
    if (key === undefined) {
      rest.push(line);
      continue;
    }
    const lines = early.get(key) ?? [];
    lines.push(line);
    early.set(key, lines);
  }
  return { early, rest: rest.join("\n") };
}

/** Writes a restore list into the clone's private directory; returns its path. */
export async function writeList(dir: string, name: string, lines: string): Promise<string> {
  const file = path.join(dir, name);
  await fs.writeFile(file, lines.endsWith("\n") ? lines : `${lines}\n`, { mode: 0o600 });
  return file;
}

/** The target's maintenance_work_mem in bytes (what an index build gets at least). */
export async function targetMaintenanceWorkMem(
  spec: MigrationSpec,
  database: string,
): Promise<number> {
  return withClient(spec.target, database, async (c) => {
    const { rows } = await c.query<{ bytes: string }>(
      "SELECT pg_size_bytes(current_setting('maintenance_work_mem'))::text AS bytes",
    );
    return Number(rows[0].bytes);
  });
}

/** PGOPTIONS giving each of `sessions` index builds its share of the budget, never less than `current` bytes. */
export function maintenanceOptions(sessions: number, current: number): string {
  const share = Math.floor(MAINTENANCE_WORK_MEM_BUDGET / Math.max(1, sessions));
  const kb = Math.floor(Math.max(share, current) / 1024);
  return `-c maintenance_work_mem=${kb}kB`;
}

/** `ANALYZE schema.table`. */
export function analyzeSql(table: TableRef): string {
  return `ANALYZE ${qualify(table.schema, table.name)}`;
}

/**
 * Runs `build(table)` for tables as they are added, at most `concurrency` at once, in the order
 * added. The first failure is kept, reported to `onFailure` once, and stops further builds.
 */
export class TableBuilds {
  failure: unknown;
  private failed = false;
  private running = 0;
  private readonly queue: TableRef[] = [];
  private readonly jobs: Promise<void>[] = [];

  constructor(
    private readonly concurrency: number,
    private readonly build: (table: TableRef) => Promise<void>,
    private readonly onFailure: (err: unknown) => void,
  ) {}

  add(table: TableRef): void {
    this.queue.push(table);
    this.pump();
  }

  /** Resolves when nothing runs or waits any more; never rejects. */
  async settle(): Promise<void> {
    this.queue.length = this.failed ? 0 : this.queue.length;
    while (this.jobs.length > 0) await Promise.allSettled(this.jobs.splice(0));
  }

  /** settle(), then the first failure if there was one. */
  async drain(): Promise<void> {
    await this.settle();
    if (this.failed) throw this.failure;
  }

  private pump(): void {
    while (!this.failed && this.running < this.concurrency && this.queue.length > 0) {
      const table = this.queue.shift() as TableRef;
      this.running++;
      const job = this.build(table)
        .catch((err: unknown) => {
          if (this.failed) return;
          this.failed = true;
          this.failure = err;
          this.onFailure(err);
        })
        .finally(() => {
          this.running--;
          this.pump();
        });
      this.jobs.push(job);
    }
  }
}
