// --server URLs and the libpq password habits: URL, environment, ~/.pgpass (PGPASSFILE).
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { findPgpassPassword, lookupPgpass, parsePgpass } from "../../provider/pg/pgpass";
import { parseServerUrl, resolveTargetPassword, serverLabel } from "../../provider/cli/server";
import {
  describeFailure,
  EXIT_FAILED,
  EXIT_UNREACHABLE,
  EXIT_USAGE,
  UsageError,
} from "../../provider/cli/usage";
import { MigrationError } from "../../provider/pg/errors";

const NO_ENV = { PGPASSFILE: "/nonexistent/pgpass" };

describe("pgmigrate --server URL", () => {
  it("parses user, password, host, port, database and sslmode", () => {
    const s = parseServerUrl(
      "postgresql://admin%40corp:p%40ss%3Aword@db.example.com:6432/ops?sslmode=verify-full&sslrootcert=/ca.pem",
      NO_ENV,
    );
    assert.deepEqual(s, {
      host: "db.example.com",
      port: 6432,
      username: "admin@corp",
      password: "p@ss:word",
      sslMode: "verify-full",
      sslRootCert: "/ca.pem",
      sslModeGiven: true,
      controlDatabase: "ops",
      databaseGiven: true,
      usernameGiven: true,
    });
  });

  it("defaults like libpq: postgres database, port 5432, PGUSER, prefer", () => {
    const s = parseServerUrl("postgres://10.0.0.5", { ...NO_ENV, PGUSER: "ops" });
    assert.equal(s.host, "10.0.0.5");
    assert.equal(s.port, 5432);
    assert.equal(s.username, "ops");
    assert.equal(s.password, undefined);
    assert.equal(s.controlDatabase, "postgres");
    assert.equal(s.databaseGiven, false);
    assert.equal(s.sslMode, "prefer");
    assert.equal(s.sslModeGiven, false);
  });

  it("accepts IPv6 hosts and labels them in brackets", () => {
    const s = parseServerUrl("postgresql://u@[::1]:5433/postgres", NO_ENV);
    assert.equal(s.host, "::1");
    assert.equal(serverLabel(s), "[::1]:5433");
  });

  it("rejects what it cannot use with a usage error that never shows the password", () => {
    for (const [url, pattern] of [
      ["host=db user=me password=hunter2", /libpq URL like/],
      ["postgresql://me:hunter2@db:99999/x", /not a valid URL|port/],
      ["postgresql://me:hunter2@db/x?sslmode=allow", /sslmode "allow"/],
      ["postgresql://me:hunter2@a,b/x", /exactly one host/],
      ["postgresql://me:hunter2@db/x?options=-c", /unsupported URL parameter "options"/],
    ] as const) {
      assert.throws(
        () => parseServerUrl(url, NO_ENV),
        (err: Error) => {
          assert.ok(
            err instanceof MigrationError && err.code === "PGM_INPUT",
            `${url}: ${err.message}`,
          );
          assert.match(err.message, pattern);
          assert.ok(!err.message.includes("hunter2"));
          assert.equal(describeFailure(err, []).exitCode, EXIT_USAGE);
          return true;
        },
      );
    }
  });
});

describe("pgmigrate target password lookup", () => {
  let dir: string;
  let pgpass: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-pgpass-"));
    pgpass = path.join(dir, "pgpass");
    fs.writeFileSync(
      pgpass,
      [
        "# comment",
        "db.example.com:6432:ops:admin:first\\:match",
        "db.example.com:*:*:admin:second",
        "*:*:*:*:fallback\\\\pw",
        "broken line",
      ].join("\n"),
      { mode: 0o600 },
    );
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const key = { host: "db.example.com", port: 6432, database: "ops", username: "admin" };

  it("parses escapes, wildcards, and takes the first match", () => {
    const entries = parsePgpass(fs.readFileSync(pgpass, "utf8"));
    assert.equal(entries.length, 3);
    assert.equal(findPgpassPassword(entries, key), "first:match");
    assert.equal(findPgpassPassword(entries, { ...key, database: "other" }), "second");
    assert.equal(findPgpassPassword(entries, { ...key, username: "someone" }), "fallback\\pw");
    assert.equal(findPgpassPassword(parsePgpass("h:1:d:u:p"), { ...key, host: "x" }), undefined);
  });

  it("honours PGPASSFILE and ignores a file others can read", () => {
    assert.equal(lookupPgpass(key, { PGPASSFILE: pgpass }).password, "first:match");
    fs.chmodSync(pgpass, 0o644);
    const loose = lookupPgpass(key, { PGPASSFILE: pgpass });
    assert.equal(loose.password, undefined);
    assert.match(loose.warning ?? "", /group or world access/);
    assert.deepEqual(lookupPgpass(key, { PGPASSFILE: path.join(dir, "missing") }), {});
  });

  it("orders URL, properties, PGMIGRATE_TARGET_PASSWORD, PGPASSWORD, password file", () => {
    const env = { PGPASSFILE: pgpass };
    const server = parseServerUrl("postgresql://admin@db.example.com:6432/ops", env);
    assert.deepEqual(resolveTargetPassword(server, undefined, env), {
      password: "first:match",
      source: "pgpass",
      warnings: [],
    });
    assert.equal(
      resolveTargetPassword(server, undefined, { ...env, PGPASSWORD: "pg" }).password,
      "pg",
    );
    const both = { ...env, PGPASSWORD: "pg", PGMIGRATE_TARGET_PASSWORD: "tool" };
    assert.equal(resolveTargetPassword(server, undefined, both).password, "tool");
    assert.equal(resolveTargetPassword(server, "file", both).password, "file");
    const withUrl = parseServerUrl("postgresql://admin:url@db.example.com:6432/ops", env);
    assert.equal(resolveTargetPassword(withUrl, "file", both).password, "url");
    assert.equal(resolveTargetPassword(server, undefined, NO_ENV).source, "none");
  });
});

describe("pgmigrate error lines", () => {
  it("gives usage and input errors exit code 2, one line, no password", () => {
    const usage = describeFailure(new UsageError("bad\ninput hunter2"), ["hunter2"]);
    assert.deepEqual(usage, { exitCode: EXIT_USAGE, line: "pgmigrate: bad input ********" });
    const duplicate = describeFailure(
      new MigrationError("control", "migration orders exists with another spec", {
        code: "PGM_DUPLICATE_NAME",
      }),
      [],
    );
    assert.equal(duplicate.exitCode, EXIT_USAGE);
    assert.equal(duplicate.stack, undefined);
    const noPassword = describeFailure(
      new Error("SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string"),
      [],
    );
    assert.equal(noPassword.exitCode, EXIT_USAGE);
    assert.match(noPassword.line, /asks for a password and none was found: .*PGPASSWORD/);
    const auth = describeFailure(
      Object.assign(new Error("password authentication failed"), { code: "28P01" }),
      [],
    );
    assert.equal(auth.exitCode, EXIT_USAGE);
  });

  it("gives a server that cannot be reached exit code 3, in plain words", () => {
    const refused = describeFailure(
      Object.assign(new Error("connect ECONNREFUSED postgresql://u:pw@h"), {
        code: "ECONNREFUSED",
        address: "10.0.0.7",
        port: 5432,
      }),
      [],
    );
    assert.deepEqual(refused, {
      exitCode: EXIT_UNREACHABLE,
      line: "pgmigrate: cannot reach the server 10.0.0.7:5432: connection refused (is PostgreSQL running there, on that port?)",
    });
    // Wrapped by the engine (the cause keeps the network error).
    const dns = Object.assign(new Error("getaddrinfo ENOTFOUND db.invalid"), {
      code: "ENOTFOUND",
      hostname: "db.invalid",
    });
    const wrapped = describeFailure(MigrationError.wrap("control", dns, "reading"), []);
    assert.equal(wrapped.exitCode, EXIT_UNREACHABLE);
    assert.equal(wrapped.line, "pgmigrate: cannot reach the server db.invalid: no such host");
    const slow = describeFailure(new Error("Connection terminated due to connection timeout"), []);
    assert.equal(slow.exitCode, EXIT_UNREACHABLE);
    assert.match(slow.line, /no answer \(timed out\)/);
  });

  it("gives operational failures exit code 1 and keeps stacks for the unexpected only", () => {
    const lost = describeFailure(
      Object.assign(new Error("terminating connection due to administrator command"), {
        code: "57P01",
      }),
      [],
    );
    assert.equal(lost.exitCode, EXIT_FAILED);
    assert.equal(lost.stack, undefined);
    const bug = describeFailure(new TypeError("x is undefined"), []);
    assert.equal(bug.exitCode, EXIT_FAILED);
    assert.ok(bug.stack);
  });
});
