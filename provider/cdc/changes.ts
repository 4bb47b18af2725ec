// The vocabulary of apply: relations as the source announced them, changes decoded from the
// stream, and the statements that apply them to the target.
import type { ColumnValue } from "./pgoutput";

/** What the target says about one column of a replicated table. */
export interface TargetColumn {
  /**
   * format_type(atttypid, -1): the column's type for casts, without its modifier ("bpchar",
   * "\"bit\"", "numeric", never `character` or `bit`, which mean length 1), so a cast never
   * truncates or rounds; the column's own modifier is checked on assignment.
   */
  readonly typeName: string;
  /** format_type(atttypid, atttypmod), e.g. `character varying(20)`: names a column in errors. */
  readonly declaredType: string;
  /** The type has a default btree operator class, so `=` is its equality. */
  readonly hasEquality: boolean;
  /** GENERATED ALWAYS AS IDENTITY: only INSERT ... OVERRIDING SYSTEM VALUE may set it. */
  readonly identityAlways: boolean;
  /** Covered by a unique or exclusion index (or the table has a partial or expression one). */
  readonly inUniqueIndex: boolean;
  /**
   * Element type of the array that carries this column's values to a set-based statement
   * (`$n::<arrayElement>[]`): the column's type when its values can go in an array parsed by
   * its own input function; null for arrays, domains and composites, which travel as text[]
   * and are cast per value (array_in, the domain's base input, record_in): an array of arrays
   * is one array of more dimensions, and a composite unnested in ROWS FROM becomes its fields.
   */
  readonly arrayElement: string | null;
  /** Values can go through a set-based statement: false for a domain whose base type's cast
   * from text is a function, not its input function (that cast could read a value differently). */
  readonly setBased: boolean;
}

/** A source relation as announced by a Relation message; replaced on a schema change. */
export interface ApplyRelation {
  /** Unique per session; part of prepared statement names. */
  readonly id: number;
  readonly schema: string;
  readonly name: string;
  readonly columns: readonly string[];
  /** Indexes of the replica identity columns (all of them when `full`). */
  readonly keyColumns: readonly number[];
  /** REPLICA IDENTITY FULL: rows are found by all their old values. */
  readonly full: boolean;
  /** Filled from the target catalog before the first statement; aligned with `columns`. */
  target?: readonly TargetColumn[];
  /**
   * The target table has triggers or rules that fire under session_replication_role = replica
   * (ENABLE ALWAYS / ENABLE REPLICA): they may read or write other tables, so its changes are
   * applied in source order with everything else. Filled with `target`.
   */
  firesOnApply?: boolean;
}

export type Change =
  | {
      readonly kind: "insert";
      readonly relation: ApplyRelation;
      readonly values: readonly ColumnValue[];
    }
  | {
      readonly kind: "update";
      readonly relation: ApplyRelation;
      /** Old key ('K', other columns null) or, for identity FULL, the whole old row ('O'). */
      readonly old?: readonly ColumnValue[];
      readonly values: readonly ColumnValue[];
    }
  | {
      readonly kind: "delete";
      readonly relation: ApplyRelation;
      readonly old: readonly ColumnValue[];
    }
  | {
      readonly kind: "truncate";
      readonly relations: readonly ApplyRelation[];
      readonly cascade: boolean;
      readonly restartIdentity: boolean;
    };

export interface Statement {
  /** Prepared statement name for shapes that repeat; unnamed otherwise. */
  readonly name?: string;
  readonly text: string;
  /** Text values; an array goes as an array literal (set-based statements). */
  readonly values: (string | null | readonly (string | null)[])[];
  /** For error messages. */
  readonly relation: ApplyRelation;
  /** Run instead when this statement touched no row (a guard found a different value). */
  readonly ifNoRows?: readonly Statement[];
}
