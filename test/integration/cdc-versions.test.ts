// Online replication from PostgreSQL 13 to 16 on the shared fixture: two databases streamed at
// once while the fixture's workload (tricky types, TOAST, partitions, cascades) runs.
import assert from "node:assert/strict";
import {
  createSlotWithSnapshot,
  currentWalLsn,
  dropSlotAndPublication,
  dropTargetBookkeeping,
  ensurePublication,
  startReplication,
  storedAppliedLsn,
  type ReplicationStream,
} from "../../provider/cdc";
import { publicationName, slotName } from "../../provider/pg/names";
import type { Endpoint } from "../../provider/spec/types";
import { compareDatabases } from "../support/checksum";
import { addTableWithoutPrimaryKey, loadFixture, writeWorkload } from "../support/fixture";
import { startPostgres, type PgServer } from "../support/postgres";

const MIGRATION = "cdc-versions";
const DATABASES = ["shop_a", "shop_b"];

function endpoint(server: PgServer): Endpoint {
  return {
    host: server.host,
    port: server.port,
    username: server.user,
    password: server.password,
    sslMode: "disable",
  };
}

describe("change data capture (PostgreSQL 13 → 16, two databases at once)", function () {
  let source: PgServer;
  let target: PgServer;
  const streams: ReplicationStream[] = [];

  before(async () => {
    [source, target] = await Promise.all([
      startPostgres({ version: 13 }),
      startPostgres({ version: 16 }),
    ]);
  });
  after(async () => {
    for (const s of streams) await s.stop();
    for (const db of DATABASES) {
      await dropSlotAndPublication(
        endpoint(source),
        db,
        slotName(MIGRATION, db),
        publicationName(MIGRATION),
      ).catch(() => undefined);
    }
    await Promise.all([source?.stop(), target?.stop()]);
  });

  it("keeps both targets equal to their sources while the workload runs", async () => {
    // Identical loads on both sides stand in for the copy; then publication, slot, stream.
    for (const db of DATABASES) {
      for (const server of [source, target]) {
        await loadFixture(server, db, { rows: 300 });
        await addTableWithoutPrimaryKey(server, db);
      }
      await ensurePublication(endpoint(source), db, publicationName(MIGRATION), {
        fixReplicaIdentity: "full",
      });
      const slot = await createSlotWithSnapshot(endpoint(source), db, slotName(MIGRATION, db));
      await slot.release();
      streams.push(
        await startReplication({
          source: endpoint(source),
          target: endpoint(target),
          database: db,
          slotName: slot.slotName,
          publication: publicationName(MIGRATION),
          startLsn: slot.consistentPoint,
        }),
      );
    }

    const counts = await Promise.all(
      DATABASES.map((db) => writeWorkload(source, db, { transactions: 25 })),
    );
    await source.query(
      `UPDATE public.no_pk_log SET level = 'debug' WHERE message = 'message 7';
       DELETE FROM public.no_pk_log WHERE message = 'message 9';
       TRUNCATE inventory.empty_bin, "Sales".order_audit`,
      [],
      DATABASES[0],
    );
    await writeWorkload(source, DATABASES[0], { transactions: 5 });

    for (const [i, db] of DATABASES.entries()) {
      await streams[i].waitForLsn(await currentWalLsn(endpoint(source), db), {
        timeoutMs: 120_000,
      });
      const comparison = await compareDatabases(source, db, target, db);
      assert.deepEqual(comparison.differences, [], `${db}: target differs from source`);
      const stats = streams[i].stats();
      // Triggers and cascades on the source add rows beyond the workload's own statements, and
      // an update moving a row to another partition arrives as a delete plus an insert.
      const written = counts[i].inserts + counts[i].updates + counts[i].deletes;
      assert.ok(
        stats.appliedChanges >= written,
        `${db}: ${stats.appliedChanges} changes for ${written} written`,
      );
      assert.ok(stats.inserts >= counts[i].inserts, `${db}: ${stats.inserts} inserts applied`);
      assert.equal(stats.incomingChanges, stats.appliedChanges);
      assert.equal(stats.truncates, i === 0 ? 1 : 0);
      assert.equal(
        await storedAppliedLsn(endpoint(target), db, slotName(MIGRATION, db)),
        stats.appliedLsn,
      );
    }

    for (const s of streams.splice(0)) await s.stop();
    for (const db of DATABASES) {
      await dropSlotAndPublication(
        endpoint(source),
        db,
        slotName(MIGRATION, db),
        publicationName(MIGRATION),
      );
      await dropTargetBookkeeping(endpoint(target), db);
      assert.equal(
        await storedAppliedLsn(endpoint(target), db, slotName(MIGRATION, db)),
        undefined,
      );
      const pubs = await source.query(
        "SELECT pubname FROM pg_publication WHERE pubname LIKE 'pgmigrate\\_%'",
        [],
        db,
      );
      assert.deepEqual(pubs, []);
    }
    const slots = await source.query(
      "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'pgmigrate\\_%'",
    );
    assert.deepEqual(slots, []);
  });
});
