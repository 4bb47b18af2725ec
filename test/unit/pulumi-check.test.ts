// The provider's `check` on a table of inputs: each problem lands on its exact property with a
// message saying what to write; values unknown during preview are accepted.
import assert from "node:assert/strict";
import { checkMigration, suggestMigrationName } from "../../provider/pulumi/check";
import { UNKNOWN } from "../../provider/pulumi/state";
import { resolveSpec } from "../../provider/spec/inputs";

type Inputs = Record<string, unknown>;

const valid: Inputs = {
  source: { host: "old-db.internal", username: "postgres", password: "s3cret" },
  target: { host: "new-db.internal", username: "pgadmin", password: "t0p" },
  databases: ["orders"],
  migrationName: "orders",
};

interface Case {
  readonly name: string;
  readonly news: Inputs;
  readonly olds?: Inputs;
  /** Expected failures: property → pattern of the reason. Empty = accepted. */
  readonly failures: Readonly<Record<string, RegExp>>;
}

const cases: readonly Case[] = [
  { name: "minimal valid inputs", news: valid, failures: {} },
  {
    name: "an online migration being cut over",
    news: { ...valid, mode: "Online", cutover: true },
    olds: { ...valid, mode: "Online", cutover: false },
    failures: {},
  },
  {
    name: "the provider's own key",
    news: { ...valid, __provider: "exports.handler = ..." },
    failures: {},
  },
  { name: "verify under the snapshot", news: { ...valid, verify: "snapshot" }, failures: {} },
  {
    name: "an unknown verify mode",
    news: { ...valid, verify: "fast" },
    failures: { verify: /"snapshot", "counts", "checksum"/ },
  },
  {
    name: "missing source",
    news: { ...valid, source: undefined },
    failures: { source: /source is required: set it to \{ host, username, password \}/ },
  },
  {
    name: "source of the wrong type",
    news: { ...valid, source: "old-db.internal" },
    failures: { source: /source must be an object, not a string: set it to \{ host/ },
  },
  {
    name: "empty host",
    news: { ...valid, source: { ...(valid.source as Inputs), host: "" } },
    failures: { "source.host": /write the server's DNS name or IP address/ },
  },
  {
    name: "port out of range",
    news: { ...valid, target: { ...(valid.target as Inputs), port: 70000 } },
    failures: { "target.port": /between 1 and 65535/ },
  },
  {
    name: "missing username",
    news: { ...valid, target: { host: "new-db.internal", password: "x" } },
    failures: { "target.username": /target.username is required: write the login role/ },
  },
  {
    name: "bad sslMode",
    news: { ...valid, source: { ...(valid.source as Inputs), sslMode: "on" } },
    failures: { "source.sslMode": /"disable", "prefer", "require", "verify-ca", "verify-full"/ },
  },
  {
    name: "no databases",
    news: { ...valid, databases: [] },
    failures: { databases: /at least one database, e\.g\. \["orders"\]/ },
  },
  {
    name: "a database twice",
    news: { ...valid, databases: ["orders", "orders"] },
    failures: { databases: /must not repeat/ },
  },
  {
    name: "lowercase mode",
    news: { ...valid, mode: "online" },
    failures: { mode: /mode must be one of "Offline", "Online"/ },
  },
  {
    name: "cutover on an offline migration",
    news: { ...valid, cutover: true },
    failures: { cutover: /Online migrations only; remove it or set mode: "Online"/ },
  },
  {
    name: "cutover undone",
    news: { ...valid, mode: "Online", cutover: false },
    olds: { ...valid, mode: "Online", cutover: true },
    failures: { cutover: /cannot be undone.*new migrationName/ },
  },
  {
    name: "a misspelt property",
    news: { ...valid, sourcePassword: "x" },
    failures: { sourcePassword: /unknown property "sourcePassword": remove it/ },
  },
  {
    name: "a resource name that is not a valid migration name",
    news: { ...valid, migrationName: "Orders_DB" },
    failures: { migrationName: /set it explicitly, e\.g\. migrationName: "orders-db"/ },
  },
  {
    name: "parallelism of zero",
    news: { ...valid, parallelism: { tables: 0 } },
    failures: { "parallelism.tables": /at least 1/ },
  },
  {
    name: "several problems at once",
    news: { ...valid, databases: [], option: "Copy" },
    failures: { databases: /at least one/, option: /"Validate", "Migrate", "ValidateAndMigrate"/ },
  },
  // Preview: values that depend on resources not created yet.
  { name: "unknown target", news: { ...valid, target: UNKNOWN }, failures: {} },
  {
    name: "unknown target host",
    news: { ...valid, target: { ...(valid.target as Inputs), host: UNKNOWN } },
    failures: {},
  },
  {
    name: "unknown database names",
    news: { ...valid, databases: [UNKNOWN, UNKNOWN] },
    failures: {},
  },
  {
    name: "unknown mode with cutover",
    news: { ...valid, mode: UNKNOWN, cutover: true },
    failures: {},
  },
  {
    name: "unknown cutover after a cutover",
    news: { ...valid, mode: "Online", cutover: UNKNOWN },
    olds: { ...valid, mode: "Online", cutover: true },
    failures: {},
  },
  {
    name: "an unknown value does not hide a real problem elsewhere",
    news: { ...valid, target: UNKNOWN, databases: [] },
    failures: { databases: /at least one/ },
  },
];

describe("provider check", () => {
  for (const c of cases) {
    it(c.name, () => {
      const result = checkMigration(c.olds ?? {}, c.news);
      const got = Object.fromEntries((result.failures ?? []).map((f) => [f.property, f.reason]));
      assert.deepEqual(
        Object.keys(got).sort(),
        Object.keys(c.failures).sort(),
        JSON.stringify(got),
      );
      for (const [property, pattern] of Object.entries(c.failures)) {
        assert.match(got[property], pattern);
      }
      assert.equal(result.inputs, c.news, "the inputs are passed on as written");
    });
  }

  it("verifies under the copy's snapshot unless told otherwise", () => {
    const resolved = resolveSpec(valid);
    assert.ok(resolved.ok);
    assert.equal(resolved.spec.verify, "snapshot");
  });

  it("never echoes a password in a failure", () => {
    const news = {
      ...valid,
      source: { host: "", username: "", password: "hunter2-secret", port: -1 },
    };
    const text = JSON.stringify(checkMigration({}, news).failures);
    assert.ok(!text.includes("hunter2-secret"));
  });

  it("suggests valid migration names", () => {
    assert.equal(suggestMigrationName("Orders_DB"), "orders-db");
    assert.equal(suggestMigrationName("__"), "my-migration");
    assert.equal(suggestMigrationName("x".repeat(60)).length, 48);
  });
});
