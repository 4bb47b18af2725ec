// A pool of pgmigrate runtimes on Kubernetes and an online migration they carry out, in one stack.
// MigrationRuntime declares a Secret (the passwords) and a Deployment running
// `pgmigrate runtime --server <target>`; the migration's `runtime: { kind: "pool" }` tells the
// provider not to start a worker of its own: the pods share the work.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { MigrationRuntime, PostgresMigration } from "pulumi-postgres-migration";

type SslMode = "disable" | "prefer" | "require" | "verify-ca" | "verify-full";

const config = new pulumi.Config();
const databases = config.getObject<string[]>("databases") ?? ["orders"];
const sslMode = (config.get("sslMode") ?? "require") as SslMode;
const controlDatabase = config.get("controlDatabase") ?? "postgres";
const source = {
  host: config.require("sourceHost"),
  port: config.getNumber("sourcePort") ?? 5432,
  username: config.get("sourceUser") ?? "postgres",
  password: config.requireSecret("sourcePassword"),
  sslMode,
};
const target = {
  host: config.require("targetHost"),
  port: config.getNumber("targetPort") ?? 5432,
  username: config.get("targetUser") ?? "postgres",
  password: config.requireSecret("targetPassword"),
  sslMode,
};

// The runtimes' --server: the target and its control database, never a password (the pods read
// the passwords from the Secret through their environment).
const server =
  `postgresql://${encodeURIComponent(target.username)}@${target.host}:${target.port}/` +
  `${encodeURIComponent(controlDatabase)}?sslmode=${sslMode}`;

const namespace = new k8s.core.v1.Namespace("pgmigrate", {
  metadata: { name: config.get("namespace") ?? "pgmigrate" },
});

const runtime = new MigrationRuntime("pgmigrate", {
  server,
  targetPassword: target.password,
  sourcePassword: source.password,
  image: config.require("image"),
  replicas: config.getNumber("replicas") ?? 3,
  namespace: namespace.metadata.name,
  resources: { requests: { cpu: "500m", memory: "512Mi" }, limits: { memory: "2Gi" } },
});

// dependsOn: the runtimes are up before the migration is created, and still up while
// `pulumi destroy` cancels and rolls back an unfinished migration (it is deleted first).
const migration = new PostgresMigration(
  "orders",
  {
    source,
    target,
    databases,
    mode: "Online",
    controlDatabase,
    runtime: { kind: "pool" },
    cutover: config.getBoolean("cutover") ?? false,
  },
  { dependsOn: [runtime] },
);

export const runtimeDeployment = runtime.deploymentName;
export const runtimeNamespace = runtime.namespace;
export const state = migration.state;
export const substate = migration.substate;
export const latencySeconds = migration.latencySeconds;
export const dbDetails = migration.dbDetails;
