// MigrationRuntime: pool runtimes (`pgmigrate runtime --server URL`, no migration name) as a
// Kubernetes Deployment, their passwords in a Secret. @pulumi/kubernetes is an optional peer
// dependency: only its types are imported here; the package is loaded when a runtime is declared.
import fs from "node:fs";
import path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import type * as k8s from "@pulumi/kubernetes";

/** The component's type token. */
export const MIGRATION_RUNTIME_TYPE = "pulumi-postgres-migration:index:MigrationRuntime";

/** The file `pgmigrate runtime --heartbeat-file` touches at every heartbeat (every 3 s). */
export const HEARTBEAT_FILE = "/tmp/pgmigrate-heartbeat";
/** A runtime whose heartbeat file is older than this is restarted by Kubernetes. */
export const HEARTBEAT_STALE_SECONDS = 30;
/** The image's user (Dockerfile): numeric, so runAsNonRoot can be checked. */
const RUNTIME_UID = 10001;
/** Secret keys the passwords are stored under. */
const TARGET_PASSWORD_KEY = "target-password";
const SOURCE_PASSWORD_KEY = "source-password";

/** CPU and memory of each runtime container, as Kubernetes quantities (e.g. "500m", "1Gi"). */
export interface RuntimeResourcesArgs {
  requests?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  limits?: pulumi.Input<Record<string, pulumi.Input<string>>>;
}

/** Arguments of {@link MigrationRuntime}. */
export interface MigrationRuntimeArgs {
  /**
   * The target server as `pgmigrate --server` takes it, without a password, e.g.
   * `postgresql://admin@pg.example.com:5432/postgres?sslmode=require` (the path is the control
   * database). Every active migration of that control store is served by the pool.
   */
  server: pulumi.Input<string>;
  /** The target's password; kept in the Secret only (env PGMIGRATE_TARGET_PASSWORD). */
  targetPassword: pulumi.Input<string>;
  /** The source's password; kept in the Secret only (env PGMIGRATE_SOURCE_PASSWORD). */
  sourcePassword: pulumi.Input<string>;
  /**
   * The pgmigrate image (this repository's Dockerfile, built and pushed by you); default
   * {@link defaultRuntimeImage}: a name this project does not publish, so give your own.
   */
  image?: pulumi.Input<string>;
  /** How many runtimes share the work; default 2. */
  replicas?: pulumi.Input<number>;
  /** Namespace of the Secret and the Deployment; default the provider's namespace. */
  namespace?: pulumi.Input<string>;
  /** Resources of each runtime; default requests cpu 500m, memory 512Mi, no limits. */
  resources?: pulumi.Input<RuntimeResourcesArgs>;
  /** Labels added to the Secret, the Deployment and its pods. */
  labels?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  /** Seconds a stopping runtime gets after SIGTERM before SIGKILL; default 60. */
  terminationGracePeriodSeconds?: pulumi.Input<number>;
}

/**
 * The image used when `image` is not given: `ghcr.io/pulumi-postgres-migration/pgmigrate:<the
 * package's version>`. Nobody publishes it for you: build the Dockerfile and push it there (or
 * under your own name, passed as `image`).
 */
export function defaultRuntimeImage(): string {
  // Compiled, this file is dist/sdk/runtime.js: the package's root is two levels up.
  const file = path.join(__dirname, "..", "..", "package.json");
  const { version } = JSON.parse(fs.readFileSync(file, "utf8")) as { version: string };
  return `ghcr.io/pulumi-postgres-migration/pgmigrate:${version}`;
}

/** The probe's command: fails when the heartbeat file is missing or older than the limit. */
export function heartbeatProbeCommand(): string[] {
  const find = `find ${HEARTBEAT_FILE} -newermt "-${HEARTBEAT_STALE_SECONDS} seconds" 2>/dev/null`;
  return ["sh", "-c", `test -n "$(${find})"`];
}

/** Refuses a server URL that is not a libpq URL or carries a password (it would be in the pod spec). */
function checkedServer(server: string): string {
  if (!/^postgres(ql)?:\/\//i.test(server)) {
    throw new Error(
      "MigrationRuntime: server must be a libpq URL like postgresql://user@host:5432/postgres",
    );
  }
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new Error("MigrationRuntime: server is not a valid URL");
  }
  if (url.password !== "" || url.searchParams.has("password")) {
    // The message never repeats the URL: it holds the password.
    throw new Error(
      "MigrationRuntime: server must not contain a password (it would be visible in the " +
        "Deployment); pass it as targetPassword",
    );
  }
  return server;
}

function loadKubernetes(): typeof k8s {
  try {
    return require("@pulumi/kubernetes") as typeof k8s;
  } catch (err) {
    const missing =
      (err as NodeJS.ErrnoException).code === "MODULE_NOT_FOUND" &&
      String((err as Error).message).includes("@pulumi/kubernetes");
    if (!missing) throw err;
    throw new Error(
      "MigrationRuntime needs the @pulumi/kubernetes package: npm install @pulumi/kubernetes",
      { cause: err },
    );
  }
}

/**
 * A pool of `pgmigrate runtime` processes on Kubernetes sharing the work of every active migration
 * whose control store is `server`: a Secret with the two passwords and a Deployment of `replicas`
 * pods of the pgmigrate image, non-root, read-only root file system, restarted when their
 * heartbeat stops. Give migrations served by it `runtime: { kind: "pool" }`.
 *
 * The Secret is auto-named: a changed password replaces it (the Kubernetes provider's default for
 * Secrets) and the Deployment rolls out with the new name.
 *
 * @example
 * ```ts
 * const runtime = new MigrationRuntime("pgmigrate", {
 *   server: "postgresql://admin@pg.example.com:5432/postgres?sslmode=require",
 *   targetPassword: cfg.requireSecret("targetPassword"),
 *   sourcePassword: cfg.requireSecret("sourcePassword"),
 *   image: "registry.example.com/pgmigrate:0.1.0",
 *   replicas: 3,
 * }, { provider: cluster.provider });
 * ```
 */
export class MigrationRuntime extends pulumi.ComponentResource {
  /** Name of the Deployment running the runtimes. */
  public readonly deploymentName: pulumi.Output<string>;
  /** Name of the Secret holding the passwords. */
  public readonly secretName: pulumi.Output<string>;
  /** Namespace of both. */
  public readonly namespace: pulumi.Output<string>;

  /**
   * Declares the Secret and the Deployment.
   * @param name Resource name; also the pods' `app.kubernetes.io/instance` label.
   * @param args Server, passwords, image and sizing.
   * @param opts Component options; `provider` (a Kubernetes provider) is used by both resources.
   */
  constructor(name: string, args: MigrationRuntimeArgs, opts?: pulumi.ComponentResourceOptions) {
    const kubernetes = loadKubernetes();
    // A URL known now is checked now (an Output is checked when it resolves, below).
    if (typeof args.server === "string") checkedServer(args.server);
    super(MIGRATION_RUNTIME_TYPE, name, {}, opts);

    const selector = {
      "app.kubernetes.io/name": "pgmigrate-runtime",
      "app.kubernetes.io/instance": name,
    };
    // The selector's labels win: the Deployment must select its own pods.
    const labels = pulumi.output(args.labels ?? {}).apply((own) => ({ ...own, ...selector }));
    const metadata = { namespace: args.namespace, labels };

    const secret = new kubernetes.core.v1.Secret(
      `${name}-passwords`,
      {
        metadata,
        type: "Opaque",
        stringData: pulumi.secret(
          pulumi.all([args.targetPassword, args.sourcePassword]).apply(([target, source]) => ({
            [TARGET_PASSWORD_KEY]: target,
            [SOURCE_PASSWORD_KEY]: source,
          })),
        ),
      },
      { parent: this },
    );
    const fromSecret = (key: string) => ({
      secretKeyRef: { name: secret.metadata.name, key },
    });
    // `find` is quick, but a busy node can delay an exec: 5 s before a probe counts as failed.
    const probe = { exec: { command: heartbeatProbeCommand() }, timeoutSeconds: 5 };

    const deployment = new kubernetes.apps.v1.Deployment(
      name,
      {
        metadata,
        spec: {
          replicas: args.replicas ?? 2,
          selector: { matchLabels: selector },
          // A new image stops every old runtime before starting new ones: two versions never
          // share one migration's work (leases hand it over; the pause is seconds).
          strategy: { type: "Recreate" },
          template: {
            metadata: { labels },
            spec: {
              // The runtime talks to PostgreSQL only, never to the Kubernetes API.
              automountServiceAccountToken: false,
              terminationGracePeriodSeconds: args.terminationGracePeriodSeconds ?? 60,
              // Spread over nodes when the cluster can: the point of several runtimes.
              topologySpreadConstraints: [
                {
                  maxSkew: 1,
                  topologyKey: "kubernetes.io/hostname",
                  whenUnsatisfiable: "ScheduleAnyway",
                  labelSelector: { matchLabels: selector },
                },
              ],
              securityContext: {
                runAsNonRoot: true,
                runAsUser: RUNTIME_UID,
                runAsGroup: RUNTIME_UID,
                seccompProfile: { type: "RuntimeDefault" },
              },
              containers: [
                {
                  name: "runtime",
                  image: args.image ?? defaultRuntimeImage(),
                  // The image's entrypoint is pgmigrate; a pool: no --migration-name.
                  args: pulumi
                    .output(args.server)
                    .apply((server) => [
                      "runtime",
                      "--server",
                      checkedServer(server),
                      "--heartbeat-file",
                      HEARTBEAT_FILE,
                    ]),
                  env: [
                    {
                      name: "PGMIGRATE_TARGET_PASSWORD",
                      valueFrom: fromSecret(TARGET_PASSWORD_KEY),
                    },
                    {
                      name: "PGMIGRATE_SOURCE_PASSWORD",
                      valueFrom: fromSecret(SOURCE_PASSWORD_KEY),
                    },
                  ],
                  resources: args.resources ?? { requests: { cpu: "500m", memory: "512Mi" } },
                  securityContext: {
                    runAsNonRoot: true,
                    allowPrivilegeEscalation: false,
                    readOnlyRootFilesystem: true,
                    capabilities: { drop: ["ALL"] },
                  },
                  // The heartbeat file and pg_dump's schema files: the only writable place.
                  volumeMounts: [{ name: "tmp", mountPath: "/tmp" }],
                  // Until the first heartbeat (connecting, upgrading the control store): 5 min.
                  startupProbe: { ...probe, periodSeconds: 5, failureThreshold: 60 },
                  livenessProbe: { ...probe, periodSeconds: 10, failureThreshold: 3 },
                },
              ],
              volumes: [{ name: "tmp", emptyDir: {} }],
            },
          },
        },
      },
      { parent: this },
    );

    this.deploymentName = deployment.metadata.name;
    this.secretName = secret.metadata.name;
    this.namespace = deployment.metadata.namespace;
    this.registerOutputs({
      deploymentName: this.deploymentName,
      secretName: this.secretName,
      namespace: this.namespace,
    });
  }
}
