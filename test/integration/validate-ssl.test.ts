// Validation against a server with TLS: sslMode and sslRootCert decide whether the connection
// check passes, and certificate problems come back as advice, not stack traces.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type {
  CheckResult,
  Endpoint,
  MigrationOutputs,
  MigrationSpec,
  ValidationReport,
} from "../../provider/spec/types";
import { findDumpTools, validateMigration } from "../../provider/validate";
import { probeDumpConnection } from "../../provider/validate/dump-probe";
import { compareDatabases } from "../support/checksum";
import { runCli } from "../support/cli";
import { startPostgres, type PgServer } from "../support/postgres";

/** A self-signed certificate for 127.0.0.1 that the server (maybe another OS user) can read. */
function makeCertificate(dir: string, name: string): { cert: string; key: string } {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "2",
      "-keyout",
      key,
      "-out",
      cert,
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ],
    { stdio: "ignore" },
  );
  fs.chmodSync(key, 0o600);
  if (process.getuid?.() === 0) {
    const line = fs
      .readFileSync("/etc/passwd", "utf8")
      .split("\n")
      .find((l) => l.startsWith("postgres:"));
    if (line) {
      const [, , uid, gid] = line.split(":");
      fs.chownSync(key, Number(uid), Number(gid));
    }
  }
  return { cert, key };
}

describe("premigration validation over SSL", () => {
  let dir: string;
  let server: PgServer;
  let plain: PgServer;
  let serverCert: string;
  let otherCert: string;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-ssl-"));
    fs.chmodSync(dir, 0o755);
    const own = makeCertificate(dir, "server");
    serverCert = own.cert;
    otherCert = makeCertificate(dir, "other").cert;
    [server, plain] = await Promise.all([
      startPostgres({
        settings: { ssl: "on", ssl_cert_file: `'${own.cert}'`, ssl_key_file: `'${own.key}'` },
      }),
      startPostgres(),
    ]);
    await server.query("CREATE DATABASE app");
  });
  after(async () => {
    await Promise.all([server?.stop(), plain?.stop()]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  function spec(source: Partial<Endpoint>): MigrationSpec {
    const endpoint = (s: PgServer): Endpoint => ({
      host: s.host,
      port: s.port,
      username: s.user,
      password: s.password,
      sslMode: "prefer",
    });
    return {
      migrationName: "validate-ssl",
      source: { ...endpoint(server), ...source },
      target: endpoint(plain),
      databases: ["app"],
      mode: "Offline",
      option: "Validate",
      overwriteDbsInTarget: false,
      cutover: false,
      parallelism: { tables: 2, indexes: 2 },
      migrateRoles: false,
      verify: "counts",
      controlDatabase: "postgres",
    };
  }

  async function sourceConnectivity(source: Partial<Endpoint>): Promise<CheckResult> {
    const report: ValidationReport = await validateMigration(spec(source));
    assert.ok(!JSON.stringify(report).includes(server.password));
    const check = report.serverLevel.find((c) => c.type === "SourceConnectivity");
    assert.ok(check);
    return check;
  }

  it("connects with SSL on for prefer and require", async () => {
    for (const sslMode of ["prefer", "require"] as const) {
      const check = await sourceConnectivity({ sslMode });
      assert.equal(check.state, "Succeeded", check.messages.join("\n"));
      assert.match(check.messages[0], /SSL on/);
    }
  });

  it("verifies the server against sslRootCert", async () => {
    const check = await sourceConnectivity({ sslMode: "verify-full", sslRootCert: serverCert });
    assert.equal(check.state, "Succeeded", check.messages.join("\n"));
    const ca = await sourceConnectivity({ sslMode: "verify-ca", sslRootCert: serverCert });
    assert.equal(ca.state, "Succeeded", ca.messages.join("\n"));
  });

  it("checks the host name for verify-full only", async () => {
    const full = await sourceConnectivity({
      host: "localhost",
      sslMode: "verify-full",
      sslRootCert: serverCert,
    });
    assert.equal(full.state, "Failed");
    // The CA is right; the name is not: the advice is about the name.
    assert.match(
      full.messages[0],
      /SSL certificate of localhost:\d+ does not name host "localhost"/,
    );
    assert.match(full.messages[0], /subject alternative names/);
    assert.doesNotMatch(full.messages[0], /sslRootCert/);
    const ca = await sourceConnectivity({
      host: "localhost",
      sslMode: "verify-ca",
      sslRootCert: serverCert,
    });
    assert.equal(ca.state, "Succeeded", ca.messages.join("\n"));
  });

  it("fails a certificate that the root certificate did not sign", async () => {
    const check = await sourceConnectivity({ sslMode: "verify-ca", sslRootCert: otherCert });
    assert.equal(check.state, "Failed");
    assert.match(check.messages[0], /SSL certificate of 127\.0\.0\.1:\d+ could not be verified/);
    assert.match(
      check.messages[0],
      /sslRootCert ".*other\.crt" does not hold the CA that signed it/,
    );
  });

  it("fails a root certificate file that does not exist", async () => {
    const missing = path.join(dir, "nowhere.crt");
    const check = await sourceConnectivity({ sslMode: "verify-full", sslRootCert: missing });
    assert.equal(check.state, "Failed");
    assert.ok(
      check.messages[0].startsWith(`sslRootCert "${missing}" could not be read`),
      check.messages[0],
    );
  });

  describe("pg_dump trusts what our own connections trust", () => {
    before(async () => {
      await server.query(
        `CREATE TABLE IF NOT EXISTS ledger (id int PRIMARY KEY, memo text NOT NULL);
         INSERT INTO ledger SELECT i, 'memo ' || i FROM generate_series(1, 250) i
         ON CONFLICT DO NOTHING`,
        [],
        "app",
      );
    });

    /** `pgmigrate create --wait --json` of an offline migration whose source is the TLS server. */
    async function migrate(name: string, extraCa: string): Promise<MigrationOutputs> {
      const properties = path.join(dir, `${name}.json`);
      fs.writeFileSync(
        properties,
        JSON.stringify({
          properties: {
            SourceDBServerResourceId: `${server.host}:${server.port}@${server.user}`,
            DBsToMigrate: ["app"],
            OverwriteDBsInTarget: "true",
            sslMode: "verify-full",
          },
        }),
        { mode: 0o600 },
      );
      const result = await runCli(
        [
          "create",
          "--server",
          `postgresql://${plain.user}@${plain.host}:${plain.port}/postgres?sslmode=disable`,
          "--migration-name",
          name,
          "--properties",
          properties,
          "--wait",
          "--json",
        ],
        {
          PGMIGRATE_SOURCE_PASSWORD: server.password,
          PGMIGRATE_TARGET_PASSWORD: plain.password,
          NODE_EXTRA_CA_CERTS: extraCa,
          XDG_STATE_HOME: path.join(dir, "state"),
        },
      );
      assert.ok(result.stdout.trim().startsWith("{"), result.stderr + result.stdout);
      return JSON.parse(result.stdout) as MigrationOutputs;
    }

    it("verify-full without sslRootCert: validation and the copy through pg_dump use Node's CA bundle (NODE_EXTRA_CA_CERTS)", async () => {
      const o = await migrate("ssl-bundle", serverCert);
      assert.equal(o.state, "Succeeded", o.error ?? JSON.stringify(o.validation));
      const tools = o.validation?.serverLevel.find((c) => c.type === "DumpTools");
      assert.equal(tools?.state, "Succeeded");
      const comparison = await compareDatabases(server, "app", plain, "app");
      assert.deepEqual(comparison.differences, []);
      const [{ n }] = await plain.query<{ n: string }>(
        "SELECT count(*) AS n FROM ledger",
        [],
        "app",
      );
      assert.equal(Number(n), 250);
    });

    it("a CA that did not sign the server's certificate fails validation, before any copy", async () => {
      const o = await migrate("ssl-wrong-ca", otherCert);
      assert.equal(o.state, "ValidationFailed");
      const conn = o.validation?.serverLevel.find((c) => c.type === "SourceConnectivity");
      assert.equal(conn?.state, "Failed");
      assert.match(conn?.messages[0] ?? "", /could not be verified.*set sslRootCert to the CA/);
      assert.deepEqual(
        Object.values(o.dbDetails).map((d) => d.migrationState),
        ["ValidationFailed"],
      );
    });

    it("validation's pg_dump fails a certificate libpq cannot verify, saying what to do", async () => {
      const tools = findDumpTools(0);
      assert.ok(tools);
      // This process started without NODE_EXTRA_CA_CERTS: Node's bundle lacks the self-signed CA.
      const endpoint: Endpoint = { ...spec({}).source, sslMode: "verify-full" };
      const problem = await probeDumpConnection(tools, endpoint, "app");
      assert.match(
        problem ?? "",
        /^pg_dump \(libpq\) could not connect to database "app" on 127\.0\.0\.1:\d+ with sslMode "verify-full" as the copy will: .*certificate verify failed.*set sslRootCert to the CA/,
      );
      assert.ok(!(problem ?? "").includes(server.password));
      const ok = await probeDumpConnection(tools, { ...endpoint, sslRootCert: serverCert }, "app");
      assert.equal(ok, undefined);
    });

    it("require means no verification for pg_dump too, whatever ~/.postgresql/root.crt holds", async () => {
      const home = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-home-"));
      fs.mkdirSync(path.join(home, ".postgresql"));
      fs.copyFileSync(otherCert, path.join(home, ".postgresql", "root.crt"));
      const saved = process.env.HOME;
      process.env.HOME = home;
      try {
        const report = await validateMigration(spec({ sslMode: "require" }));
        const tools = report.serverLevel.find((c) => c.type === "DumpTools");
        assert.equal(tools?.state, "Succeeded", tools?.messages.join("\n"));
      } finally {
        process.env.HOME = saved;
        fs.rmSync(home, { recursive: true, force: true });
      }
    });
  });
});
