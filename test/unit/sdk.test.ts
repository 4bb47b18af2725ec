// The public SDK under `pulumi.runtime.setMocks`: the inputs a PostgresMigration registers, its
// passwords kept secret whatever the user wrote, and no engine code loaded by the SDK.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { PostgresMigration } from "../../sdk";

type Inputs = Record<string, unknown>;

const registered: pulumi.runtime.MockResourceArgs[] = [];

/** Resolves an Output's value (mocks resolve everything). */
function valueOf<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply((v) => resolve(v)));
}

function isSecret(value: unknown): value is { value: unknown } {
  return pulumi.runtime.isRpcSecret(value);
}

describe("PostgresMigration SDK (Pulumi mocks)", () => {
  before(async () => {
    await pulumi.runtime.setMocks(
      {
        newResource(args) {
          registered.push(args);
          return {
            id: `${args.name}-id`,
            state: {
              migrationName: (args.inputs as Inputs).migrationName,
              state: "WaitingForUserAction",
              substate: "WaitingForCutoverTrigger",
              latencySeconds: 0.4,
              dbDetails: { orders: { databaseName: "orders" } },
            },
          };
        },
        call: (args) => args.inputs,
      },
      "project",
      "stack",
      false,
    );
  });

  function registration(name: string): Inputs {
    const found = registered.find((r) => r.name === name);
    assert.ok(found, `resource ${name} was registered`);
    assert.equal(found.type, "pulumi-nodejs:dynamic/pgmigrate:PostgresMigration");
    return found.inputs as Inputs;
  }

  it("registers the inputs as written, the migration name defaulting to the resource name", async () => {
    const migration = new PostgresMigration("orders", {
      source: { host: "old-db.internal", username: "postgres", password: pulumi.secret("src-pw") },
      target: {
        host: pulumi.output("new-db.internal"),
        port: 5433,
        username: "pgadmin",
        password: "tgt-pw",
      },
      databases: ["orders", pulumi.output("billing")],
      mode: "Online",
      parallelism: { tables: 8 },
    });
    assert.equal(await valueOf(migration.state), "WaitingForUserAction");
    assert.equal(await valueOf(migration.latencySeconds), 0.4);
    assert.equal(await valueOf(migration.migrationName), "orders");
    const inputs = registration("orders");
    assert.equal(inputs.migrationName, "orders");
    assert.deepEqual(inputs.databases, ["orders", "billing"]);
    assert.equal(inputs.mode, "Online");
    assert.deepEqual(inputs.parallelism, { tables: 8 });
    // Outputs are declared, not sent as inputs.
    for (const output of ["state", "substate", "latencySeconds", "dbDetails", "verification"]) {
      assert.ok(!(output in inputs), `${output} is not an input`);
    }
  });

  it("keeps both passwords secret, even one given as a plain string", () => {
    const inputs = registration("orders");
    assert.ok(isSecret(inputs.source), "source carries a secret");
    assert.ok(isSecret(inputs.target), "target carries a secret (the SDK marks it)");
    assert.deepEqual(inputs.source.value, {
      host: "old-db.internal",
      username: "postgres",
      password: "src-pw",
    });
    assert.equal((inputs.target.value as Inputs).password, "tgt-pw");
    assert.equal((inputs.target.value as Inputs).port, 5433);
  });

  it("stores the serialized provider as a secret, small and without the engine", () => {
    const provider = registration("orders").__provider;
    assert.ok(isSecret(provider), "the provider text remembers passwords, so it is secret");
    const text = provider.value as string;
    assert.ok(text.length < 50_000, `serialized provider is ${text.length} characters`);
    const requires = new Set(text.match(/require\([^)]*\)/g));
    assert.deepEqual([...requires].sort(), ["require(localEntry)", "require(packageEntry)"]);
    assert.ok(
      !/withControl|createMigration|pg-copy-streams|zod/.test(text),
      "no engine code captured",
    );
  });

  it("uses an explicit migration name", async () => {
    const migration = new PostgresMigration("billing-resource", {
      source: { host: "a", username: "u", password: "p" },
      target: { host: "b", username: "u", password: "q" },
      databases: ["billing"],
      migrationName: "billing-2025",
    });
    assert.equal(await valueOf(migration.migrationName), "billing-2025");
    assert.equal(registration("billing-resource").migrationName, "billing-2025");
  });

  it("keeps a whole-endpoint Output secret", async () => {
    const migration = new PostgresMigration("from-output", {
      source: pulumi.output({ host: "a", username: "u", password: "p" }),
      target: Promise.resolve({ host: "b", username: "u", password: "q" }),
      databases: ["x"],
    });
    await valueOf(migration.state);
    const inputs = registration("from-output");
    assert.ok(isSecret(inputs.source) && isSecret(inputs.target));
  });

  it("carries its own URN in the provider, so diagnostics land on the resource", async () => {
    class Shop extends pulumi.ComponentResource {
      constructor(name: string) {
        super("acme:index:Shop", name);
      }
    }
    const shop = new Shop("shop");
    const nested = new PostgresMigration(
      "nested",
      {
        source: { host: "a", username: "u", password: "p" },
        target: { host: "b", username: "u", password: "q" },
        databases: ["x"],
      },
      { parent: shop },
    );
    const urns = {
      orders:
        "urn:pulumi:stack::project::pulumi-nodejs:dynamic/pgmigrate:PostgresMigration::orders",
      nested: await valueOf(nested.urn),
    };
    assert.equal(
      urns.nested,
      "urn:pulumi:stack::project::acme:index:Shop$pulumi-nodejs:dynamic/pgmigrate:PostgresMigration::nested",
    );
    for (const [name, urn] of Object.entries(urns)) {
      const text = (registration(name).__provider as { value: string }).value;
      assert.ok(text.includes(JSON.stringify(urn)), `the provider of ${name} names ${urn}`);
    }
  });

  it("does not load the engine, pg or zod when a program imports the SDK", () => {
    const sdk = path.resolve(__dirname, "../../sdk/index.js");
    const loaded = execFileSync(
      process.execPath,
      [
        "-e",
        `require(${JSON.stringify(sdk)});` +
          "console.log(Object.keys(require.cache).filter((f) => /provider[\\\\/](engine|provider-lifecycle|inputs)\\.js$|node_modules[\\\\/](pg|zod)[\\\\/]/.test(f)).join('\\n'))",
      ],
      { encoding: "utf8" },
    ).trim();
    assert.equal(loaded, "");
  });
});
