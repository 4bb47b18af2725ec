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
                        OR i.indpred IS NOT NULL)) AS in_unique_index
  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
  WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped`;

/** The target's view of `relation`'s columns, in the source's column order. */
export async function targetColumns(
  client: Client,
  relation: ApplyRelation,
): Promise<TargetColumn[]> {
  const table = qualify(relation.schema, relation.name);
  const { rows } = await client.query<{
    name: string;
    type_name: string;
    declared_type: string;
    identity_always: boolean;
    has_equality: boolean;
    in_unique_index: boolean;
  }>(TARGET_COLUMNS_SQL, [table]);
  const byName = new Map(rows.map((r) => [r.name, r]));
  return relation.columns.map((name) => {
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
    };
  });
}
