// What the target's catalog says about a replicated table's columns: cast types, equality,
// identity and uniqueness, which decide how its changes are turned into SQL.
import type { Client } from "pg";
import { MigrationError, SQLSTATE } from "../pg/errors";
import { qualify } from "../pg/ident";
import type { ApplyRelation, TargetColumn } from "./changes";

// The type without its modifier: casts to it never truncate or round (see statements.ts). Our
// sessions' search_path is pg_catalog only, so user types come back schema-qualified.
const TARGET_COLUMNS_SQL = `
  SELECT a.attname AS name,
         format_type(a.atttypid, -1) AS type_name,
         format_type(a.atttypid, a.atttypmod) AS declared_type,
         a.attidentity = 'a' AS identity_always,
         EXISTS (SELECT 1 FROM pg_opclass oc JOIN pg_am am ON am.oid = oc.opcmethod
                 WHERE am.amname = 'btree' AND oc.opcdefault
                   AND oc.opcintype = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END)
           AS has_equality,
         EXISTS (SELECT 1 FROM pg_index i
                 WHERE i.indrelid = a.attrelid AND (i.indisunique OR i.indisexclusion)
                   AND (a.attnum = ANY (i.indkey::int2[]) OR i.indexprs IS NOT NULL
                        OR i.indpred IS NOT NULL)) AS in_unique_index,
         CASE WHEN t.typtype IN ('d', 'c') OR t.typcategory = 'A' OR t.typarray = 0 THEN NULL
              ELSE format_type(a.atttypid, -1) END AS array_element,
         t.typtype <> 'd' OR NOT EXISTS (
           SELECT 1 FROM pg_cast c
           WHERE c.castsource = 'text'::regtype AND c.casttarget = t.typbasetype
             AND c.castmethod = 'f') AS set_based,
         EXISTS (SELECT 1 FROM pg_trigger g
                 WHERE g.tgrelid = a.attrelid AND NOT g.tgisinternal AND g.tgenabled IN ('A', 'R'))
           OR EXISTS (SELECT 1 FROM pg_rewrite r
                      WHERE r.ev_class = a.attrelid AND r.rulename <> '_RETURN'
                        AND r.ev_enabled IN ('A', 'R')) AS fires_on_apply
  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
  WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped`;

// A table without columns still exists, and its triggers still count.
const FIRES_ON_APPLY_SQL = `
  SELECT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = $1::regclass AND NOT g.tgisinternal
                   AND g.tgenabled IN ('A', 'R'))
      OR EXISTS (SELECT 1 FROM pg_rewrite r WHERE r.ev_class = $1::regclass
                   AND r.rulename <> '_RETURN' AND r.ev_enabled IN ('A', 'R')) AS fires`;

/** What the target says about the table behind `relation`: columns, and triggers that fire. */
export interface TargetTable {
  readonly columns: TargetColumn[];
  readonly firesOnApply: boolean;
}

/** The target's view of `relation`'s columns, in the source's column order. */
export async function targetTable(client: Client, relation: ApplyRelation): Promise<TargetTable> {
  const table = qualify(relation.schema, relation.name);
  const { rows } = await client.query<{
    name: string;
    type_name: string;
    declared_type: string;
    identity_always: boolean;
    has_equality: boolean;
    in_unique_index: boolean;
    array_element: string | null;
    set_based: boolean;
    fires_on_apply: boolean;
  }>(TARGET_COLUMNS_SQL, [table]);
  const byName = new Map(rows.map((r) => [r.name, r]));
  const columns = relation.columns.map((name): TargetColumn => {
    const row = byName.get(name);
    if (!row) {
      throw new MigrationError(
        "replicate",
        `column ${name} of ${relation.schema}.${relation.name} is missing on the target`,
        {
          code: SQLSTATE.undefinedColumn,
          pg: { schema: relation.schema, table: relation.name, column: name },
        },
      );
    }
    return {
      typeName: row.type_name,
      declaredType: row.declared_type,
      hasEquality: row.has_equality,
      identityAlways: row.identity_always,
      inUniqueIndex: row.in_unique_index,
      arrayElement: row.array_element,
      setBased: row.set_based,
    };
  });
  const firesOnApply =
    rows.length > 0
      ? rows[0].fires_on_apply
      : (await client.query<{ fires: boolean }>(FIRES_ON_APPLY_SQL, [table])).rows[0].fires;
  return { columns, firesOnApply };
}
