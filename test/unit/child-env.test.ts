// The environments and files of what we start, without servers: the allow-list of a child's
// environment, the worker's own, the log location's checks and names, and libpq's root certificate.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { formatShow } from "../../provider/cli/format";
import { childEnv } from "../../provider/pg/child-env";
import { libpqRootCert, nodeCaBundle } from "../../provider/pg/trust";
import { defaultLogDir, ensurePrivateDir, logFileName } from "../../provider/runtime/log-file";
import { trustOptions, workerEnv } from "../../provider/runtime/spawn";
import type { Endpoint, MigrationOutputs, MigrationSpec } from "../../provider/spec/types";

const spec = (host: string, port: number, controlDatabase = "postgres"): MigrationSpec =>
  ({
    migrationName: "orders",
    source: { host: "src", port: 5432, username: "u", password: "src-pw", sslMode: "disable" },
    target: { host, port, username: "t", password: "tgt-pw", sslMode: "disable" },
    controlDatabase,
  }) as MigrationSpec;

describe("child environments, log files and root certificates", () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgmigrate-unit-child-"));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("passes only paths, locale, time zone and CA settings, plus what is added", () => {
    const env = childEnv(
      { PGPASSWORD: "x", PGHOST: undefined },
      {
        PATH: "/bin",
        HOME: "/home/u",
        LC_ALL: "C.UTF-8",
        TZ: "UTC",
        NODE_EXTRA_CA_CERTS: "/ca.pem",
        FOO_SECRET: "s",
        PGSERVICE: "other",
        PGPASSWORD: "caller's",
        AWS_SECRET_ACCESS_KEY: "k",
      },
    );
    assert.deepEqual(env, {
      PATH: "/bin",
      HOME: "/home/u",
      LC_ALL: "C.UTF-8",
      TZ: "UTC",
      NODE_EXTRA_CA_CERTS: "/ca.pem",
      PGPASSWORD: "x",
    });
  });

  it("gives the worker its two passwords and nothing of the caller's", () => {
    const saved = process.env.FOO_SECRET;
    process.env.FOO_SECRET = "leak";
    try {
      const env = workerEnv(spec("db1", 5432));
      assert.equal(env.PGMIGRATE_SOURCE_PASSWORD, "src-pw");
      assert.equal(env.PGMIGRATE_TARGET_PASSWORD, "tgt-pw");
      assert.equal(env.FOO_SECRET, undefined);
    } finally {
      if (saved === undefined) delete process.env.FOO_SECRET;
      else process.env.FOO_SECRET = saved;
    }
  });

  it("keeps of NODE_OPTIONS only what chooses the CA store", () => {
    assert.equal(
      trustOptions("--require /tmp/hook.js --use-openssl-ca --max-old-space-size=512"),
      "--use-openssl-ca",
    );
    assert.equal(trustOptions("--inspect"), undefined);
    assert.equal(trustOptions(undefined), undefined);
  });

  it("names log files so that two target servers never share one", () => {
    const names = new Set([
      logFileName(spec("db1", 5432)),
      logFileName(spec("db2", 5432)),
      logFileName(spec("db1", 5433)),
      logFileName(spec("db1", 5432, "ctl")),
    ]);
    assert.equal(names.size, 4);
    for (const name of names) assert.match(name, /^orders-[0-9a-f]{10}\.log$/);
  });

  it("places logs in the XDG state dir, else under the home directory", () => {
    assert.equal(defaultLogDir({ XDG_STATE_HOME: "/x/state" }), "/x/state/pgmigrate");
    assert.equal(
      defaultLogDir({ HOME: os.homedir() }),
      path.join(os.homedir(), ".local", "state", "pgmigrate"),
    );
  });

  it("creates the log directory 0700 and refuses a symlink or one open to others", () => {
    const fresh = path.join(dir, "a", "pgmigrate");
    ensurePrivateDir(fresh, false);
    assert.equal(fs.statSync(fresh).mode & 0o777, 0o700);
    ensurePrivateDir(fresh, false); // twice is fine

    const open = path.join(dir, "open");
    fs.mkdirSync(open);
    fs.chmodSync(open, 0o755);
    assert.throws(() => ensurePrivateDir(open, false), /open to other users \(mode 755\)/);
    ensurePrivateDir(open, true); // a chosen directory may be readable, the files are 0600
    fs.chmodSync(open, 0o777);
    assert.throws(() => ensurePrivateDir(open, true), /open to other users/);

    // A file where the directory should be (once reported as "reading the control store: EEXIST").
    const file = path.join(dir, "file");
    fs.writeFileSync(file, "");
    assert.throws(
      () => ensurePrivateDir(file, true),
      /worker log directory .*file is not a directory/,
    );

    const link = path.join(dir, "link");
    fs.symlinkSync(fresh, link);
    assert.throws(() => ensurePrivateDir(link, false), { code: "PGM_LOG_LOCATION" });
  });

  it("gives libpq the root certificate our own connections trust", async () => {
    const ep = (over: Partial<Endpoint>): Endpoint => ({
      host: "h",
      port: 5432,
      username: "u",
      sslMode: "verify-full",
      ...over,
    });
    assert.equal(await libpqRootCert(ep({ sslRootCert: "/my/ca.pem" }), dir), "/my/ca.pem");
    assert.equal(await libpqRootCert(ep({ sslMode: "disable" }), dir), undefined);
    const none = await libpqRootCert(ep({ sslMode: "require" }), dir);
    assert.ok(none && !fs.existsSync(none));
    const bundle = await libpqRootCert(ep({}), dir);
    assert.ok(bundle);
    assert.equal(fs.statSync(bundle).mode & 0o777, 0o600);
    assert.equal(fs.readFileSync(bundle, "utf8"), await nodeCaBundle());
    assert.equal(await libpqRootCert(ep({ sslMode: "verify-ca" }), dir), bundle);
  });

  it("show prints the worker's log file and the runtimes serving the migration", () => {
    const o = { workerLog: "/home/u/.local/state/pgmigrate/orders-0123456789.log" };
    const text = formatShow(
      {
        migrationName: "orders",
        state: "InProgress",
        substate: "MigratingData",
        migrationMode: "Online",
        migrationOption: "Migrate",
        latencySeconds: null,
        cutoverLsn: null,
        startedOn: null,
        endedOn: null,
        error: null,
        validation: null,
        dbDetails: {},
        verification: null,
        events: [],
        warnings: [],
        runtimes: [
          {
            host: "node-a",
            pid: 41,
            lastHeartbeat: "2026-12-03T10:00:00.000Z",
            coordinator: true,
            units: ["orders: snapshot"],
            unitsDone: 0,
          },
          {
            host: "node-b",
            pid: 7,
            lastHeartbeat: "2026-12-03T09:59:58.500Z",
            coordinator: false,
            units: ["orders: public.items range 2/8", "orders: public.users"],
            unitsDone: 12,
          },
        ],
        ...o,
      } satisfies MigrationOutputs,
      "pg:5432",
      Date.parse("2026-12-03T10:00:01.000Z"),
    );
    assert.match(text, /^Log: +\/home\/u\/\.local\/state\/pgmigrate\/orders-0123456789\.log$/m);
    assert.match(text, /^Runtimes: +2 serving$/m);
    assert.match(
      text,
      /^ {2}node-a pid 41 \(coordinator\): heartbeat 1\.0 s ago, 0 unit\(s\) copied, running orders: snapshot$/m,
    );
    assert.match(
      text,
      /^ {2}node-b pid 7: heartbeat 2\.5 s ago, 12 unit\(s\) copied, running orders: public\.items range 2\/8; orders: public\.users$/m,
    );
  });
});
