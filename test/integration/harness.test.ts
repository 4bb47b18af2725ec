// The test harness itself: servers of two major versions side by side, password auth enforced.
import assert from "node:assert/strict";
import fs from "node:fs";
import { Client } from "pg";
import { startPostgres, type PgServer } from "../support/postgres";

describe("PostgreSQL test harness", () => {
  let pg15: PgServer;
  let pg13: PgServer;

  before(async () => {
    [pg15, pg13] = await Promise.all([
      startPostgres({ version: 15 }),
      startPostgres({ version: 13 }),
    ]);
  });
  after(async () => {
    await Promise.all([pg15?.stop(), pg13?.stop()]);
  });

  it("runs 15 and 13 side by side, ready for logical replication", async () => {
    const [v15] = await pg15.query<{ v: string }>("SHOW server_version_num");
    const [v13] = await pg13.query<{ v: string }>("SHOW server_version_num");
    assert.equal(Math.floor(Number(Object.values(v15)[0]) / 10000), 15);
    assert.equal(Math.floor(Number(Object.values(v13)[0]) / 10000), 13);
    assert.notEqual(pg15.port, pg13.port);
    const [wal] = await pg13.query<{ wal_level: string }>("SHOW wal_level");
    assert.equal(wal.wal_level, "logical");
  });

  it("rejects a wrong password", async () => {
    const client = new Client({
      host: pg15.host,
      port: pg15.port,
      user: pg15.user,
      password: "not-the-password",
      database: "postgres",
    });
    await assert.rejects(client.connect(), (err: Error & { code?: string }) => {
      assert.equal(err.code, "28P01");
      return true;
    });
  });

  it("removes the data directory when stopped", async () => {
    const server = await startPostgres();
    const [dir] = await server.query<{ data_directory: string }>("SHOW data_directory");
    assert.ok(fs.existsSync(dir.data_directory));
    await server.stop();
    assert.ok(!fs.existsSync(dir.data_directory));
    await server.stop();
  });
});
