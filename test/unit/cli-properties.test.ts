// The properties file: the reference service's JSON and our own keys, mapped to resolveSpec().
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { resolveSpec } from "../../provider/spec/inputs";
import { buildCreateInput } from "../../provider/cli/create-input";
import { findJsonSyntaxError } from "../../provider/cli/json-syntax";
import {
  mapProperties,
  parsePropertiesText,
  readPropertiesFile,
  type ParsedProperties,
} from "../../provider/cli/properties";
import { parseSourceResourceId } from "../../provider/cli/reference-keys";
import { parseServerUrl } from "../../provider/cli/server";
import { UsageError } from "../../provider/cli/usage";

const REFERENCE = {
  properties: {
    SourceDBServerResourceId: "10.1.0.4:5432@postgres",
    SecretParameters: {
      AdminCredentials: {
        SourceServerPassword: "src-Secret1",
        TargetServerPassword: "tgt-Secret2",
      },
    },
    targetServerUserName: "azureadmin",
    DBsToMigrate: ["orders", "ticketdb"],
    OverwriteDBsInTarget: "true",
    sourceType: "AWS_AURORA",
    sslMode: "Prefer",
    MigrationMode: "Online",
    SetupLogicalReplicationOnSourceDbIfNeeded: "true",
    Cutover: false,
  },
};

function ok(json: unknown): ParsedProperties {
  const result = mapProperties(json);
  assert.ok(result.ok, result.ok ? "" : result.problems.join("\n"));
  return result.properties;
}

function problems(json: unknown): string {
  const result = mapProperties(json);
  assert.ok(!result.ok, "expected the properties to be rejected");
  return result.problems.join("\n");
}

describe("pgmigrate properties file", () => {
  it("maps the reference service's JSON to resource inputs", () => {
    const props = ok(REFERENCE);
    assert.deepEqual(props.input, {
      source: {
        host: "10.1.0.4",
        port: 5432,
        username: "postgres",
        password: "src-Secret1",
        serverType: "AWS_AURORA",
        sslMode: "prefer",
      },
      target: { password: "tgt-Secret2", username: "azureadmin" },
      databases: ["orders", "ticketdb"],
      overwriteDbsInTarget: true,
      mode: "Online",
      cutover: false,
    });
    assert.equal(props.origins.get("databases"), "DBsToMigrate");
    assert.equal(props.notes.length, 1);
    assert.match(props.notes[0], /SetupLogicalReplicationOnSourceDbIfNeeded/);
  });

  it("accepts the file without the properties wrapper, in any key case", () => {
    const props = ok({
      sourcedbserverresourceid: "db.example.com@admin",
      SECRETPARAMETERS: { adminCredentials: { sourceServerPassword: "x" } },
      dbstomigrate: ["a"],
      overwritedbsintarget: "TRUE",
      MIGRATIONMODE: "offline",
      migrationoption: "validateandmigrate",
      SslMode: "VerifyFull",
      triggerCutover: "False",
    });
    assert.deepEqual(props.input.source, {
      host: "db.example.com",
      username: "admin",
      password: "x",
      sslMode: "verify-full",
    });
    assert.equal(props.input.overwriteDbsInTarget, true);
    assert.equal(props.input.mode, "Offline");
    assert.equal(props.input.option, "ValidateAndMigrate");
    assert.equal(props.input.cutover, false);
  });

  it("normalizes every sslMode spelling", () => {
    for (const [given, expected] of [
      ["VerifyFull", "verify-full"],
      ["verify-full", "verify-full"],
      ["VERIFY_CA", "verify-ca"],
      ["VerifyCA", "verify-ca"],
      ["Require", "require"],
      ["disable", "disable"],
    ]) {
      const props = ok({ sslMode: given });
      assert.equal((props.input.source as { sslMode: string }).sslMode, expected, given);
    }
  });

  it("accepts our own input names, nested objects included", () => {
    const props = ok({
      source: {
        Host: "src",
        port: "6432",
        username: "u",
        SSLMODE: "require",
        serverType: "onpremises",
      },
      databases: ["orders"],
      parallelism: { tables: 2, indexes: 1 },
      migrateRoles: "true",
      fixReplicaIdentity: "full",
      verify: "Checksum",
      controlDatabase: "ops",
      runtime: { kind: "External", logDir: "/var/log/pgmigrate" },
    });
    assert.deepEqual(props.input, {
      source: {
        host: "src",
        port: "6432",
        username: "u",
        sslMode: "require",
        serverType: "OnPremises",
      },
      databases: ["orders"],
      parallelism: { tables: 2, indexes: 1 },
      migrateRoles: true,
      fixReplicaIdentity: "full",
      verify: "checksum",
      controlDatabase: "ops",
      runtime: { kind: "external", logDir: "/var/log/pgmigrate" },
    });
  });

  it("names every unknown key, nested ones with their path", () => {
    const text = problems({
      properties: {
        DBsToMigrate: ["a"],
        Colour: "blue",
        source: { host: "h", tls: true },
        SecretParameters: { AdminCredentials: { SourcePasswd: "p" }, Extra: 1 },
      },
    });
    assert.match(text, /unknown properties/);
    for (const key of [
      "properties.Colour",
      "properties.source.tls",
      "properties.SecretParameters.AdminCredentials.SourcePasswd",
      "properties.SecretParameters.Extra",
    ]) {
      assert.ok(text.includes(`"${key}"`), `${key} is named in: ${text}`);
    }
  });

  it("rejects booleans that are not true or false", () => {
    assert.match(
      problems({ OverwriteDBsInTarget: "yes" }),
      /OverwriteDBsInTarget must be true or false/,
    );
  });

  it("names both keys when two of them disagree", () => {
    assert.match(
      problems({ DBsToMigrate: ["a"], databases: ["b"] }),
      /DBsToMigrate and databases disagree/,
    );
    assert.match(problems({ TriggerCutover: true, cutover: false }), /disagree/);
    // Agreeing duplicates are fine.
    assert.deepEqual(ok({ DBsToMigrate: ["a"], databases: ["a"] }).input.databases, ["a"]);
  });

  it("accepts reference keys without effect, and refuses the ones it cannot honour", () => {
    const accepted = ok({
      StartDataMigration: "true",
      Cancel: "false",
      DbsToCancelMigrationOn: [],
      SetupLogicalReplicationOnSourceDbIfNeeded: false,
      migrationId: "00000000-0000-0000-0000-000000000000",
      currentStatus: { state: "InProgress" },
      TargetDbServerResourceId: "/subscriptions/x/resourceGroups/y",
    });
    assert.deepEqual(accepted.input, {});
    assert.match(problems({ StartDataMigration: false }), /deferred start/);
    assert.match(problems({ Cancel: true }), /pgmigrate update --cancel/);
    assert.match(
      problems({ MigrationWindowStartTimeInUtc: "2030-01-01T00:00:00Z" }),
      /not supported/,
    );
    assert.match(
      problems({ MigrationInstanceResourceId: "/subscriptions/x" }),
      /pgmigrate runtime/,
    );
  });

  it("treats DbsToTriggerCutoverOn listing every database as a cutover", () => {
    const all = ok({ DBsToMigrate: ["a", "b"], DbsToTriggerCutoverOn: ["b", "a"] });
    assert.equal(all.input.cutover, true);
    assert.match(
      problems({ DBsToMigrate: ["a", "b"], DbsToTriggerCutoverOn: ["a"] }),
      /all databases/,
    );
  });

  it("uses the FQDN when the source is given as an Azure resource ID", () => {
    const props = ok({
      SourceDBServerResourceId:
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.DBforPostgreSQL/servers/old",
      SourceDbServerFullyQualifiedDomainName: "old.postgres.database.azure.com",
      SecretParameters: { SourceServerUsername: "admin" },
    });
    assert.deepEqual(props.input.source, {
      host: "old.postgres.database.azure.com",
      username: "admin",
    });
    assert.match(
      problems({ SourceDBServerResourceId: "/subscriptions/s/resourceGroups/g" }),
      /Azure resource ID/,
    );
    assert.match(problems({ SourceDBServerResourceId: "no-user-here" }), /host:port@user/);
  });

  it("parses host:port@user, IPv6 in brackets, port optional", () => {
    assert.deepEqual(parseSourceResourceId("10.0.0.1:6432@me"), {
      host: "10.0.0.1",
      port: 6432,
      username: "me",
    });
    assert.deepEqual(parseSourceResourceId("[::1]:5432@postgres"), {
      host: "::1",
      port: 5432,
      username: "postgres",
    });
    assert.deepEqual(parseSourceResourceId("aurora.example@u"), {
      host: "aurora.example",
      port: undefined,
      username: "u",
    });
    assert.equal(parseSourceResourceId("host:5432"), undefined);
  });

  it("reports malformed JSON by file, line and column without quoting the file", () => {
    const text =
      '{\n  "SecretParameters": {"AdminCredentials": {"SourceServerPassword": "hunter2"}},\n  "DBsToMigrate": ["a",]\n}';
    const result = parsePropertiesText(text, "props.json");
    assert.ok(!result.ok);
    assert.equal(result.problems.length, 1);
    assert.match(
      result.problems[0],
      /^props\.json:3:24: malformed JSON at position \d+: expected a value, found "\]"/,
    );
    assert.ok(!result.problems[0].includes("hunter2"));
  });

  it("locates syntax errors precisely", () => {
    assert.equal(findJsonSyntaxError('{"a": [1, 2, {"b": null}], "c": "d\\u00e9"}'), undefined);
    assert.deepEqual(findJsonSyntaxError('{"a" 1}'), {
      position: 5,
      line: 1,
      column: 6,
      reason: 'expected ":" after the property name, found "1"',
    });
    assert.match(findJsonSyntaxError('{"a": 1')!.reason, /end of file/);
    assert.match(findJsonSyntaxError("{'a': 1}")!.reason, /property name in double quotes/);
    assert.match(findJsonSyntaxError('{"a": 1} x')!.reason, /expected end of file/);
    assert.match(findJsonSyntaxError('"abc')!.reason, /closing quote/);
  });

  it("reads files, and says when one cannot be read", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-props-"));
    try {
      const file = path.join(dir, "p.json");
      fs.writeFileSync(file, "\uFEFF" + JSON.stringify(REFERENCE));
      assert.ok(readPropertiesFile(file).ok);
      const missing = readPropertiesFile(path.join(dir, "nope.json"));
      assert.ok(!missing.ok);
      assert.match(missing.problems[0], /cannot read properties file .*nope\.json: no such file$/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("pgmigrate create inputs", () => {
  const env = { PGPASSFILE: "/nonexistent/pgpass" };

  it("takes the target from --server and resolves a complete spec", () => {
    const server = parseServerUrl(
      "postgresql://azureadmin@target.example:6543/ops?sslmode=require",
      env,
    );
    const built = buildCreateInput(ok(REFERENCE), server, { migrationName: "orders-1" }, env);
    const resolved = resolveSpec(built.input, "orders-1");
    assert.ok(resolved.ok, resolved.ok ? "" : JSON.stringify(resolved.problems));
    const { spec } = resolved;
    assert.equal(spec.migrationName, "orders-1");
    assert.deepEqual(
      { ...spec.target },
      {
        host: "target.example",
        port: 6543,
        username: "azureadmin",
        password: "tgt-Secret2",
        sslMode: "require",
      },
    );
    assert.equal(spec.source.host, "10.1.0.4");
    assert.equal(spec.source.password, "src-Secret1");
    assert.equal(spec.mode, "Online");
    assert.equal(spec.overwriteDbsInTarget, true);
    assert.equal(spec.controlDatabase, "ops");
    assert.deepEqual([...built.secrets].sort(), ["src-Secret1", "tgt-Secret2"]);
  });

  it("prefers the URL's password, then the file's, then the environment's", () => {
    const noSecrets = ok({ SourceDBServerResourceId: "s@u", DBsToMigrate: ["a"] });
    const withEnv = {
      ...env,
      PGMIGRATE_SOURCE_PASSWORD: "from-env-src",
      PGMIGRATE_TARGET_PASSWORD: "from-env-tgt",
      PGPASSWORD: "pgpassword",
    };
    const viaEnv = buildCreateInput(
      noSecrets,
      parseServerUrl("postgresql://me@t/postgres", withEnv),
      { migrationName: "m" },
      withEnv,
    );
    assert.equal((viaEnv.input.source as { password: string }).password, "from-env-src");
    assert.equal((viaEnv.input.target as { password: string }).password, "from-env-tgt");
    const viaPgpassword = buildCreateInput(
      noSecrets,
      parseServerUrl("postgresql://me@t", { ...env, PGPASSWORD: "pgpassword" }),
      { migrationName: "m" },
      { ...env, PGPASSWORD: "pgpassword" },
    );
    assert.equal((viaPgpassword.input.target as { password: string }).password, "pgpassword");
    const viaUrl = buildCreateInput(
      ok(REFERENCE),
      parseServerUrl("postgresql://azureadmin:url-pw@t", withEnv),
      { migrationName: "m" },
      withEnv,
    );
    assert.equal((viaUrl.input.target as { password: string }).password, "url-pw");
  });

  it("lets flags and the file agree, and refuses when they do not", () => {
    const server = parseServerUrl("postgresql://azureadmin@t/postgres", env);
    const props = ok(REFERENCE);
    assert.throws(
      () =>
        buildCreateInput(
          props,
          parseServerUrl("postgresql://u@t", env),
          { migrationName: "m" },
          env,
        ),
      (err: Error) =>
        err instanceof UsageError &&
        /targetServerUserName disagrees with the user of --server/.test(err.message),
    );
    const same = buildCreateInput(
      props,
      server,
      { migrationName: "m", migrationMode: "online" },
      env,
    );
    assert.equal(same.input.mode, "Online");
    assert.throws(
      () => buildCreateInput(props, server, { migrationName: "m", migrationMode: "offline" }, env),
      (err: Error) =>
        err instanceof UsageError &&
        /--migration-mode and MigrationMode disagree/.test(err.message),
    );
    assert.throws(
      () => buildCreateInput(ok({ migrationName: "other" }), server, { migrationName: "m" }, env),
      (err: Error) =>
        err instanceof UsageError &&
        /--migration-name and migrationName disagree/.test(err.message),
    );
    assert.throws(
      () =>
        buildCreateInput(
          ok({ TargetDbServerFullyQualifiedDomainName: "elsewhere" }),
          server,
          { migrationName: "m" },
          env,
        ),
      (err: Error) => err instanceof UsageError && /another server than --server/.test(err.message),
    );
    assert.throws(
      () => buildCreateInput(ok({ controlDatabase: "ops" }), server, { migrationName: "m" }, env),
      (err: Error) => err instanceof UsageError && /controlDatabase disagrees/.test(err.message),
    );
  });

  it("takes --split-tables-larger-than in bytes or kB/MB/GB into parallelism", () => {
    const server = parseServerUrl("postgresql://azureadmin@t/postgres", env);
    const split = (value: string, file: Record<string, unknown> = {}): unknown =>
      buildCreateInput(ok(file), server, { migrationName: "m", splitTablesLargerThan: value }, env)
        .input.parallelism;
    assert.deepEqual(split("65536"), { splitTablesLargerThan: 65536 });
    assert.deepEqual(split("64kB"), { splitTablesLargerThan: 65536 });
    assert.deepEqual(split("2 GB"), { splitTablesLargerThan: 2 * 1024 ** 3 });
    assert.deepEqual(split("1mb", { parallelism: { tables: 8, splitTablesLargerThan: 1048576 } }), {
      tables: 8,
      splitTablesLargerThan: 1048576,
    });
    for (const bad of ["", "1.5GB", "-1", "ten", "3 PB"]) {
      assert.throws(
        () => split(bad),
        (err: Error) =>
          err instanceof UsageError &&
          /--split-tables-larger-than must be a size/.test(err.message),
        bad,
      );
    }
    assert.throws(
      () => split("1GB", { parallelism: { splitTablesLargerThan: 1 } }),
      (err: Error) =>
        err instanceof UsageError &&
        /--split-tables-larger-than and parallelism.splitTablesLargerThan disagree/.test(
          err.message,
        ),
    );
  });

  it("uses the file's target user and control database when the URL has none", () => {
    const server = parseServerUrl("postgresql://t", { ...env, PGUSER: "fallback" });
    const built = buildCreateInput(
      ok({ targetServerUserName: "azureadmin", controlDatabase: "ops" }),
      server,
      { migrationName: "m" },
      env,
    );
    assert.equal((built.input.target as { username: string }).username, "azureadmin");
    assert.equal(built.input.controlDatabase, "ops");
  });
});
