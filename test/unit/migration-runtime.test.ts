// MigrationRuntime under `pulumi.runtime.setMocks`: the Secret and Deployment it declares (a pool
// of runtimes, passwords only in the Secret, non-root, heartbeat liveness), and that importing the
// SDK does not load the optional @pulumi/kubernetes.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { MigrationRuntime, defaultRuntimeImage } from "../../sdk";

type Inputs = Record<string, unknown>;

const SERVER = "postgresql://pgadmin@pg.example.com:5432/pgmigrate?sslmode=require";
const TARGET_PASSWORD = "tgt-S3cret-pw";
const SOURCE_PASSWORD = "src-S3cret-pw";
const SDK = path.resolve(__dirname, "../../sdk/index.js");

const registered: pulumi.runtime.MockResourceArgs[] = [];

/** Resolves an Output's value (mocks resolve everything). */
function valueOf<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply((v) => resolve(v)));
}

/** The value with every secret wrapper of the mock protocol removed. */
function reveal(value: unknown): unknown {
  if (pulumi.runtime.isRpcSecret(value)) return reveal((value as { value: unknown }).value);
  if (Array.isArray(value)) return (value as unknown[]).map(reveal);
  if (value !== null && typeof value === "object")
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, reveal(v)]));
  return value;
}

function resource(type: string, name: string): pulumi.runtime.MockResourceArgs {
  const found = registered.filter((r) => r.type === type && r.name === name);
  assert.equal(found.length, 1, `one ${type} named ${name}`);
  return found[0];
}

/**
 * The @pulumi/kubernetes modules a fresh node process has loaded after requiring the SDK, then
 * after declaring a MigrationRuntime (under mocks), one line each: "imported: N", "declared: N".
 */
function kubernetesModulesLoaded(): string[] {
  const script = `
    const pulumi = require("@pulumi/pulumi");
    const count = () =>
      Object.keys(require.cache).filter((f) => /node_modules[\\\\/]@pulumi[\\\\/]kubernetes[\\\\/]/.test(f)).length;
    const { MigrationRuntime } = require(${JSON.stringify(SDK)});
    console.log("imported: " + count());
    pulumi.runtime
      .setMocks({ newResource: (a) => ({ id: a.name, state: a.inputs }), call: (a) => a.inputs })
      .then(() => {
        new MigrationRuntime("r", { server: "postgresql://u@h/postgres", targetPassword: "t", sourcePassword: "s" });
        console.log("declared: " + count());
      });
  `;
  return execFileSync(process.execPath, ["-e", script], { encoding: "utf8" }).trim().split("\n");
}

describe("MigrationRuntime (Pulumi mocks)", () => {
  let runtime: MigrationRuntime;

  before(async () => {
    await pulumi.runtime.setMocks(
      {
        newResource(args) {
          registered.push(args);
          const inputs = args.inputs as { metadata?: Inputs };
          // The Kubernetes provider auto-names; the mock names like it, in its namespace.
          const metadata = {
            ...inputs.metadata,
            name: `${args.name}-0f3a9c1e`,
            namespace: inputs.metadata?.namespace ?? "default",
          };
          return { id: `${args.name}-id`, state: { ...args.inputs, metadata } };
        },
        call: (args) => args.inputs,
      },
      "project",
      "stack",
      false,
    );
    const cluster = new k8s.Provider("cluster", { namespace: "default" });
    runtime = new MigrationRuntime(
      "pgmigrate",
      {
        server: SERVER,
        targetPassword: TARGET_PASSWORD,
        sourcePassword: pulumi.secret(SOURCE_PASSWORD),
        image: "registry.example.com/pgmigrate:0.1.0",
        replicas: 3,
        namespace: "migrations",
        labels: { team: "data" },
      },
      { provider: cluster },
    );
    await valueOf(runtime.deploymentName);
  });

  const deploymentInputs = (): Inputs =>
    reveal(resource("kubernetes:apps/v1:Deployment", "pgmigrate").inputs) as Inputs;
  const podSpec = (): Inputs =>
    ((deploymentInputs().spec as Inputs).template as Inputs).spec as Inputs;
  const container = (): Inputs => (podSpec().containers as Inputs[])[0];

  it("declares a component with a Secret and a Deployment of N pool runtimes", async () => {
    const component = resource("pulumi-postgres-migration:index:MigrationRuntime", "pgmigrate");
    assert.equal(component.custom, false);
    // The component's provider option reaches both resources.
    for (const [type, name] of [
      ["kubernetes:core/v1:Secret", "pgmigrate-passwords"],
      ["kubernetes:apps/v1:Deployment", "pgmigrate"],
    ]) {
      assert.match(String(resource(type, name).provider), /::cluster::/, `${name} uses cluster`);
    }
    const spec = deploymentInputs().spec as Inputs;
    assert.equal(spec.replicas, 3);
    assert.equal(container().image, "registry.example.com/pgmigrate:0.1.0");
    // A pool: runtime --server URL, no --migration-name; the heartbeat file the probe reads.
    assert.deepEqual(container().args, [
      "runtime",
      "--server",
      SERVER,
      "--heartbeat-file",
      "/tmp/pgmigrate-heartbeat",
    ]);
    assert.equal(container().command, undefined, "the image's entrypoint (pgmigrate) is kept");
    assert.deepEqual(
      (deploymentInputs().metadata as Inputs).labels,
      (spec.template as { metadata: Inputs }).metadata.labels,
    );
    assert.deepEqual((spec.selector as Inputs).matchLabels, {
      "app.kubernetes.io/name": "pgmigrate-runtime",
      "app.kubernetes.io/instance": "pgmigrate",
    });
    assert.equal(((deploymentInputs().metadata as Inputs).labels as Inputs).team, "data");
    assert.equal((deploymentInputs().metadata as Inputs).namespace, "migrations");
    assert.equal(await valueOf(runtime.deploymentName), "pgmigrate-0f3a9c1e");
    assert.equal(await valueOf(runtime.secretName), "pgmigrate-passwords-0f3a9c1e");
    assert.equal(await valueOf(runtime.namespace), "migrations");
  });

  it("keeps both passwords in the Secret only, as a secret, read through secretKeyRef", () => {
    const secret = resource("kubernetes:core/v1:Secret", "pgmigrate-passwords").inputs as Inputs;
    assert.ok(pulumi.runtime.isRpcSecret(secret.stringData), "stringData is a secret");
    assert.deepEqual(reveal(secret.stringData), {
      "target-password": TARGET_PASSWORD,
      "source-password": SOURCE_PASSWORD,
    });
    assert.deepEqual(container().env, [
      {
        name: "PGMIGRATE_TARGET_PASSWORD",
        valueFrom: {
          secretKeyRef: { name: "pgmigrate-passwords-0f3a9c1e", key: "target-password" },
        },
      },
      {
        name: "PGMIGRATE_SOURCE_PASSWORD",
        valueFrom: {
          secretKeyRef: { name: "pgmigrate-passwords-0f3a9c1e", key: "source-password" },
        },
      },
    ]);
    const text = JSON.stringify(deploymentInputs());
    for (const password of [TARGET_PASSWORD, SOURCE_PASSWORD]) {
      assert.ok(!text.includes(password), "no password anywhere in the Deployment");
    }
  });

  it("runs as non-root on a read-only root file system, /tmp an emptyDir", () => {
    assert.equal((podSpec().securityContext as Inputs).runAsNonRoot, true);
    assert.equal((podSpec().securityContext as Inputs).runAsUser, 10001);
    assert.equal(podSpec().automountServiceAccountToken, false);
    const security = container().securityContext as Inputs;
    assert.equal(security.runAsNonRoot, true);
    assert.equal(security.readOnlyRootFilesystem, true);
    assert.equal(security.allowPrivilegeEscalation, false);
    assert.deepEqual(container().volumeMounts, [{ name: "tmp", mountPath: "/tmp" }]);
    assert.deepEqual(podSpec().volumes, [{ name: "tmp", emptyDir: {} }]);
    assert.ok(Number(podSpec().terminationGracePeriodSeconds) >= 30, "time for a clean stop");
    // Old and new runtimes never run side by side on one migration.
    assert.deepEqual((deploymentInputs().spec as Inputs).strategy, { type: "Recreate" });
  });

  it("restarts a runtime whose heartbeat file is older than 30 s", () => {
    const command = [
      "sh",
      "-c",
      `test -n "$(find /tmp/pgmigrate-heartbeat -newermt "-30 seconds" 2>/dev/null)"`,
    ];
    const liveness = container().livenessProbe as Inputs;
    assert.deepEqual(liveness.exec, { command });
    assert.equal(liveness.periodSeconds, 10);
    assert.equal(liveness.timeoutSeconds, 5);
    assert.equal(liveness.failureThreshold, 3);
    assert.deepEqual((container().startupProbe as Inputs).exec, { command });
  });

  it("the probe command passes on a fresh heartbeat file, fails on a stale or missing one", () => {
    const dir = execFileSync("mktemp", ["-d"], { encoding: "utf8" }).trim();
    try {
      const file = path.join(dir, "heartbeat");
      const [sh, flag, script] = (
        (container().livenessProbe as Inputs).exec as { command: string[] }
      ).command;
      const probe = (): number => {
        try {
          execFileSync(sh, [flag, script.replaceAll("/tmp/pgmigrate-heartbeat", file)]);
          return 0;
        } catch (err) {
          return (err as { status: number }).status;
        }
      };
      assert.equal(probe(), 1, "missing");
      execFileSync("touch", [file]);
      assert.equal(probe(), 0, "fresh");
      execFileSync("touch", ["-d", "-25 seconds", file]);
      assert.equal(probe(), 0, "25 s old");
      execFileSync("touch", ["-d", "-35 seconds", file]);
      assert.equal(probe(), 1, "35 s old");
    } finally {
      execFileSync("rm", ["-rf", dir]);
    }
  });

  it("defaults: 2 replicas, the package's image name, resource requests", async () => {
    const minimal = new MigrationRuntime("minimal", {
      server: pulumi.output("postgresql://admin@db:5432/postgres"),
      targetPassword: "t",
      sourcePassword: "s",
    });
    await valueOf(minimal.deploymentName);
    const inputs = reveal(resource("kubernetes:apps/v1:Deployment", "minimal").inputs) as {
      spec: { replicas: number; template: { spec: { containers: Inputs[] } } };
    };
    assert.equal(inputs.spec.replicas, 2);
    const [only] = inputs.spec.template.spec.containers;
    assert.equal(only.image, "ghcr.io/pulumi-postgres-migration/pgmigrate:0.1.0");
    assert.equal(only.image, defaultRuntimeImage());
    assert.deepEqual(only.resources, { requests: { cpu: "500m", memory: "512Mi" } });
    assert.ok(
      !resource("kubernetes:apps/v1:Deployment", "minimal").provider,
      "the default provider",
    );
  });

  it("refuses a server URL with a password, without repeating it", async () => {
    const refusal = (err: Error): boolean =>
      /server must not contain a password/.test(err.message) && !err.message.includes("hunter2");
    const passwords = { targetPassword: "t", sourcePassword: "s" };
    // A plain string: at once, where the program declares the runtime.
    assert.throws(
      () =>
        new MigrationRuntime("bad-plain", {
          server: "postgresql://admin:hunter2-pw@db:5432/postgres",
          ...passwords,
        }),
      refusal,
    );
    // An Output: when the Deployment's inputs resolve, which fails the registration (the update).
    // (The mocks then report at exit that this registration's promises were left pending.)
    let onRejection: (reason: unknown) => void = () => undefined;
    const rejected = new Promise<unknown>((resolve) => (onRejection = resolve));
    process.on("unhandledRejection", onRejection);
    try {
      new MigrationRuntime("bad-output", {
        server: pulumi.output("postgres://admin@db/postgres?password=hunter2-pw"),
        ...passwords,
      });
      const reason = await rejected;
      assert.ok(reason instanceof Error && refusal(reason), String(reason));
    } finally {
      process.off("unhandledRejection", onRejection);
    }
    assert.equal(
      registered.filter(
        (r) => r.type === "kubernetes:apps/v1:Deployment" && r.name.startsWith("bad-"),
      ).length,
      0,
      "no Deployment registered with such a URL",
    );
  });

  it("does not load @pulumi/kubernetes when a program imports the SDK, only when it declares one", () => {
    const [imported, declared] = kubernetesModulesLoaded();
    assert.equal(imported, "imported: 0");
    assert.match(declared, /^declared: [1-9]\d*$/);
  });

  it("says how to install @pulumi/kubernetes when it is missing", () => {
    // A program whose node_modules lacks the package: resolution of it fails as Node's would.
    const script = `
      const Module = require("node:module");
      const resolve = Module._resolveFilename;
      Module._resolveFilename = function (request, ...rest) {
        if (request === "@pulumi/kubernetes" || request.startsWith("@pulumi/kubernetes/")) {
          const err = new Error("Cannot find module '" + request + "'");
          err.code = "MODULE_NOT_FOUND";
          throw err;
        }
        return resolve.call(this, request, ...rest);
      };
      const pulumi = require("@pulumi/pulumi");
      const { MigrationRuntime, PostgresMigration } = require(${JSON.stringify(SDK)});
      pulumi.runtime.setMocks({ newResource: (a) => ({ id: a.name, state: a.inputs }), call: (a) => a.inputs })
        .then(() => {
          if (typeof PostgresMigration !== "function") throw new Error("no PostgresMigration");
          try {
            new MigrationRuntime("r", { server: "postgresql://u@h/postgres", targetPassword: "t", sourcePassword: "s" });
            console.log("constructed");
          } catch (err) {
            console.log(err.message);
          }
        });
    `;
    const out = execFileSync(process.execPath, ["-e", script], { encoding: "utf8" }).trim();
    assert.equal(
      out,
      "MigrationRuntime needs the @pulumi/kubernetes package: npm install @pulumi/kubernetes",
    );
  });
});
