// A deferrable primary key is not a replica identity: PostgreSQL rejects UPDATE/DELETE on such a
// table once it is published, so validation must report it like a table without a key.
import assert from "node:assert/strict";
import { tablesWithoutReplicaIdentity } from "../../provider/validate";
import { startPostgres, type PgServer } from "../support/postgres";

describe("replica identity detection", () => {
  let source: PgServer;

  before(async () => {
    source = await startPostgres();
    await source.query("CREATE DATABASE shop");
    await source.query(
      `CREATE TABLE immediate_pk (id int PRIMARY KEY);
       CREATE TABLE deferrable_pk (id int PRIMARY KEY DEFERRABLE INITIALLY DEFERRED);
       CREATE TABLE by_index (code text NOT NULL, note text);
       CREATE UNIQUE INDEX by_index_code ON by_index (code);
       ALTER TABLE by_index REPLICA IDENTITY USING INDEX by_index_code;
       CREATE TABLE nothing (id int PRIMARY KEY);
       ALTER TABLE nothing REPLICA IDENTITY NOTHING;`,
      [],
      "shop",
    );
  });
  after(async () => {
    await source?.stop();
  });

  it("reports deferrable keys and NOTHING, accepts immediate keys and USING INDEX", async () => {
    const found = await tablesWithoutReplicaIdentity(
      {
        host: source.host,
        port: source.port,
        username: source.user,
        password: source.password,
        sslMode: "disable",
      },
      "shop",
    );
    assert.deepEqual(
      found.map((t) => `${t.schema}.${t.name}`),
      ["public.deferrable_pk", "public.nothing"],
    );
    // The source agrees: publishing the deferrable-key table makes its UPDATE fail.
    await source.query("CREATE PUBLICATION probe FOR TABLE deferrable_pk", [], "shop");
    try {
      await source.query("INSERT INTO deferrable_pk VALUES (1)", [], "shop");
      await assert.rejects(
        source.query("UPDATE deferrable_pk SET id = 2", [], "shop"),
        /does not have a replica identity/,
      );
    } finally {
      await source.query("DROP PUBLICATION probe", [], "shop");
    }
  });
});
