// Replicated relations and decoded changes as the applier sees them, for tests of the statements
// a batch turns into: columns with their target types, key, identity and uniqueness flags.
import type { ApplyRelation, Change, TargetColumn } from "../../provider/cdc/changes";
import type { ColumnValue } from "../../provider/cdc/pgoutput";

export interface ColumnOf {
  readonly name: string;
  readonly type?: string;
  readonly key?: boolean;
  readonly hasEquality?: boolean;
  readonly identityAlways?: boolean;
  readonly unique?: boolean;
}

let nextId = 1;

/** A relation with its target columns loaded; `full` for REPLICA IDENTITY FULL. */
export function relationOf(
  name: string,
  columns: readonly ColumnOf[],
  options: { schema?: string; full?: boolean } = {},
): ApplyRelation {
  const full = options.full ?? false;
  const target: TargetColumn[] = columns.map((c) => ({
    typeName: c.type ?? "integer",
    declaredType: c.type ?? "integer",
    hasEquality: c.hasEquality ?? true,
    identityAlways: c.identityAlways ?? false,
    inUniqueIndex: c.unique ?? c.key ?? false,
    arrayElement: (c.type ?? "integer").endsWith("[]") ? null : (c.type ?? "integer"),
    setBased: true,
  }));
  return {
    id: nextId++,
    schema: options.schema ?? "public",
    name,
    columns: columns.map((c) => c.name),
    keyColumns: columns.flatMap((c, i) => (full || c.key ? [i] : [])),
    full,
    target,
  };
}

export const insert = (relation: ApplyRelation, ...values: ColumnValue[]): Change => ({
  kind: "insert",
  relation,
  values,
});

export const update = (
  relation: ApplyRelation,
  values: readonly ColumnValue[],
  old?: readonly ColumnValue[],
): Change => ({ kind: "update", relation, values, old });

export const remove = (relation: ApplyRelation, ...old: ColumnValue[]): Change => ({
  kind: "delete",
  relation,
  old,
});

export const truncate = (
  relations: readonly ApplyRelation[],
  options: { cascade?: boolean; restartIdentity?: boolean } = {},
): Change => ({
  kind: "truncate",
  relations,
  cascade: options.cascade ?? false,
  restartIdentity: options.restartIdentity ?? false,
});
