// Same-table parallelism: a table larger than the split threshold is copied in ranges, each by
// its own worker under the clone's one snapshot, scheduled in the same pool as whole tables.
// Sources on PostgreSQL 14 or newer: heap block ranges (`ctid`), read with a TID Range Scan (only
// the range's pages). Older sources would read the whole table for each ctid range, so there a
// table is split only by its integer primary key (an index range each), else copied whole.
import { quoteIdent } from "../pg/ident";
import { splitThreshold } from "../spec/inputs";
import type { MigrationSpec } from "../spec/types";
import type { TableToCopy } from "./tables";

/** The first source major version whose planner scans a ctid range without reading the rest. */
export const TID_RANGE_SCAN_MAJOR = 14;

/** More ranges only add statements: each one is still a large share of a huge table. */
export const MAX_RANGES_PER_TABLE = 256;

/** Heap blocks [fromBlock, toBlock) of one table; toBlock null: to the end of the heap. */
export interface BlockRange {
  readonly kind: "blocks";
  /** 0-based position among the table's ranges. */
  readonly index: number;
  readonly count: number;
  readonly fromBlock: number;
  readonly toBlock: number | null;
}

/** Integer primary key values [from, to) (decimal); null: unbounded on that side. */
export interface KeyRange {
  readonly kind: "key";
  readonly index: number;
  readonly count: number;
  readonly column: string;
  readonly from: string | null;
  readonly to: string | null;
}

export type CopyRange = BlockRange | KeyRange;

/** What one worker copies in one go: a whole table, or one range of it. */
export interface CopyUnit {
  readonly table: TableToCopy;
  readonly range?: CopyRange;
}

/**
 * The copy units of `tables` in their order (largest first), split tables' ranges next to each
 * other so they start together. A table over the threshold gets ranges of about the threshold's
 * size and at least as many as there are workers (one large table still keeps every worker
 * busy), at most MAX_RANGES_PER_TABLE. The first and last ranges are open-ended: rows outside
 * the planned bounds are invisible to the snapshot, but they are read rather than assumed absent.
 */
export function planCopyUnits(
  spec: MigrationSpec,
  sourceMajor: number,
  tables: readonly TableToCopy[],
): CopyUnit[] {
  const threshold = splitThreshold(spec.parallelism);
  const units: CopyUnit[] = [];
  for (const table of tables) {
    const wanted = Math.min(
      Math.max(Math.ceil(table.heapBytes / threshold), spec.parallelism.tables),
      MAX_RANGES_PER_TABLE,
    );
    const ranges =
      table.heapBytes <= threshold
        ? []
        : sourceMajor >= TID_RANGE_SCAN_MAJOR
          ? blockRanges(table.pages, wanted)
          : keyRanges(table, wanted);
    if (ranges.length < 2) units.push({ table });
    else for (const range of ranges) units.push({ table, range });
  }
  return units;
}

// Sizes differ by one block at most; count ≤ pages, so none is empty.
function blockRanges(pages: number, wanted: number): BlockRange[] {
  const count = Math.min(wanted, pages);
  const boundary = (i: number): number => Math.floor((i * pages) / count);
  return Array.from({ length: count }, (_, index) => ({
    kind: "blocks",
    index,
    count,
    fromBlock: boundary(index),
    toBlock: index === count - 1 ? null : boundary(index + 1),
  }));
}

// Equal spans of the key's values at the snapshot: equal shares of the rows when the keys are
// dense (a serial), uneven otherwise, never wrong.
function keyRanges(table: TableToCopy, wanted: number): KeyRange[] {
  const key = table.integerKey;
  if (!key || key.min === null || key.max === null) return [];
  const min = BigInt(key.min);
  const span = BigInt(key.max) - min + 1n;
  const count = Number(span < BigInt(wanted) ? span : BigInt(wanted));
  const boundary = (i: number): string => String(min + (span * BigInt(i)) / BigInt(count));
  return Array.from({ length: count }, (_, index) => ({
    kind: "key",
    index,
    count,
    column: key.column,
    from: index === 0 ? null : boundary(index),
    to: index === count - 1 ? null : boundary(index + 1),
  }));
}

/** The WHERE clause selecting a range's rows; bounds are integers we computed or read. */
export function rangePredicate(range: CopyRange): string {
  if (range.kind === "blocks") {
    const from = `ctid >= '(${range.fromBlock},0)'::tid`;
    return range.toBlock === null ? from : `${from} AND ctid < '(${range.toBlock},0)'::tid`;
  }
  const column = quoteIdent(range.column);
  const bounds = [
    range.from === null ? null : `${column} >= ${integer(range.from)}`,
    range.to === null ? null : `${column} < ${integer(range.to)}`,
  ].filter((b): b is string => b !== null);
  return bounds.length > 0 ? bounds.join(" AND ") : "true";
}

function integer(value: string): string {
  if (!/^-?\d+$/.test(value)) throw new Error(`not an integer key bound: ${value}`);
  return value;
}

/** The event naming the tables copied in ranges, or null when none is split. */
export function splitSummary(units: readonly CopyUnit[]): string | null {
  const tables = units
    .filter((u) => u.range?.index === 0)
    .map((u) => {
      const by = u.range?.kind === "key" ? ` by ${u.range.column}` : "";
      return `${u.table.schema}.${u.table.name} (${u.range?.count} ranges${by})`;
    });
  if (tables.length === 0) return null;
  return `copying ${tables.length} large table(s) in ranges under the same snapshot: ${tables.join(", ")}`;
}
