// Materialized views at cutover: their contents are not replicated (a REFRESH on the source
// writes no row changes), so those populated on the source are refreshed on the target once
// the last change is applied, each after the materialized views it reads (directly or through
// views). After an offline copy the post-data restore has already refreshed them in order.
import type { Client } from "pg";
import { withClient } from "../pg/connect";
import { MigrationError } from "../pg/errors";
import { qualify } from "../pg/ident";
import type { MigrationSpec, TableRef } from "../spec/types";

const POPULATED_SQL = `
  SELECT n.nspname AS schema, c.relname AS name
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind = 'm' AND c.relispopulated
     AND n.nspname NOT IN ('pg_catalog', 'information_schema')`;

// Which views and materialized views each view or materialized view reads: its rewrite rule's
// dependencies on other relations of those kinds.
const READS_SQL = `
  SELECT DISTINCT vn.nspname AS schema, v.relname AS name, v.relkind::text AS kind,
         rn.nspname AS ref_schema, ref.relname AS ref_name
    FROM pg_catalog.pg_class v
    JOIN pg_catalog.pg_namespace vn ON vn.oid = v.relnamespace
    JOIN pg_catalog.pg_rewrite r ON r.ev_class = v.oid
    JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
                               AND d.refclassid = 'pg_catalog.pg_class'::regclass
    JOIN pg_catalog.pg_class ref ON ref.oid = d.refobjid AND ref.oid <> v.oid AND ref.relkind IN ('v', 'm')
    JOIN pg_catalog.pg_namespace rn ON rn.oid = ref.relnamespace
   WHERE v.relkind IN ('v', 'm')`;

const keyOf = (t: TableRef): string => `${t.schema}.${t.name}`;

/**
 * `matviews` ordered so that each comes after every materialized view it reads, following
 * plain views in between. The catalog cannot hold a cycle among them.
 */
async function dependencyOrder(target: Client, matviews: readonly TableRef[]): Promise<TableRef[]> {
  const { rows } = await target.query<{
    schema: string;
    name: string;
    ref_schema: string;
    ref_name: string;
  }>(READS_SQL);
  const reads = new Map<string, TableRef[]>();
  for (const r of rows) {
    const list = reads.get(keyOf(r)) ?? [];
    list.push({ schema: r.ref_schema, name: r.ref_name });
    reads.set(keyOf(r), list);
  }
  const wanted = new Set(matviews.map(keyOf));
  const ordered: TableRef[] = [];
  const visited = new Set<string>();
  const visit = (relation: TableRef): void => {
    const key = keyOf(relation);
    if (visited.has(key)) return;
    visited.add(key);
    for (const ref of reads.get(key) ?? []) visit(ref);
    if (wanted.has(key)) ordered.push(relation);
  };
  for (const m of matviews) visit(m);
  return ordered;
}

/**
 * Refreshes on the target every materialized view of `database` that is populated on the
 * source, in dependency order; returns how many. Runs once no more changes are applied.
 */
export async function refreshMaterializedViews(
  spec: MigrationSpec,
  database: string,
): Promise<number> {
  try {
    const populated = await withClient(spec.source, database, async (c) => {
      return (await c.query<TableRef>(POPULATED_SQL)).rows;
    });
    if (populated.length === 0) return 0;
    return await withClient(spec.target, database, async (target) => {
      const ordered = await dependencyOrder(target, populated);
      for (const m of ordered) {
        await target.query(`REFRESH MATERIALIZED VIEW ${qualify(m.schema, m.name)}`);
      }
      return ordered.length;
    });
  } catch (err) {
    throw MigrationError.wrap(
      "cutover",
      err,
      `refreshing materialized views of database "${database}" on the target`,
    );
  }
}
