// Verification of the base copy under the copy's own exported snapshot: each table's row count
// and row-hash sum (and the large objects' count and hash) read at the snapshot on the source
// and from the untouched target, tables in parallel. Nothing is skipped: the snapshot does not
// move, so any difference is real.
import { MigrationError } from "../pg/errors";
import { runWorkers } from "../pg/pool";
import { beginAtSnapshot } from "../pg/session";
import type { MigrationSpec, TableRef, TableVerification } from "../spec/types";
import { firstDifference } from "./diff";
import { verifyLargeObjects } from "./large-objects";
import { closePair, keyOf, listTables, measure, openPair, same, type Pair } from "./measure";

/**
 * Compares every table of `database` as the snapshot `snapshot` (still held by its exporter)
 * sees it on the source with what the target holds now. Must run before anything but the copy
 * has written the target. A differing table carries `difference`: its first differing key.
 * An aborted `signal` stops handing out tables and throws.
 */
export async function verifyAtSnapshot(
  spec: MigrationSpec,
  database: string,
  snapshot: string,
  signal?: AbortSignal,
): Promise<TableVerification[]> {
  const open = async (): Promise<Pair> => {
    const pair = await openPair(spec, database);
    try {
      await beginAtSnapshot(pair.source, snapshot);
      return pair;
    } catch (err) {
      await closePair(pair);
      throw err;
    }
  };
  const close = async (pair: Pair): Promise<void> => {
    await pair.source.query("COMMIT").catch(() => undefined);
    await closePair(pair);
  };
  try {
    // The table list itself is read at the snapshot: exactly the tables the copy saw.
    const lister = await open();
    let tables: TableRef[];
    let largeObjects: TableVerification | undefined;
    try {
      tables = await listTables(lister.source);
      largeObjects = await verifyLargeObjects(lister, database);
    } finally {
      await close(lister);
    }
    const results = new Map<string, TableVerification>();
    await runWorkers(
      tables,
      spec.parallelism.tables,
      open,
      async (table, { source, target }) => {
        const [onSource, onTarget] = await Promise.all([
          measure(source, table, "checksum"),
          measure(target, table, "checksum"),
        ]);
        const match = same(onSource, onTarget);
        const difference = match ? undefined : await firstDifference(source, target, table);
        results.set(keyOf(table), {
          databaseName: database,
          table: keyOf(table),
          method: "snapshot",
          sourceRows: onSource.rows,
          targetRows: onTarget.rows,
          match,
          ...(difference === undefined ? {} : { difference }),
        });
      },
      close,
      signal,
    );
    // Stopped early (cancel, worker stopping): what was compared proves nothing about the rest.
    if (signal?.aborted) {
      throw new MigrationError("verify", `verification of database "${database}" was interrupted`);
    }
    const verified = tables.map((t) => results.get(keyOf(t)) as TableVerification);
    return largeObjects ? [...verified, largeObjects] : verified;
  } catch (err) {
    throw MigrationError.wrap("verify", err, `verifying the copy of database "${database}"`);
  }
}
