// `pgmigrate create --wait` finds the target password wherever create itself found it: the
// --server URL, the properties file (the reference service's SecretParameters), the environment
// or the password file. The wait used to look everywhere but the properties file, exiting 2
// while the migration it had just started ran on.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { MigrationOutputs } from "../../provider/spec/types";
import { compareDatabases } from "../support/checksum";
import { runCli as cli } from "../support/cli";
import { startPostgres, type PgServer } from "../support/postgres";

describe("pgmigrate create --wait: every target password source", function () {
  const suffix = randomBytes(3).toString("hex");
  let source: PgServer;
  let target: PgServer;
  let dir: string;

  before(async () => {
    [source, target] = await Promise.all([startPostgres(), startPostgres()]);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-cli-pw-"));
    await source.query("CREATE DATABASE notes");
    await source.query(
      `CREATE TABLE note (id int PRIMARY KEY, body text NOT NULL);
       INSERT INTO note SELECT i, 'note ' || i FROM generate_series(1, 300) i`,
      [],
      "notes",
    );
  });

  after(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const hostPort = (s: PgServer): string => `${s.host}:${s.port}`;

  /** Properties in the reference service's format; the target password only when given. */
  function properties(name: string, targetPassword?: string): string {
    const file = path.join(dir, `${name}.json`);
    const admin: Record<string, string> = { SourceServerPassword: source.password };
    if (targetPassword !== undefined) admin.TargetServerPassword = targetPassword;
    const props = {
      SourceDBServerResourceId: `${hostPort(source)}@${source.user}`,
      SecretParameters: { AdminCredentials: admin },
      DBsToMigrate: ["notes"],
      OverwriteDBsInTarget: "true",
      sslMode: "Disable",
      runtime: { logDir: path.join(dir, "logs") },
    };
    fs.writeFileSync(file, JSON.stringify({ properties: props }), { mode: 0o600 });
    return file;
  }

  const cases: {
    readonly what: string;
    readonly url: (name: string) => string;
    readonly inFile: boolean;
    readonly env: () => NodeJS.ProcessEnv;
  }[] = [
    {
      what: "the --server URL",
      url: () =>
        `postgresql://${target.user}:${encodeURIComponent(target.password)}@${hostPort(target)}/postgres?sslmode=disable`,
      inFile: false,
      env: () => ({}),
    },
    {
      what: "the properties file (SecretParameters.AdminCredentials.TargetServerPassword)",
      url: () => `postgresql://${target.user}@${hostPort(target)}/postgres?sslmode=disable`,
      inFile: true,
      env: () => ({}),
    },
    {
      what: "PGMIGRATE_TARGET_PASSWORD",
      url: () => `postgresql://${target.user}@${hostPort(target)}/postgres?sslmode=disable`,
      inFile: false,
      env: () => ({ PGMIGRATE_TARGET_PASSWORD: target.password }),
    },
    {
      what: "PGPASSWORD",
      url: () => `postgresql://${target.user}@${hostPort(target)}/postgres?sslmode=disable`,
      inFile: false,
      env: () => ({ PGPASSWORD: target.password }),
    },
    {
      what: "the password file",
      url: () => `postgresql://${target.user}@${hostPort(target)}/postgres?sslmode=disable`,
      inFile: false,
      env: () => {
        const pgpass = path.join(dir, "pgpass");
        fs.writeFileSync(
          pgpass,
          `${target.host}:${target.port}:*:${target.user}:${target.password}\n`,
          { mode: 0o600 },
        );
        return { PGPASSFILE: pgpass };
      },
    },
  ];

  cases.forEach((c, i) => {
    it(`finds it in ${c.what}`, async () => {
      const name = `pw-${i}-${suffix}`;
      const file = properties(name, c.inFile ? target.password : undefined);
      const result = await cli(
        [
          "create",
          "--server",
          c.url(name),
          "--migration-name",
          name,
          "--properties",
          file,
          "--wait",
          "--json",
        ],
        { PGPASSFILE: path.join(dir, "none"), ...c.env() },
      );
      assert.equal(result.code, 0, result.stderr);
      const outputs = JSON.parse(result.stdout) as MigrationOutputs;
      assert.equal(outputs.state, "Succeeded", JSON.stringify(outputs.error));
      assert.ok(!(result.stdout + result.stderr).includes(target.password), "no password printed");
      // From the second case on, the previous case's copy is in the way: said before it is dropped.
      const overwrite =
        /^pgmigrate: warning: overwriteDbsInTarget: dropping the target database notes on \S+ and recreating it from the source$/m;
      if (i === 0) assert.doesNotMatch(result.stderr, overwrite);
      else assert.match(result.stderr, overwrite);
      const comparison = await compareDatabases(source, "notes", target, "notes");
      assert.deepEqual(comparison.differences, []);
      const slots = await source.query("SELECT slot_name FROM pg_replication_slots");
      assert.deepEqual(slots, []);
    });
  });
});
