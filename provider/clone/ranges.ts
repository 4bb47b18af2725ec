// Same-table parallelism: a table larger than the split threshold is copied as block ranges of
// its heap (`ctid` ranges), each by its own worker under the clone's one snapshot, scheduled in
// the same pool as whole tables. Only from sources on PostgreSQL 14 or newer, which read a ctid
// range with a TID Range Scan (only the range's pages); before 14 the same filter is a full scan
// per range, so older sources copy every table whole.
import { splitThreshold } from "../spec/inputs";
import type { MigrationSpec } from "../spec/types";
import type { TableToCopy } from "./tables";

/** The first source major version whose planner scans a ctid range without reading the rest. */
export const TID_RANGE_SCAN_MAJOR = 14;

/** More ranges only add statements: each one is still a large share of a huge table. */
export const MAX_RANGES_PER_TABLE = 256;

/** Heap blocks [fromBlock, toBlock) of one table; toBlock null: to the end of the heap. */
export interface BlockRange {
  /** 0-based position among the table's ranges. */
  readonly index: number;
  readonly count: number;
  readonly fromBlock: number;
  readonly toBlock: number | null;
}

/** What one worker copies in one go: a whole table, or one block range of it. */
export interface CopyUnit {
  readonly table: TableToCopy;
  readonly range?: BlockRange;
}

/**
 * The copy units of `tables` in their order (largest first), split tables' ranges next to each
 * other so they start together. A table over the threshold gets ranges of about the threshold's
 * size and at least as many as there are workers (one large table still keeps every worker
 * busy), at most MAX_RANGES_PER_TABLE. The last range is open-ended: pages added after the size
 * was read hold no row the snapshot sees, but they are read anyway rather than assumed empty.
 */
export function planCopyUnits(
  spec: MigrationSpec,
  sourceMajor: number,
  tables: readonly TableToCopy[],
): CopyUnit[] {
  const threshold = splitThreshold(spec.parallelism);
  const units: CopyUnit[] = [];
  for (const table of tables) {
    const wanted = Math.max(Math.ceil(table.heapBytes / threshold), spec.parallelism.tables);
    const count = Math.min(wanted, MAX_RANGES_PER_TABLE, table.pages);
    if (sourceMajor < TID_RANGE_SCAN_MAJOR || table.heapBytes <= threshold || count < 2) {
      units.push({ table });
      continue;
    }
    // Sizes differ by one block at most; count ≤ pages, so none is empty.
    const boundary = (i: number): number => Math.floor((i * table.pages) / count);
    for (let index = 0; index < count; index++) {
      const toBlock = index === count - 1 ? null : boundary(index + 1);
      units.push({ table, range: { index, count, fromBlock: boundary(index), toBlock } });
    }
  }
  return units;
}

/** The WHERE clause selecting a range's rows; block numbers are integers we computed. */
export function rangePredicate(range: BlockRange): string {
  const from = `ctid >= '(${range.fromBlock},0)'::tid`;
  return range.toBlock === null ? from : `${from} AND ctid < '(${range.toBlock},0)'::tid`;
}
