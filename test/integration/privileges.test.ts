// Privileges never widened, 15 → 15: every role that exists on both sides has exactly the same
// table, column, sequence, function and schema privileges on the target as on the source, with
// and without migrateRoles and for a non-superuser target user; missing roles are reported.
import assert from "node:assert/strict";
import {
  cloneDatabase,
  dropTargetDatabase,
  migrateRoles,
  prepareTargetDatabase,
  type CloneResult,
} from "../../provider/clone";
import type { MigrationSpec, ProgressSink } from "../../provider/spec/types";
import { validateMigration } from "../../provider/validate";
import { startPostgres, type PgServer } from "../support/postgres";
import { specOf } from "../support/spec";

const DB = "privs";

/** Roles of the story; "nobody" has no grant at all, so it sees exactly what PUBLIC may do. */
const ROLES = ["app_owner", "app_reader", "app_writer", "ghost", "nobody"];

const SOURCE_SCHEMA = `
CREATE SCHEMA app AUTHORIZATION app_owner;
GRANT USAGE ON SCHEMA app TO app_reader;
GRANT USAGE, CREATE ON SCHEMA app TO app_writer WITH GRANT OPTION;
GRANT USAGE ON SCHEMA app TO ghost;

CREATE TABLE app.accounts (id int PRIMARY KEY, name text, secret text);
ALTER TABLE app.accounts OWNER TO app_owner;
INSERT INTO app.accounts VALUES (1, 'one', 's1'), (2, 'two', 's2');
GRANT SELECT (id, name), UPDATE (name) ON app.accounts TO app_reader;
GRANT SELECT, INSERT, UPDATE ON app.accounts TO app_writer WITH GRANT OPTION;
GRANT SELECT ON app.accounts TO ghost;
SET ROLE app_writer;
GRANT INSERT ON app.accounts TO app_reader;
RESET ROLE;

CREATE TABLE app.ledger (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, amount numeric);
ALTER TABLE app.ledger OWNER TO app_owner;
GRANT SELECT ON app.ledger TO PUBLIC;
REVOKE TRUNCATE ON app.ledger FROM app_owner;

CREATE SEQUENCE app.invoice_no;
ALTER SEQUENCE app.invoice_no OWNER TO app_owner;
GRANT USAGE ON SEQUENCE app.invoice_no TO app_writer;

CREATE VIEW app.account_names AS SELECT id, name FROM app.accounts;
ALTER VIEW app.account_names OWNER TO app_owner;
GRANT SELECT ON app.account_names TO app_reader;

CREATE FUNCTION app.private_total() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM app.accounts';
ALTER FUNCTION app.private_total() OWNER TO app_owner;
REVOKE EXECUTE ON FUNCTION app.private_total() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.private_total() TO app_reader;
CREATE FUNCTION public.open_add(a int, b int) RETURNS int LANGUAGE sql AS 'SELECT a + b';

CREATE TABLE public.haunted (id int PRIMARY KEY);
ALTER TABLE public.haunted OWNER TO ghost;
GRANT SELECT ON public.haunted TO app_reader;

GRANT CREATE ON SCHEMA public TO app_writer;
REVOKE TEMPORARY ON DATABASE ${DB} FROM PUBLIC;

ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA app GRANT SELECT ON TABLES TO app_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE app_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE app_owner GRANT SELECT ON TABLES TO ghost;
`;

const USER_SCHEMAS = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'`;

const TABLE_PRIVILEGES = [
  "SELECT",
  "INSERT",
  "UPDATE",
  "DELETE",
  "TRUNCATE",
  "REFERENCES",
  "TRIGGER",
];

/**
 * Every privilege of every listed role on every object, by name (oids differ between servers):
 * `role | object | privilege` for each one held, grant options included.
 */
const MATRIX_SQL = `
WITH r AS (SELECT rolname FROM pg_roles WHERE rolname = ANY($1)),
rel AS (SELECT c.oid, c.relkind, format('%I.%I', n.nspname, c.relname) AS name
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') AND ${USER_SCHEMAS}),
opt(suffix) AS (VALUES (''), (' WITH GRANT OPTION')),
held AS (
  SELECT r.rolname, 'table ' || rel.name AS object, p || o.suffix AS privilege
    FROM r, rel, opt o, unnest($2::text[]) p
   WHERE rel.relkind <> 'S' AND has_table_privilege(r.rolname, rel.oid, p || o.suffix)
  UNION ALL
  SELECT r.rolname, format('column %s.%I', rel.name, a.attname), p || o.suffix
    FROM r, rel JOIN pg_attribute a ON a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped,
         opt o, unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'REFERENCES']) p
   WHERE rel.relkind <> 'S' AND has_column_privilege(r.rolname, rel.oid, a.attnum, p || o.suffix)
  UNION ALL
  SELECT r.rolname, 'sequence ' || rel.name, p || o.suffix
    FROM r, rel, opt o, unnest(ARRAY['USAGE', 'SELECT', 'UPDATE']) p
   WHERE rel.relkind = 'S' AND has_sequence_privilege(r.rolname, rel.oid, p || o.suffix)
  UNION ALL
  SELECT r.rolname, 'function ' || (pg_identify_object('pg_proc'::regclass, f.oid, 0)).identity, 'EXECUTE' || o.suffix
    FROM r, pg_proc f JOIN pg_namespace n ON n.oid = f.pronamespace, opt o
   WHERE ${USER_SCHEMAS} AND has_function_privilege(r.rolname, f.oid, 'EXECUTE' || o.suffix)
  UNION ALL
  SELECT r.rolname, format('schema %I', n.nspname), p || o.suffix
    FROM r, pg_namespace n, opt o, unnest(ARRAY['USAGE', 'CREATE']) p
   WHERE ${USER_SCHEMAS} AND has_schema_privilege(r.rolname, n.oid, p || o.suffix)
  UNION ALL
  SELECT r.rolname, 'database', p || o.suffix
    FROM r, opt o, unnest(ARRAY['CONNECT', 'CREATE', 'TEMPORARY']) p
   WHERE has_database_privilege(r.rolname, current_database(), p || o.suffix)
)
SELECT rolname || ' | ' || object || ' | ' || privilege AS line FROM held ORDER BY 1`;

async function privilegeMatrix(server: PgServer, roles: readonly string[]): Promise<string[]> {
  const rows = await server.query<{ line: string }>(MATRIX_SQL, [roles, TABLE_PRIVILEGES], DB);
  return rows.map((r) => r.line);
}

/** Owners of the schemas, relations and functions, and the database's own owner. */
async function owners(server: PgServer): Promise<Record<string, string>> {
  const rows = await server.query<{ object: string; owner: string }>(
    `SELECT format('schema %I', n.nspname) AS object, n.nspowner::regrole::text AS owner
       FROM pg_namespace n WHERE ${USER_SCHEMAS}
     UNION ALL
     SELECT format('relation %I.%I', n.nspname, c.relname), c.relowner::regrole::text
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'v', 'S') AND ${USER_SCHEMAS}
     UNION ALL
     SELECT 'function ' || (pg_identify_object('pg_proc'::regclass, f.oid, 0)).identity, f.proowner::regrole::text
       FROM pg_proc f JOIN pg_namespace n ON n.oid = f.pronamespace WHERE ${USER_SCHEMAS}
     UNION ALL
     SELECT 'database', pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()`,
    [],
    DB,
  );
  return Object.fromEntries(rows.map((r) => [r.object, r.owner]));
}

/** Every ACL as text with its items sorted (grantors included), by object name. */
async function acls(server: PgServer): Promise<Record<string, string>> {
  const sorted = (acl: string): string =>
    `(SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(${acl}) a)`;
  const rows = await server.query<{ object: string; acl: string }>(
    `SELECT format('schema %I', n.nspname) AS object, ${sorted("n.nspacl")} AS acl
       FROM pg_namespace n WHERE ${USER_SCHEMAS}
     UNION ALL
     SELECT format('relation %I.%I', n.nspname, c.relname), ${sorted("c.relacl")}
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'v', 'S') AND ${USER_SCHEMAS}
     UNION ALL
     SELECT format('column %I.%I.%I', n.nspname, c.relname, a.attname), ${sorted("a.attacl")}
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE a.attacl IS NOT NULL AND ${USER_SCHEMAS}
     UNION ALL
     SELECT 'function ' || (pg_identify_object('pg_proc'::regclass, f.oid, 0)).identity, ${sorted("f.proacl")}
       FROM pg_proc f JOIN pg_namespace n ON n.oid = f.pronamespace WHERE ${USER_SCHEMAS}`,
    [],
    DB,
  );
  return Object.fromEntries(rows.map((r) => [r.object, r.acl]));
}

/** pg_default_acl as text, by role and schema names. */
async function defaultAcls(server: PgServer): Promise<string[]> {
  const rows = await server.query<{ line: string }>(
    `SELECT pg_get_userbyid(d.defaclrole) || ' | ' || COALESCE(n.nspname, '*') || ' | ' || d.defaclobjtype::text
            || ' | ' || (SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(d.defaclacl) a) AS line
       FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace ORDER BY 1`,
    [],
    DB,
  );
  return rows.map((r) => r.line);
}

/** The lines of `matrix` that concern `roles`. */
function forRoles(matrix: readonly string[], roles: readonly string[]): string[] {
  return matrix.filter((line) => roles.includes(line.split(" | ")[0]));
}

function quietProgress(events: string[] = []): ProgressSink {
  return {
    async event(_level, message) {
      events.push(message);
    },
    async tablesQueued() {},
    async tableState() {},
  };
}

describe("privileges never widened (15 → 15)", function () {
  let source: PgServer;
  let target: PgServer;
  let sourceMatrix: string[];
  let sourceOwners: Record<string, string>;

  before(async () => {
    [source, target] = await Promise.all([
      startPostgres({ version: 15 }),
      startPostgres({ version: 15 }),
    ]);
    for (const role of ROLES) await source.query(`CREATE ROLE ${role} NOLOGIN`);
    await source.query(`CREATE DATABASE ${DB} OWNER app_owner`);
    await source.query(SOURCE_SCHEMA, [], DB);
    sourceMatrix = await privilegeMatrix(source, [...ROLES, "postgres"]);
    sourceOwners = await owners(source);
  });
  after(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  it("has a source that tells every role apart (the test is not vacuous)", () => {
    assert.ok(!sourceMatrix.some((l) => l.startsWith("nobody | function app.private_total()")));
    assert.ok(
      sourceMatrix.includes("nobody | function public.open_add(integer,integer) | EXECUTE"),
    );
    assert.ok(sourceMatrix.includes("app_reader | column app.accounts.name | UPDATE"));
    assert.ok(!sourceMatrix.includes("app_reader | column app.accounts.secret | SELECT"));
    assert.ok(sourceMatrix.includes("app_writer | table app.accounts | INSERT WITH GRANT OPTION"));
    assert.ok(sourceMatrix.includes("app_writer | schema public | CREATE"));
    assert.ok(sourceMatrix.includes("app_owner | schema public | CREATE"), "pg_database_owner");
    assert.ok(!sourceMatrix.includes("app_owner | table app.ledger | TRUNCATE"));
    assert.ok(!sourceMatrix.includes("nobody | database | TEMPORARY"));
    assert.equal(sourceOwners["schema public"], "pg_database_owner");
  });

  describe("without migrateRoles, the roles but ghost created on the target beforehand", () => {
    const present = ["app_owner", "app_reader", "app_writer", "nobody"];
    let spec: MigrationSpec;
    let result: CloneResult;
    const events: string[] = [];

    before(async () => {
      for (const role of present) await target.query(`CREATE ROLE ${role} NOLOGIN`);
      spec = specOf(source, target, { databases: [DB] }, "privileges-test");
      await prepareTargetDatabase(spec, DB);
      result = await cloneDatabase({ spec, database: DB, progress: quietProgress(events) });
    });
    after(async () => {
      await dropTargetDatabase(spec, DB);
    });

    it("names the missing role and what it owns and was granted, as a validation Warning", async () => {
      const probe = { ...spec, databases: [DB], overwriteDbsInTarget: true };
      const report = await validateMigration(probe);
      const check = report.databaseLevel[0].summary.find((c) => c.type === "Privileges");
      assert.ok(check, JSON.stringify(report.databaseLevel[0].summary));
      assert.equal(check.state, "Warning");
      const text = check.messages.join("\n");
      assert.match(
        text,
        /"ghost" \(owns table public\.haunted; is granted .*SELECT on table app\.accounts/,
      );
      assert.match(text, /USAGE on schema app/);
      assert.doesNotMatch(text, /app_reader|app_writer|nobody/);
    });

    it("gives every role that exists on both sides exactly the source's privileges", async () => {
      const roles = [...present, "postgres"];
      assert.deepEqual(await privilegeMatrix(target, roles), forRoles(sourceMatrix, roles));
    });

    it("keeps owners that exist, the public schema's included; only ghost's table falls back", async () => {
      const expected = { ...sourceOwners, "relation public.haunted": "postgres" };
      assert.deepEqual(await owners(target), expected);
    });

    it("restores default privileges, except the grant to the missing role", async () => {
      // Without ghost's grant, app_owner's global default for tables is the built-in one again,
      // which PostgreSQL stores as no entry at all.
      const expected = (await defaultAcls(source))
        .map((l) => l.replace(/,?ghost=r\/app_owner/, ""))
        .filter((l) => l !== "app_owner | * | r | app_owner=arwdDxt/app_owner");
      assert.deepEqual(await defaultAcls(target), expected);
    });

    it("says which objects fell back to the target user and which grants were left out", () => {
      const text = result.warnings.join("\n");
      assert.match(
        text,
        /roles missing on the target belong to the target user "postgres": "ghost" \(table public\.haunted\)/,
      );
      assert.match(text, /not restored: "ghost" \(.*SELECT on table app\.accounts.*\)/);
      assert.ok(events.some((e) => /owners and privileges restored/.test(e)));
    });

    it("copied the data as well", async () => {
      const [row] = await target.query<{ n: string }>(
        "SELECT count(*) AS n FROM app.accounts",
        [],
        DB,
      );
      assert.equal(row.n, "2");
    });
  });

  describe("with migrateRoles, which creates ghost", () => {
    let spec: MigrationSpec;
    let result: CloneResult;

    before(async () => {
      spec = specOf(source, target, { databases: [DB], migrateRoles: true }, "privileges-test");
      const roles = await migrateRoles(spec);
      assert.deepEqual(roles.created, ["ghost"]);
      await prepareTargetDatabase(spec, DB);
      result = await cloneDatabase({ spec, database: DB, progress: quietProgress() });
    });
    after(async () => {
      await dropTargetDatabase(spec, DB);
    });

    it("gives every role exactly the source's privileges, ghost's included", async () => {
      const roles = [...ROLES, "postgres"];
      assert.deepEqual(await privilegeMatrix(target, roles), forRoles(sourceMatrix, roles));
    });

    it("reproduces every ACL item by item, grantors of WITH GRANT OPTION chains included", async () => {
      const onSource = await acls(source);
      assert.match(onSource["relation app.accounts"], /app_reader=a\/app_writer/);
      assert.deepEqual(await acls(target), onSource);
    });

    it("keeps every owner and every default privilege", async () => {
      assert.deepEqual(await owners(target), sourceOwners);
      assert.deepEqual(await defaultAcls(target), await defaultAcls(source));
      assert.deepEqual(
        result.warnings.filter((w) => /privilege|owner/i.test(w)),
        [],
      );
    });

    it("validation finds every role on the target", async () => {
      const report = await validateMigration({ ...spec, overwriteDbsInTarget: true });
      const check = report.databaseLevel[0].summary.find((c) => c.type === "Privileges");
      assert.equal(check?.state, "Succeeded", JSON.stringify(check));
    });
  });

  describe("with a target user that is not a superuser (CREATEDB, CREATEROLE)", () => {
    let spec: MigrationSpec;
    let result: CloneResult;

    before(async () => {
      await target.query(
        "CREATE ROLE migrator LOGIN CREATEDB CREATEROLE PASSWORD 'migrator-secret'",
      );
      const base = specOf(source, target, { databases: [DB] }, "privileges-test");
      spec = {
        ...base,
        target: { ...base.target, username: "migrator", password: "migrator-secret" },
      };
      await prepareTargetDatabase(spec, DB);
      result = await cloneDatabase({ spec, database: DB, progress: quietProgress() });
    });
    after(async () => {
      await dropTargetDatabase(spec, DB);
    });

    it("still never widens what PUBLIC and the other roles may do", async () => {
      // app_owner's and ghost's own privileges come from ownership, which migrator may not give away.
      const roles = ["app_reader", "app_writer", "nobody"];
      assert.deepEqual(await privilegeMatrix(target, roles), forRoles(sourceMatrix, roles));
    });

    it("reports the objects it had to keep instead of failing", () => {
      const text = result.warnings.join("\n");
      assert.match(
        text,
        /"migrator" may not act for these roles .*"app_owner" \(.*table app\.accounts.*default privileges of role app_owner on tables in schema app/,
      );
      assert.doesNotMatch(text, /could not apply "(GRANT|REVOKE|ALTER DEFAULT)/);
    });
  });

  it("fails validation when a row-level security policy names a role missing on the target", async () => {
    await source.query("CREATE ROLE phantom NOLOGIN");
    await source.query("CREATE DATABASE guarded");
    await source.query(
      `CREATE TABLE secrets (id int PRIMARY KEY); ALTER TABLE secrets ENABLE ROW LEVEL SECURITY;
       CREATE POLICY own_rows ON secrets TO phantom USING (true)`,
      [],
      "guarded",
    );
    const report = await validateMigration(
      specOf(source, target, { databases: ["guarded"] }, "privileges-test"),
    );
    const check = report.databaseLevel[0].summary.find((c) => c.type === "Privileges");
    assert.equal(check?.state, "Failed", JSON.stringify(check));
    assert.match(check.messages[0], /policy own_rows on table public\.secrets \(role "phantom"\)/);
  });
});

describe("privileges never widened (13 → 16): the public schema keeps the source's semantics", function () {
  let source: PgServer;
  let target: PgServer;

  before(async () => {
    [source, target] = await Promise.all([
      startPostgres({ version: 13 }),
      startPostgres({ version: 16 }),
    ]);
    for (const server of [source, target]) {
      await server.query("CREATE ROLE app_reader NOLOGIN");
      await server.query("CREATE ROLE nobody NOLOGIN");
    }
    await source.query(`CREATE DATABASE ${DB}`);
    await source.query(
      `CREATE TABLE public.t (id int PRIMARY KEY, v text);
       GRANT SELECT (v) ON public.t TO app_reader;
       CREATE FUNCTION public.hidden() RETURNS int LANGUAGE sql AS 'SELECT 1';
       REVOKE EXECUTE ON FUNCTION public.hidden() FROM PUBLIC;
       GRANT EXECUTE ON FUNCTION public.hidden() TO app_reader WITH GRANT OPTION;`,
      [],
      DB,
    );
    const spec = specOf(source, target, { databases: [DB] }, "privileges-test");
    await prepareTargetDatabase(spec, DB);
    await cloneDatabase({ spec, database: DB, progress: quietProgress() });
  });
  after(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  it("gives every role the source's privileges, CREATE on public for PUBLIC included", async () => {
    const roles = ["app_reader", "nobody", "postgres"];
    const before = await privilegeMatrix(source, roles);
    assert.ok(before.includes("nobody | schema public | CREATE"), "PostgreSQL 13 semantics");
    assert.deepEqual(await privilegeMatrix(target, roles), before);
  });

  it("keeps the public schema's owner from the source", async () => {
    assert.deepEqual(await owners(target), await owners(source));
  });
});
