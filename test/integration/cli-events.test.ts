// What the migration could not keep as on the source is shown, not only logged: a warning event
// (here: a setting that is deliberately not copied to the target database) appears in
// `show --json` (warnings, events) and in the plain `show` output.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { MigrationOutputs } from "../../provider/spec/types";
import { runCli } from "../support/cli";
import { startPostgres, type PgServer } from "../support/postgres";

describe("pgmigrate show: warnings and recent events", function () {
  const name = `events-${randomBytes(3).toString("hex")}`;
  let source: PgServer;
  let target: PgServer;
  let dir: string;
  let server: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    [source, target] = await Promise.all([startPostgres(), startPostgres()]);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-events-"));
    await source.query("CREATE DATABASE frozen");
    await source.query(
      "CREATE TABLE public.t (id int PRIMARY KEY); INSERT INTO public.t VALUES (1), (2)",
      [],
      "frozen",
    );
    // How users stop writes before a cutover; the migration does not copy it to the target.
    await source.query("ALTER DATABASE frozen SET default_transaction_read_only = on");
    server = `postgresql://${target.user}@${target.host}:${target.port}/postgres?sslmode=disable`;
    env = {
      PGMIGRATE_TARGET_PASSWORD: target.password,
      PGMIGRATE_SOURCE_PASSWORD: source.password,
      PGPASSFILE: path.join(dir, "none"),
    };
  });

  after(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("lists the warning in --json and in the plain output", async () => {
    const props = path.join(dir, "props.json");
    fs.writeFileSync(
      props,
      JSON.stringify({
        properties: {
          SourceDBServerResourceId: `${source.host}:${source.port}@${source.user}`,
          DBsToMigrate: ["frozen"],
          sslMode: "Disable",
          runtime: { logDir: path.join(dir, "logs") },
        },
      }),
      { mode: 0o600 },
    );
    const created = await runCli(
      ["create", "--server", server, "--migration-name", name, "--properties", props, "--wait"],
      env,
    );
    assert.equal(created.code, 0, created.stderr);

    const json = await runCli(
      ["show", "--server", server, "--migration-name", name, "--json"],
      env,
    );
    assert.equal(json.code, 0, json.stderr);
    const outputs = JSON.parse(json.stdout) as MigrationOutputs;
    assert.equal(outputs.state, "Succeeded");
    const warning = outputs.warnings.find((w) => /default_transaction_read_only/.test(w.message));
    assert.ok(warning, JSON.stringify(outputs.warnings));
    assert.equal(warning.level, "warning");
    assert.equal(warning.database, "frozen");
    assert.ok(!Number.isNaN(Date.parse(warning.at)));
    assert.ok(
      outputs.events.some((e) => e.message === warning.message),
      "the warning is among the recent events",
    );
    assert.ok(outputs.events.length <= 20, "recent events are bounded");
    assert.ok(
      outputs.events.every((e, i, all) => i === 0 || Date.parse(all[i - 1].at) <= Date.parse(e.at)),
      "oldest first",
    );

    const plain = await runCli(["show", "--server", server, "--migration-name", name], env);
    assert.equal(plain.code, 0, plain.stderr);
    const section = plain.stdout.slice(plain.stdout.indexOf("Warnings:"));
    assert.ok(plain.stdout.includes("Warnings:"), plain.stdout);
    assert.match(section, /warning\s+frozen: .*default_transaction_read_only/);
    assert.ok(plain.stdout.includes("Recent events:"), plain.stdout);
    for (const secret of [source.password, target.password]) {
      assert.ok(!(json.stdout + plain.stdout).includes(secret), "no password printed");
    }
  });
});
