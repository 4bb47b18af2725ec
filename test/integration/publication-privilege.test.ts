// PublicationPrivilege: an online migration creates a publication FOR TABLE on the source, which
// needs CREATE on the database and ownership of every table (directly or through the owning
// role). A REPLICATION role that owns nothing fails validation naming the tables; once it is a
// member of the owners it passes — and the publication can then really be created.
import assert from "node:assert/strict";
import { dropSlotAndPublication, ensurePublication } from "../../provider/cdc";
import { publicationName, slotName } from "../../provider/pg/names";
import { SQLSTATE } from "../../provider/pg/errors";
import type {
  CheckResult,
  Endpoint,
  MigrationSpec,
  ValidationReport,
} from "../../provider/spec/types";
import { validateMigration } from "../../provider/validate";
import { startPostgres, type PgServer } from "../support/postgres";

const DATABASE = "ledger";
const MIGRATION = "pub-priv";
const REPL_PASSWORD = "repl-only-secret-91";

function endpoint(server: PgServer, username = server.user, password = server.password): Endpoint {
  return { host: server.host, port: server.port, username, password, sslMode: "disable" };
}

function spec(source: Endpoint, target: PgServer): MigrationSpec {
  return {
    migrationName: MIGRATION,
    source,
    target: endpoint(target),
    databases: [DATABASE],
    mode: "Online",
    option: "Validate",
    overwriteDbsInTarget: false,
    cutover: false,
    parallelism: { tables: 2, indexes: 2 },
    migrateRoles: false,
    verify: "counts",
    controlDatabase: "postgres",
  };
}

function check(report: ValidationReport, type: string): CheckResult {
  const found = report.databaseLevel[0]?.summary.find((c) => c.type === type);
  assert.ok(found, `no ${type} in ${JSON.stringify(report, null, 1)}`);
  return found;
}

describe("validation: may the source user create the publication?", () => {
  let source: PgServer;
  let target: PgServer;
  const repl = () => endpoint(source, "repl_only", REPL_PASSWORD);

  before(async () => {
    [source, target] = await Promise.all([startPostgres(), startPostgres()]);
    await source.query("CREATE ROLE ledger_owner");
    await source.query(`CREATE ROLE repl_only LOGIN REPLICATION PASSWORD '${REPL_PASSWORD}'`);
    await source.query(`CREATE DATABASE ${DATABASE}`);
    const tables = Array.from({ length: 12 }, (_, i) => `entry_${String(i + 1).padStart(2, "0")}`);
    await source.query(
      `${tables.map((t) => `CREATE TABLE public.${t} (id int PRIMARY KEY); ALTER TABLE public.${t} OWNER TO ledger_owner;`).join("\n")}
       CREATE TABLE public.admin_notes (id int PRIMARY KEY);
       GRANT SELECT ON ALL TABLES IN SCHEMA public TO repl_only;`,
      [],
      DATABASE,
    );
  });
  after(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  it("fails a REPLICATION role that owns no table and may not create in the database", async () => {
    const report = await validateMigration(spec(repl(), target));
    const priv = check(report, "PublicationPrivilege");
    assert.equal(priv.state, "Failed");
    assert.equal(report.status, "Failed");
    assert.equal(priv.messages.length, 2, priv.messages.join("\n"));
    assert.match(
      priv.messages[0],
      /"repl_only" may not create a publication in database "ledger": run GRANT CREATE ON DATABASE "ledger" TO "repl_only";/,
    );
    assert.match(
      priv.messages[1],
      /of 13 table\(s\) to publish: public\.admin_notes \(owner postgres\)/,
    );
    assert.match(priv.messages[1], /public\.entry_01 \(owner ledger_owner\)/);
    assert.match(priv.messages[1], /and 3 more\./);
    assert.match(priv.messages[1], /GRANT ledger_owner TO "repl_only";/);
    // postgres is a superuser: membership in it would make repl_only one through SET ROLE.
    assert.doesNotMatch(priv.messages[1], /GRANT postgres/);
    assert.match(priv.messages[1], /ALTER TABLE public\.admin_notes OWNER TO "repl_only";/);
    assert.ok(!JSON.stringify(report).includes(REPL_PASSWORD));

    // What the check predicts is what CREATE PUBLICATION does.
    await assert.rejects(ensurePublication(repl(), DATABASE, publicationName(MIGRATION)), {
      code: SQLSTATE.insufficientPrivilege,
    });
  });

  it("runs every suggested statement as written, and then passes and publishes", async () => {
    const failing = check(await validateMigration(spec(repl(), target)), "PublicationPrivilege");
    const statements = failing.messages.flatMap(
      (m) => m.match(/(?:GRANT|ALTER TABLE) [^;]+;/g) ?? [],
    );
    assert.equal(statements.length, 3, statements.join("\n"));
    // Run by an administrator, in the database, exactly as the advice spells them.
    for (const sql of statements) await source.query(sql, [], DATABASE);
    const [member] = await source.query<{ superuser: boolean }>(
      "SELECT rolsuper AS superuser FROM pg_roles WHERE rolname = 'repl_only'",
    );
    assert.equal(member.superuser, false);

    const passed = check(await validateMigration(spec(repl(), target)), "PublicationPrivilege");
    assert.equal(passed.state, "Succeeded", passed.messages.join("\n"));
    assert.match(passed.messages[0], /all 13 table\(s\)/);

    await ensurePublication(repl(), DATABASE, publicationName(MIGRATION));
    try {
      const [row] = await source.query<{ n: string }>(
        "SELECT count(*) AS n FROM pg_publication_tables WHERE pubname = $1",
        [publicationName(MIGRATION)],
        DATABASE,
      );
      assert.equal(Number(row.n), 13);
    } finally {
      await dropSlotAndPublication(
        endpoint(source),
        DATABASE,
        slotName(MIGRATION, DATABASE),
        publicationName(MIGRATION),
      );
    }
  });

  it("passes a superuser whatever it owns, and skips the check offline", async () => {
    const report = await validateMigration(spec(endpoint(source), target));
    const priv = check(report, "PublicationPrivilege");
    assert.equal(priv.state, "Succeeded");
    assert.match(priv.messages[0], /is a superuser/);
    const offline = await validateMigration({ ...spec(endpoint(source), target), mode: "Offline" });
    assert.ok(!offline.databaseLevel[0].summary.some((c) => c.type === "PublicationPrivilege"));
    assert.ok(!offline.databaseLevel[0].summary.some((c) => c.type === "TargetTriggers"));
  });
});
