// The migration definition alongside infrastructure: a Pulumi program whose stack config
// declares one PostgresMigration. Copy it into your own stack; there, import from
// "pulumi-postgres-migration" instead of "../../sdk". Built to dist/examples/config-driven/index.js (Pulumi.yaml `main`).
import * as pulumi from "@pulumi/pulumi";
import {
  PostgresMigration,
  type MigrationMode,
  type MigrationOption,
  type RuntimeArgs,
  type SslMode,
  type VerifyMode,
} from "../../sdk";

/** A server as written in stack config; its password is a separate secret key. */
interface ServerConfig {
  host: string;
  port?: number;
  username: string;
  sslMode?: SslMode;
  sslRootCert?: string;
  serverType?: string;
}

const config = new pulumi.Config();
const source = config.requireObject<ServerConfig>("source");
const target = config.requireObject<ServerConfig>("target");

const migration = new PostgresMigration(config.get("name") ?? "migration", {
  source: { ...source, password: config.requireSecret("sourcePassword") },
  target: { ...target, password: config.requireSecret("targetPassword") },
  databases: config.requireObject<string[]>("databases"),
  // Values are checked by the provider (`pulumi preview` reports bad ones on their property).
  mode: config.get("mode") as MigrationMode | undefined,
  option: config.get("option") as MigrationOption | undefined,
  cutover: config.getBoolean("cutover"),
  overwriteDbsInTarget: config.getBoolean("overwriteDbsInTarget"),
  migrateRoles: config.getBoolean("migrateRoles"),
  verify: config.get("verify") as VerifyMode | undefined,
  runtime: config.getObject<RuntimeArgs>("runtime"),
});

export const migrationName = migration.migrationName;
export const state = migration.state;
export const substate = migration.substate;
export const latencySeconds = migration.latencySeconds;
export const dbDetails = migration.dbDetails;
export const validation = migration.validation;
export const verification = migration.verification;
