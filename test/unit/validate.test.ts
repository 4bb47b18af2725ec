// The rules behind premigration checks, without servers: version and locale comparisons,
// replication prerequisites, and connection errors turned into advice.
import assert from "node:assert/strict";
import type { MigrationSpec } from "../../provider/spec/types";
import { displayName, listSome, worstState } from "../../provider/validate/checks";
import {
  collationProblems,
  compareVersionStrings,
  databaseLocaleProblems,
  extensionProblems,
  normalizeLocale,
  parameterDifferences,
  type TargetLocales,
} from "../../provider/validate/compat";
import { describeConnectError } from "../../provider/validate/connectivity";
import {
  majorOf,
  type ServerFacts,
  sourceChecks,
  targetChecks,
} from "../../provider/validate/server";
import { findDumpTools, parseToolMajor } from "../../provider/pg/dump-tools";

const facts: ServerFacts = {
  versionNum: 150_004,
  version: "15.4",
  username: "migrator",
  superuser: false,
  replication: true,
  createdb: true,
  rdsReplication: false,
  ssl: true,
  readOnly: false,
  inRecovery: false,
  walLevel: "logical",
  maxReplicationSlots: 10,
  usedReplicationSlots: 0,
  maxWalSenders: 10,
  activeWalSenders: 0,
};

const spec: MigrationSpec = {
  migrationName: "unit",
  source: {
    host: "src.example",
    port: 5432,
    username: "migrator",
    password: "s3cret!",
    sslMode: "require",
  },
  target: {
    host: "tgt.example",
    port: 5432,
    username: "admin",
    password: "t4rget!",
    sslMode: "require",
  },
  databases: ["a", "b"],
  mode: "Online",
  option: "Validate",
  overwriteDbsInTarget: false,
  cutover: false,
  parallelism: { tables: 4, indexes: 2 },
  migrateRoles: false,
  verify: "counts",
  controlDatabase: "postgres",
};

const target: TargetLocales = {
  major: 16,
  systemCollations: new Set(["C/c", "POSIX/c", "en-US-x-icu/i", "en_US.utf8/c"]),
  libcLocales: new Set(["C.utf8", "en_US.utf8"]),
  providers: new Set(["c", "i", "d"]),
};

describe("validation rules", () => {
  it("compares extension versions segment by segment", () => {
    assert.equal(compareVersionStrings("1.10", "1.9"), 1);
    assert.equal(compareVersionStrings("2.5", "2.5.0"), 0);
    assert.equal(compareVersionStrings("1.2", "1.2.1"), -1);
    assert.equal(compareVersionStrings("3.4.0dev", "3.4.0dev"), 0);
  });

  it("finds extensions the target lacks, offers only older, or does not allow", () => {
    const installed = [
      { name: "plpgsql", version: "1.0" },
      { name: "postgis", version: "3.4.2" },
      { name: "hstore", version: "1.8" },
      { name: "citext", version: "1.6" },
      { name: "pg_trgm", version: "1.6" },
    ];
    const defaults = new Map([
      ["hstore", "1.7"],
      ["citext", "1.6"],
      ["pg_trgm", "1.6"],
    ]);
    const problems = extensionProblems(installed, defaults, ["citext"]);
    assert.equal(problems.length, 3);
    assert.match(problems[0], /"postgis" 3\.4\.2 is installed on the source but not available/);
    assert.match(
      problems[1],
      /"hstore" is version 1\.8 on the source but the target only offers 1\.7/,
    );
    assert.match(
      problems[2],
      /"pg_trgm" is not allow-listed on the target: add it to the azure\.extensions/,
    );
    assert.deepEqual(extensionProblems(installed.slice(0, 1), new Map()), []);
  });

  it("normalizes libc locale spellings", () => {
    assert.equal(normalizeLocale("en_US.UTF-8"), "en_US.utf8");
    assert.equal(normalizeLocale("de_DE.ISO-8859-1@euro"), "de_DE.iso88591@euro");
    assert.equal(normalizeLocale("C"), "C");
  });

  it("requires system collations by name and user collations' locales", () => {
    const problems = collationProblems(
      [
        {
          schema: "pg_catalog",
          name: "en-US-x-icu",
          provider: "i",
          collate: "en-US",
          ctype: "en-US",
          usedBy: [],
        },
        {
          schema: "pg_catalog",
          name: "ceb-x-icu",
          provider: "i",
          collate: "ceb",
          ctype: "ceb",
          usedBy: ["public.t.a"],
        },
        { schema: "public", name: "my_c", provider: "c", collate: "C", ctype: "C", usedBy: [] },
        {
          schema: "public",
          name: "german",
          provider: "c",
          collate: "de_DE.UTF-8",
          ctype: "de_DE.UTF-8",
          usedBy: [],
        },
        {
          schema: "public",
          name: "english",
          provider: "c",
          collate: "en_US.UTF-8",
          ctype: "en_US.UTF-8",
          usedBy: [],
        },
        {
          schema: "public",
          name: "nocase",
          provider: "i",
          collate: "und-u-ks-level2",
          ctype: null,
          usedBy: [],
        },
      ],
      target,
    );
    assert.equal(problems.length, 2, problems.join("\n"));
    assert.match(
      problems[0],
      /^collation "ceb-x-icu" \(icu\) does not exist on the target, used by public\.t\.a/,
    );
    assert.match(problems[1], /^collation public\."german" \(libc\) uses locale "de_DE\.UTF-8"/);
    const noIcu = { ...target, providers: new Set(["c"]) };
    const icu = collationProblems(
      [{ schema: "public", name: "nocase", provider: "i", collate: null, ctype: null, usedBy: [] }],
      noIcu,
    );
    assert.match(icu[0], /needs icu collation support/);
  });

  it("checks that the database locale can be created on the target", () => {
    const ok = {
      encoding: "UTF8",
      collate: "en_US.UTF-8",
      ctype: "en_US.UTF-8",
      provider: "c",
      icuLocale: null,
    } as const;
    assert.deepEqual(databaseLocaleProblems(ok, target), []);
    const fr = databaseLocaleProblems({ ...ok, collate: "fr_FR.UTF-8" }, target);
    assert.equal(fr.length, 1);
    assert.match(fr[0], /LC_COLLATE "fr_FR\.UTF-8"/);
    const icu = databaseLocaleProblems(
      { ...ok, provider: "i", icuLocale: "en-US" },
      { ...target, major: 14 },
    );
    assert.match(icu[0], /ICU locale "en-US".*PostgreSQL 15 or later/);
  });

  it("lists tuned parameters that differ, skipping machine-specific ones", () => {
    const p = (name: string, setting: string, unit: string | null, display: string) => ({
      name,
      setting,
      unit,
      display,
    });
    const diffs = parameterDifferences(
      [
        p("work_mem", "65536", "kB", "64MB"),
        p("max_connections", "100", null, "100"),
        p("port", "5433", null, "5433"),
        p("ssl_cert_file", "/x.pem", null, "/x.pem"),
        p("my_ext.knob", "1", null, "1"),
      ],
      new Map([
        ["work_mem", p("work_mem", "4096", "kB", "4MB")],
        ["max_connections", p("max_connections", "100", null, "100")],
        ["port", p("port", "5432", null, "5432")],
      ]),
    );
    assert.deepEqual(diffs, [
      "work_mem: source 64MB, target 4MB",
      "my_ext.knob: source 1, target (not supported)",
    ]);
  });

  it("applies the replication prerequisites only online", () => {
    assert.deepEqual(
      sourceChecks(spec, facts).map((c) => [c.type, c.state]),
      [
        ["SourceVersion", "Succeeded"],
        ["LogicalReplication", "Succeeded"],
        ["ReplicationSlots", "Succeeded"],
        ["WalSenders", "Succeeded"],
        ["ReplicationPrivilege", "Succeeded"],
      ],
    );
    const offline = sourceChecks(
      { ...spec, mode: "Offline" },
      { ...facts, walLevel: "replica", versionNum: 90_600 },
    );
    assert.deepEqual(
      offline.map((c) => [c.type, c.state]),
      [["SourceVersion", "Succeeded"]],
    );
    const old = sourceChecks(spec, { ...facts, versionNum: 90_600, version: "9.6.24" });
    assert.equal(old[0].state, "Failed");
    assert.match(old[0].messages[0], /from version 10/);
    assert.equal(
      sourceChecks(spec, { ...facts, versionNum: 90_400, version: "9.4.1" })[0].state,
      "Failed",
    );
  });

  it("counts used slots and busy wal senders", () => {
    const busy = sourceChecks(spec, {
      ...facts,
      maxReplicationSlots: 3,
      usedReplicationSlots: 2,
      activeWalSenders: 9,
    });
    const slots = busy.find((c) => c.type === "ReplicationSlots");
    assert.equal(slots?.state, "Failed");
    assert.match(slots?.messages[0] ?? "", /3 and 2 are in use, so 1 are free but 2 are needed/);
    assert.equal(busy.find((c) => c.type === "WalSenders")?.state, "Warning");
  });

  it("accepts rds_replication only on AWS", () => {
    const user = { ...facts, replication: false, rdsReplication: true };
    const onPrem = sourceChecks(spec, user).find((c) => c.type === "ReplicationPrivilege");
    assert.equal(onPrem?.state, "Failed");
    const aws = { ...spec, source: { ...spec.source, serverType: "AWS_AURORA" } };
    assert.equal(
      sourceChecks(aws, user).find((c) => c.type === "ReplicationPrivilege")?.state,
      "Succeeded",
    );
    const awsWithout = sourceChecks(aws, { ...user, rdsReplication: false }).find(
      (c) => c.type === "ReplicationPrivilege",
    );
    assert.match(awsWithout?.messages[0] ?? "", /GRANT rds_replication TO "migrator"/);
  });

  it("checks the target's version, CREATEDB and writability", () => {
    const checks = targetChecks(facts, {
      ...facts,
      versionNum: 140_010,
      version: "14.10",
      createdb: false,
      inRecovery: true,
    });
    assert.deepEqual(
      checks.map((c) => [c.type, c.state]),
      [
        ["TargetVersion", "Failed"],
        ["CreateDatabasePrivilege", "Failed"],
        ["TargetReadOnly", "Failed"],
      ],
    );
    assert.equal(majorOf(90_624), 9.6);
    assert.equal(majorOf(170_002), 17);
    assert.equal(
      targetChecks({ ...facts, versionNum: 90_624 }, { ...facts, versionNum: 100_001 })[0].state,
      "Succeeded",
    );
  });

  it("turns connection errors into advice without the password", () => {
    const ep = spec.source;
    const auth = Object.assign(new Error(`password authentication failed for user "migrator"`), {
      code: "28P01",
    });
    assert.equal(
      describeConnectError(ep, "a", auth),
      `authentication failed for user "migrator" on src.example:5432: check the password (and that the user exists)`,
    );
    const refused = Object.assign(
      new AggregateError([Object.assign(new Error("x"), { code: "ECONNREFUSED" })]),
      {},
    );
    assert.match(
      describeConnectError(ep, "a", refused),
      /could not connect to src\.example:5432: connection refused/,
    );
    assert.match(
      describeConnectError(ep, "a", new Error("timeout expired")),
      /no answer from src\.example:5432 within 5 s/,
    );
    const dns = Object.assign(new Error("getaddrinfo ENOTFOUND src.example"), {
      code: "ENOTFOUND",
    });
    assert.match(describeConnectError(ep, "a", dns), /could not resolve host name "src\.example"/);
    const hba = Object.assign(
      new Error(
        `no pg_hba.conf entry for host "1.2.3.4", user "migrator", database "a", no encryption`,
      ),
      {
        code: "28000",
      },
    );
    assert.match(describeConnectError(ep, "a", hba), /pg_hba\.conf.*set sslMode to "require"/);
    const cert = Object.assign(new Error("self-signed certificate"), {
      code: "DEPTH_ZERO_SELF_SIGNED_CERT",
    });
    assert.match(
      describeConnectError({ ...ep, sslMode: "verify-full" }, "a", cert),
      /could not be verified.*sslRootCert/,
    );
    // require verifies only because a root certificate was given: never "use sslMode require".
    const wrongCa = describeConnectError(
      { ...ep, sslMode: "require", sslRootCert: "/etc/ca.pem" },
      "a",
      Object.assign(new Error("unable to verify the first certificate"), {
        code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
      }),
    );
    assert.match(wrongCa, /sslRootCert "\/etc\/ca\.pem" does not hold the CA/);
    assert.doesNotMatch(wrongCa, /sslMode "require" encrypts|use sslMode/);
    // A host name mismatch is about the name, not the CA.
    const altname = describeConnectError(
      { ...ep, sslMode: "verify-full", sslRootCert: "/etc/ca.pem" },
      "a",
      Object.assign(new Error("Hostname/IP does not match certificate's altnames"), {
        code: "ERR_TLS_CERT_ALTNAME_INVALID",
      }),
    );
    assert.match(altname, /does not name host "src\.example".*subject alternative names/);
    assert.doesNotMatch(altname, /sslRootCert/);
    const denied = Object.assign(new Error("permission denied for database a"), { code: "42501" });
    assert.match(
      describeConnectError(ep, "a", denied),
      /GRANT CONNECT ON DATABASE "a" TO "migrator"/,
    );
    const echoed = new Error(`weird failure mentioning s3cret! somewhere`);
    assert.ok(!describeConnectError(ep, "a", echoed).includes("s3cret!"));
  });

  it("finds dump tools and parses their versions", () => {
    assert.equal(parseToolMajor("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"), 15);
    assert.equal(parseToolMajor("pg_dump (PostgreSQL) 9.6.24"), 9);
    assert.equal(parseToolMajor("something else"), undefined);
    assert.equal(findDumpTools(99), undefined);
    const tools = findDumpTools(9);
    if (tools) {
      assert.ok(tools.major >= 9);
      assert.match(tools.pgDump, /pg_dump$/);
      assert.match(tools.pgRestore, /pg_restore$/);
    }
  });

  it("reports the worst state and readable names", () => {
    assert.equal(worstState([]), "Succeeded");
    assert.equal(worstState(["Succeeded", "Warning"]), "Warning");
    assert.equal(worstState(["Warning", "Failed", "Succeeded"]), "Failed");
    assert.equal(listSome(["a", "b", "c"], 2), "a, b and 1 more");
    assert.equal(displayName("public", "orders"), "public.orders");
    assert.equal(displayName("Sales", "order items"), `"Sales"."order items"`);
  });
});
