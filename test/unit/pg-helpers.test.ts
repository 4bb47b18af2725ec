// LSN arithmetic, object names, redaction and error classification.
import assert from "node:assert/strict";
import { compareLsn, formatLsn, lsnDistance, parseLsn } from "../../provider/pg/lsn";
import { migrationNameProblem, publicationName, slotName } from "../../provider/pg/names";
import { publicSpec, redact } from "../../provider/pg/redact";
import { isTransient, MigrationError } from "../../provider/pg/errors";
import { resolveSpec } from "../../provider/spec/inputs";

describe("LSN arithmetic", () => {
  it("parses and formats positions past 4 GiB exactly", () => {
    assert.equal(parseLsn("16/B374D848"), 0x16b374d848n);
    assert.equal(formatLsn(0x16b374d848n), "16/B374D848");
    assert.equal(formatLsn(parseLsn("0/0")), "0/0");
    assert.equal(formatLsn(parseLsn("FFFFFFFF/FFFFFFFF")), "FFFFFFFF/FFFFFFFF");
  });
  it("compares numerically, not as text", () => {
    assert.equal(compareLsn("0/9", "0/10"), -1);
    assert.equal(compareLsn("1/0", "0/FFFFFFFF"), 1);
    assert.equal(compareLsn("A/1", "a/1"), 0);
    assert.equal(lsnDistance("0/FFFFFFF0", "1/10"), 0x20);
    assert.equal(lsnDistance("1/10", "0/0"), 0);
  });
  it("rejects malformed input", () => {
    assert.throws(() => parseLsn("16-B3"), /not an LSN/);
  });
});

describe("object names", () => {
  it("accepts lowercase names with digits and hyphens only", () => {
    assert.equal(migrationNameProblem("orders-2026"), undefined);
    assert.match(migrationNameProblem("-orders") ?? "", /must not start with a hyphen/);
    assert.match(migrationNameProblem("Orders") ?? "", /lowercase/);
    assert.match(migrationNameProblem("a".repeat(49)) ?? "", /longer than 48/);
  });
  it("derives valid, distinct slot names per database", () => {
    const a = slotName("orders-2026", "shop");
    const b = slotName("orders-2026", "billing");
    assert.notEqual(a, b);
    for (const name of [a, b, publicationName("x".repeat(48))]) {
      assert.match(name, /^pgmigrate_[a-z0-9_]+$/);
      assert.ok(name.length <= 63);
    }
  });
});

describe("redaction", () => {
  it("removes secrets and URL passwords", () => {
    const text = "auth failed for s3cr3t! at postgresql://app:other-pw@db:5432/x";
    const out = redact(text, ["s3cr3t!"]);
    assert.ok(!out.includes("s3cr3t!"));
    assert.ok(!out.includes("other-pw"));
  });
  it("drops passwords from the stored spec", () => {
    const r = resolveSpec(
      {
        source: { host: "s", username: "u", password: "p1" },
        target: { host: "t", username: "u", password: "p2" },
        databases: ["d"],
      },
      "m",
    );
    assert.ok(r.ok);
    if (!r.ok) return;
    const stored = JSON.stringify(publicSpec(r.spec));
    assert.ok(!stored.includes("p1") && !stored.includes("p2"));
  });
});

describe("errors", () => {
  it("keeps PostgreSQL fields and classifies transient failures", () => {
    const pgErr = Object.assign(new Error("terminating connection due to administrator command"), {
      code: "57P01",
      table: "orders",
      schema: "public",
    });
    const err = MigrationError.wrap("data", pgErr, "copying public.orders");
    assert.equal(err.code, "57P01");
    assert.equal(err.phase, "data");
    assert.equal(err.pg.table, "orders");
    assert.equal(err.cause, pgErr);
    assert.ok(isTransient(pgErr));
    assert.ok(!isTransient(Object.assign(new Error("dup"), { code: "23505" })));
  });
});

describe("input resolution", () => {
  it("applies defaults and names problems on exact properties", () => {
    const ok = resolveSpec(
      {
        source: { host: "s", username: "u" },
        target: { host: "t", username: "u" },
        databases: ["d"],
      },
      "orders",
    );
    assert.ok(ok.ok);
    if (ok.ok) {
      assert.equal(ok.spec.mode, "Offline");
      assert.equal(ok.spec.option, "ValidateAndMigrate");
      assert.equal(ok.spec.migrationName, "orders");
      assert.equal(ok.spec.parallelism.tables, 4);
      assert.equal(ok.spec.source.port, 5432);
    }
    const bad = resolveSpec(
      {
        source: { host: "s", username: "u", sslMode: "always" },
        target: { host: "t", username: "u" },
        databases: ["d"],
        mode: "Offline",
        cutover: true,
        extra: 1,
      },
      "orders",
    );
    assert.ok(!bad.ok);
    if (!bad.ok) {
      const byProp = Object.fromEntries(bad.problems.map((p) => [p.property, p.reason]));
      assert.match(byProp["source.sslMode"], /verify-full/);
      assert.match(byProp["extra"], /unknown property "extra"/);
    }
    const cut = resolveSpec(
      {
        source: { host: "s", username: "u" },
        target: { host: "t", username: "u" },
        databases: ["d"],
        cutover: true,
      },
      "orders",
    );
    assert.ok(!cut.ok);
    if (!cut.ok) assert.equal(cut.problems[0].property, "cutover");
  });
  it("rejects a resource name that is not a valid migration name", () => {
    const r = resolveSpec(
      {
        source: { host: "s", username: "u" },
        target: { host: "t", username: "u" },
        databases: ["d"],
      },
      "Orders_Prod",
    );
    assert.ok(!r.ok);
    if (!r.ok) assert.equal(r.problems[0].property, "migrationName");
  });
});

describe("input problems", () => {
  const ep = { host: "h", username: "u", password: "p" };
  const problems = (over: Record<string, unknown>): Record<string, string> => {
    const r = resolveSpec({ source: ep, target: ep, databases: ["a"], ...over }, "m");
    return r.ok ? {} : Object.fromEntries(r.problems.map((p) => [p.property, p.reason]));
  };

  it("tells a value of the wrong type from a missing one, without echoing the value", () => {
    assert.deepEqual(problems({ databases: "orders" }), {
      databases: "must be an array, not a string",
    });
    assert.deepEqual(problems({ databases: undefined }), { databases: "is required" });
    assert.deepEqual(problems({ cutover: "yes" }), {
      cutover: "must be a boolean, not a string",
    });
    const secret = problems({ source: { ...ep, password: 31337 } });
    assert.deepEqual(secret, { "source.password": "must be a string, not a number" });
  });
});
