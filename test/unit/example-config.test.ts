// examples/config-driven reads every input of PostgresMigration from stack config: each key of
// the provider's input schema (and of a server) set in config reaches the resolved spec.
import assert from "node:assert/strict";
import {
  migrationArgs,
  STACK_CONFIG_KEYS,
  type StackConfig,
} from "../../examples/config-driven/config";
import { endpointSchema, migrationInputSchema, resolveSpec } from "../../provider/spec/inputs";
import { validationSummary } from "../../sdk";

/** Stack config as `pulumi config set` leaves it: strings, and JSON for objects. */
function stackConfig(values: Record<string, unknown>): StackConfig {
  const read = (key: string): unknown => values[key];
  return {
    get: (key) => (read(key) === undefined ? undefined : String(read(key))),
    getBoolean: (key) => (read(key) === undefined ? undefined : read(key) === true),
    getObject: <T>(key: string) => read(key) as T | undefined,
    requireObject: <T>(key: string) => {
      if (read(key) === undefined) throw new Error(`missing required configuration ${key}`);
      return read(key) as T;
    },
    requireSecret: (key) => {
      if (typeof read(key) !== "string") throw new Error(`missing required secret ${key}`);
      return read(key) as string;
    },
  };
}

describe("examples/config-driven: every input from stack config", () => {
  it("has a config key for every input of the provider's schema", () => {
    assert.deepEqual(
      Object.keys(STACK_CONFIG_KEYS).sort(),
      Object.keys(migrationInputSchema.shape).sort(),
    );
  });

  it("passes every input, each server field included, from config to the resolved spec", () => {
    const server = (host: string) => ({
      host,
      port: 6432,
      username: "migrator",
      sslMode: "verify-full",
      sslRootCert: "/etc/ca.pem",
      serverType: "AWS_AURORA",
    });
    // Every key of a server in config (the password is its own secret).
    assert.deepEqual(
      [...Object.keys(server("h")), "password"].sort(),
      Object.keys(endpointSchema.shape).sort(),
    );
    const config = stackConfig({
      source: server("old-db.internal"),
      sourcePassword: "source-secret",
      target: { ...server("new-db.internal"), serverType: undefined },
      targetPassword: "target-secret",
      databases: ["orders", "billing"],
      mode: "Online",
      option: "Validate",
      overwriteDbsInTarget: true,
      cutover: true,
      migrationName: "orders-to-flex",
      parallelism: { tables: 7, indexes: 3, splitTablesLargerThan: 65536 },
      migrateRoles: true,
      fixReplicaIdentity: "full",
      verify: "checksum",
      controlDatabase: "ops",
      runtime: { kind: "external", logDir: "/var/log/pgmigrate" },
    });
    const args = migrationArgs(config);
    const unset = Object.entries(args).filter(([, v]) => v === undefined);
    assert.deepEqual(unset, [], "every input is read");
    const resolved = resolveSpec(args, "resource-name");
    assert.ok(resolved.ok, JSON.stringify(!resolved.ok && resolved.problems));
    const { spec, runtime } = resolved;
    assert.deepEqual(
      { ...spec, source: { ...spec.source }, target: { ...spec.target } },
      {
        migrationName: "orders-to-flex",
        source: { ...server("old-db.internal"), password: "source-secret" },
        target: {
          ...server("new-db.internal"),
          serverType: undefined,
          password: "target-secret",
        },
        databases: ["orders", "billing"],
        mode: "Online",
        option: "Validate",
        overwriteDbsInTarget: true,
        cutover: true,
        parallelism: { tables: 7, indexes: 3, splitTablesLargerThan: 65536 },
        migrateRoles: true,
        fixReplicaIdentity: "full",
        verify: "checksum",
        controlDatabase: "ops",
      },
    );
    assert.deepEqual(runtime, { kind: "external", logDir: "/var/log/pgmigrate" });
  });

  it("leaves unset inputs to the provider's defaults", () => {
    const args = migrationArgs(
      stackConfig({
        source: { host: "a", username: "u" },
        sourcePassword: "s",
        target: { host: "b", username: "u" },
        targetPassword: "t",
        databases: ["orders"],
      }),
    );
    const resolved = resolveSpec(args, "orders");
    assert.ok(resolved.ok);
    assert.equal(resolved.spec.mode, "Offline");
    assert.equal(resolved.spec.fixReplicaIdentity, undefined);
    assert.deepEqual(resolved.spec.parallelism, { tables: 4, indexes: 2 });
  });
});

describe("validationSummary: what a stack exports about validation", () => {
  it("keeps the status and only the failed and warning checks, failures first", () => {
    const summary = validationSummary({
      status: "Failed",
      serverLevel: [
        { type: "SourceVersion", state: "Succeeded", messages: [] },
        { type: "ServerParameters", state: "Warning", messages: ["work_mem differs"] },
      ],
      databaseLevel: [
        {
          databaseName: "orders",
          summary: [
            { type: "DatabaseExists", state: "Succeeded", messages: [] },
            { type: "ReplicaIdentity", state: "Failed", messages: ["public.events has no key"] },
          ],
        },
      ],
    });
    assert.deepEqual(summary, {
      validationStatus: "Failed",
      problems: [
        {
          databaseName: "orders",
          type: "ReplicaIdentity",
          state: "Failed",
          messages: ["public.events has no key"],
        },
        {
          databaseName: null,
          type: "ServerParameters",
          state: "Warning",
          messages: ["work_mem differs"],
        },
      ],
    });
    assert.deepEqual(validationSummary(null), { validationStatus: null, problems: [] });
  });
});
