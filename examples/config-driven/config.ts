// Every input of PostgresMigration read from stack config, typed: the key each input is read
// from (STACK_CONFIG_KEYS; the compiler fails when an input of the SDK has no key) and the
// reader. `pulumi config set fixReplicaIdentity full` and the like reach the resource.
import type * as pulumi from "@pulumi/pulumi";
import type {
  EndpointArgs,
  MigrationMode,
  MigrationOption,
  ParallelismArgs,
  PostgresMigrationArgs,
  RuntimeArgs,
  VerifyMode,
} from "../../sdk";

/** The stack config key of each input (passwords are separate secrets: `<server>Password`). */
export const STACK_CONFIG_KEYS = {
  source: "source",
  target: "target",
  databases: "databases",
  mode: "mode",
  option: "option",
  overwriteDbsInTarget: "overwriteDbsInTarget",
  cutover: "cutover",
  migrationName: "migrationName",
  parallelism: "parallelism",
  migrateRoles: "migrateRoles",
  fixReplicaIdentity: "fixReplicaIdentity",
  verify: "verify",
  controlDatabase: "controlDatabase",
  runtime: "runtime",
} as const satisfies { readonly [K in keyof Required<PostgresMigrationArgs>]: string };

/** What the program needs of `pulumi.Config` (a test passes a plain object). */
export interface StackConfig {
  get(key: string): string | undefined;
  getBoolean(key: string): boolean | undefined;
  getObject<T>(key: string): T | undefined;
  requireObject<T>(key: string): T;
  requireSecret(key: string): pulumi.Input<string>;
}

/** A server as written in stack config; its password is the secret `<key>Password`. */
export type ServerConfig = Omit<EndpointArgs, "password">;

const server = (config: StackConfig, key: string): EndpointArgs => ({
  ...config.requireObject<ServerConfig>(key),
  password: config.requireSecret(`${key}Password`),
});

/**
 * The resource's arguments from stack config. Values are checked by the provider: `pulumi
 * preview` reports a bad one on its property, so they are passed through as written.
 */
export function migrationArgs(config: StackConfig): PostgresMigrationArgs {
  const k = STACK_CONFIG_KEYS;
  const args: { [K in keyof Required<PostgresMigrationArgs>]: PostgresMigrationArgs[K] } = {
    source: server(config, k.source),
    target: server(config, k.target),
    databases: config.requireObject<string[]>(k.databases),
    mode: config.get(k.mode) as MigrationMode | undefined,
    option: config.get(k.option) as MigrationOption | undefined,
    overwriteDbsInTarget: config.getBoolean(k.overwriteDbsInTarget),
    cutover: config.getBoolean(k.cutover),
    migrationName: config.get(k.migrationName),
    parallelism: config.getObject<ParallelismArgs>(k.parallelism),
    migrateRoles: config.getBoolean(k.migrateRoles),
    fixReplicaIdentity: config.get(k.fixReplicaIdentity) as "full" | undefined,
    verify: config.get(k.verify) as VerifyMode | undefined,
    controlDatabase: config.get(k.controlDatabase),
    runtime: config.getObject<RuntimeArgs>(k.runtime),
  };
  return args;
}
