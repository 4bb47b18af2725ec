// The source fixture and the checksum helper: the fixture loads on 13 and 15 with the promised
// shape, identical loads hash identically across versions, and one changed value is caught.
import assert from "node:assert/strict";
import { quoteIdent } from "../../provider/pg/ident";
import { checksumDatabase, compareDatabases, sequenceStates, tableKey } from "../support/checksum";
import {
  FIXTURE_SCHEMAS,
  FIXTURE_TABLES,
  addTableWithoutPrimaryKey,
  loadFixture,
  writeWorkload,
} from "../support/fixture";
import { startPostgres, type PgServer } from "../support/postgres";

const DB = "shop";

/** A fresh copy of the loaded fixture, for tests that change data. */
async function copyOf(server: PgServer, name: string): Promise<string> {
  await server.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE ${quoteIdent(DB)}`);
  return name;
}

async function one<R extends Record<string, unknown>>(
  server: PgServer,
  sql: string,
  db = DB,
): Promise<R> {
  const rows = await server.query<R>(sql, [], db);
  return rows[0];
}

describe("source fixture and checksums", () => {
  let pg15: PgServer;
  let pg13: PgServer;

  before(async () => {
    [pg15, pg13] = await Promise.all([
      startPostgres({ version: 15 }),
      startPostgres({ version: 13 }),
    ]);
    await Promise.all([loadFixture(pg15, DB), loadFixture(pg13, DB)]);
  });
  after(async () => {
    await Promise.all([pg15?.stop(), pg13?.stop()]);
  });

  for (const version of [15, 13]) {
    it(`has the promised shape on PostgreSQL ${version}`, async () => {
      const server = version === 15 ? pg15 : pg13;
      const count = async (sql: string, params: unknown[] = []): Promise<number> =>
        Number((await server.query<{ n: string }>(sql, params, DB))[0].n);

      const schemas = await count(
        `SELECT count(*) AS n FROM pg_namespace WHERE nspname = ANY($1)`,
        [FIXTURE_SCHEMAS],
      );
      assert.equal(schemas, FIXTURE_SCHEMAS.length);
      const types = await server.query<{ typtype: string; n: string }>(
        `SELECT t.typtype, count(*) AS n FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         LEFT JOIN pg_class c ON c.oid = t.typrelid
         WHERE n.nspname = 'public' AND (t.typtype <> 'c' OR c.relkind = 'c')
         GROUP BY 1`,
        [],
        DB,
      );
      const byType = Object.fromEntries(types.map((t) => [t.typtype, Number(t.n)]));
      assert.ok(byType.e >= 1, "an enum");
      assert.ok(byType.d >= 2, "domains");
      assert.ok(byType.c >= 1, "a composite type");
      assert.ok(byType.r >= 1, "a range type");

      const partitions = await count(
        `SELECT count(*) AS n FROM pg_inherits WHERE inhparent = 'public.events'::regclass`,
      );
      assert.equal(partitions, 3);
      assert.equal(await count(`SELECT count(*) AS n FROM pg_class WHERE relkind = 'p'`), 1);
      assert.equal(await count(`SELECT count(*) AS n FROM pg_matviews`), 1);
      assert.ok(
        (await count(
          `SELECT count(*) AS n FROM pg_views WHERE schemaname IN ('public', 'Sales')`,
        )) >= 2,
      );
      assert.ok((await count(`SELECT count(*) AS n FROM pg_trigger WHERE NOT tgisinternal`)) >= 2);
      assert.ok(
        (await count(
          `SELECT count(*) AS n FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
           WHERE l.lanname = 'plpgsql' AND p.pronamespace <> 'pg_catalog'::regnamespace`,
        )) >= 3,
      );
      assert.ok((await count(`SELECT count(*) AS n FROM pg_constraint WHERE contype = 'f'`)) >= 6);
      for (const kind of ["a", "d"]) {
        assert.ok(
          (await count(`SELECT count(*) AS n FROM pg_attribute WHERE attidentity = $1`, [kind])) >=
            1,
          `identity ${kind}`,
        );
      }
      assert.ok(
        (await count(`SELECT count(*) AS n FROM pg_attribute WHERE attgenerated = 's'`)) >= 2,
      );

      // Every table has a primary key, so the fixture can be replicated online as is.
      const withoutPk = await count(
        `SELECT count(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1)
           AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p')`,
        [FIXTURE_SCHEMAS],
      );
      assert.equal(withoutPk, 0);

      const wide = await one<{ body: number; attachment: number; toast: string }>(
        server,
        `SELECT max(pg_column_size(body)) AS body, max(pg_column_size(attachment)) AS attachment,
                pg_relation_size((SELECT reltoastrelid FROM pg_class WHERE oid = 'public.documents'::regclass)) AS toast
         FROM public.documents`,
      );
      assert.ok(wide.body > 100_000, `body ${wide.body} bytes`);
      assert.ok(wide.attachment > 8000, `attachment ${wide.attachment} bytes`);
      assert.ok(Number(wide.toast) > 1_000_000, "wide values live in the TOAST table");

      const sums = await checksumDatabase(server, DB);
      assert.deepEqual([...sums.keys()].sort(), FIXTURE_TABLES.map(tableKey).sort());
      for (const [key, sum] of sums) {
        if (key === "inventory.empty_bin") assert.equal(sum.rows, 0);
        else assert.ok(sum.rows > 0, `${key} has rows`);
      }
      assert.equal(sums.get("public.customers")?.rows, 2000);
      assert.equal(sums.get("Sales.order_audit")?.rows, sums.get("Sales.order")!.rows + 100);

      // Sequences are ahead of the data, so continuing from max(id) would be wrong.
      const sequences = await sequenceStates(server, DB);
      assert.equal(sequences.get("public.customers_customer_id_seq")?.lastValue, "2003");
      assert.deepEqual(sequences.get("public.batch_seq"), { lastValue: "100", isCalled: false });
      assert.equal(sequences.get("public.user_user_id_seq")?.lastValue, "40");
      assert.equal(
        (await one<{ m: string }>(server, `SELECT max(user_id) AS m FROM public."user"`)).m,
        "1001",
      );
    });
  }

  it("gives equal checksums for identical loads on PostgreSQL 15 and 13", async () => {
    const comparison = await compareDatabases(pg15, DB, pg13, DB);
    assert.deepEqual(comparison.differences, []);
    assert.equal(comparison.equal, true);
  });

  it("detects one changed column value and names the table", async () => {
    const db = await copyOf(pg15, "one_update");
    await pg15.query(
      `UPDATE public.customers SET loyalty_points = loyalty_points + 1 WHERE customer_id = 1234`,
      [],
      db,
    );
    const { equal, differences } = await compareDatabases(pg15, DB, pg15, db);
    assert.equal(equal, false);
    assert.deepEqual(differences, [
      "public.customers: same row count (2000) but different contents",
    ]);
  });

  it("detects one deleted row and names the table with both counts", async () => {
    const db = await copyOf(pg15, "one_delete");
    await pg15.query(`DELETE FROM "Sales".order_line WHERE order_id = 7 AND line_no = 2`, [], db);
    const { differences } = await compareDatabases(pg13, DB, pg15, db);
    assert.equal(differences.length, 1);
    assert.match(
      differences[0],
      /^Sales\.order_line: \d+ rows in .*\/shop, \d+ rows in .*\/one_delete$/,
    );
    const sums = [await checksumDatabase(pg13, DB), await checksumDatabase(pg15, db)];
    assert.equal(sums[1].get("Sales.order_line")!.rows, sums[0].get("Sales.order_line")!.rows - 1);
  });

  it("detects a one-character change inside a TOASTed text and a one-byte bytea change", async () => {
    const db = await copyOf(pg15, "toast_change");
    const before = await checksumDatabase(pg15, db);
    await pg15.query(
      `UPDATE public.documents SET body = overlay(body PLACING 'Z' FROM 60000) WHERE doc_id = 5`,
      [],
      db,
    );
    const afterText = await checksumDatabase(pg15, db);
    assert.notEqual(afterText.get("public.documents")!.hash, before.get("public.documents")!.hash);
    assert.equal(afterText.get("public.documents")!.rows, before.get("public.documents")!.rows);

    await pg15.query(
      `UPDATE public.documents SET attachment = set_byte(attachment, 20000, get_byte(attachment, 20000) # 1)
       WHERE doc_id = 6`,
      [],
      db,
    );
    const afterBytes = await checksumDatabase(pg15, db);
    assert.notEqual(
      afterBytes.get("public.documents")!.hash,
      afterText.get("public.documents")!.hash,
    );
    const changed = [...afterBytes].filter(([key, sum]) => before.get(key)!.hash !== sum.hash);
    assert.deepEqual(
      changed.map(([key]) => key),
      ["public.documents"],
    );
  });

  it("reports a table present on one side only", async () => {
    const db = await copyOf(pg13, "extra_table");
    const noPk = await addTableWithoutPrimaryKey(pg13, db);
    const { differences } = await compareDatabases(pg15, DB, pg13, db);
    assert.equal(differences.length, 1);
    assert.match(differences[0], /^public\.no_pk_log: only in .*\/extra_table$/);
    const indexes = await pg13.query(
      `SELECT 1 FROM pg_index WHERE indrelid = 'public.no_pk_log'::regclass`,
      [],
      db,
    );
    assert.equal(indexes.length, 0, "no primary key, no unique index");
    assert.equal((await checksumDatabase(pg13, db)).get(tableKey(noPk))?.rows, 100);
  });

  for (const version of [15, 13]) {
    it(`runs the write workload on PostgreSQL ${version} and reports what it did`, async () => {
      const server = version === 15 ? pg15 : pg13;
      const db = await copyOf(server, "workload");
      const before = await checksumDatabase(server, db);
      const counts = await writeWorkload(server, db, { transactions: 12 });
      assert.equal(counts.transactions, 12);
      assert.ok(counts.inserts >= 12 * 6, `inserts ${counts.inserts}`);
      assert.ok(counts.updates >= 12 * 4, `updates ${counts.updates}`);
      assert.ok(counts.deletes >= 8, `deletes ${counts.deletes}`);
      const after = await checksumDatabase(server, db);
      for (const key of [
        "public.customers",
        "public.type_zoo",
        "public.documents",
        "public.events_2023",
        "public.events_2024",
        "public.user",
        "Sales.order",
        "Sales.order_line",
        "Sales.order_audit",
        "inventory.stock_moves",
        "public.Customer Notes",
      ]) {
        assert.notEqual(after.get(key)!.hash, before.get(key)!.hash, `${key} changed`);
      }
      const wide = await one<{ n: string }>(
        server,
        `SELECT count(*) AS n FROM public.documents WHERE pg_column_size(body) > 100000`,
        db,
      );
      assert.equal(wide.n, "12");

      const aborted = new AbortController();
      aborted.abort();
      const none = await writeWorkload(server, db, { transactions: 5, signal: aborted.signal });
      assert.deepEqual(none, { transactions: 0, inserts: 0, updates: 0, deletes: 0 });
    });
  }
});
