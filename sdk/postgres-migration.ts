// PostgresMigration: a PostgreSQL → PostgreSQL migration declared as a Pulumi resource. Only the
// thin provider adapter is loaded here; the engine runs in Pulumi's dynamic-provider host.
import * as pulumi from "@pulumi/pulumi";
import { createMigrationProvider, type MigrationProvider } from "../provider/pulumi/index";
import type {
  DbDetails,
  MigrationMode,
  MigrationOption,
  MigrationState,
  MigrationSubstate,
  ValidationReport,
  VerificationReport,
  MigrationEvent,
  RuntimeOutput,
} from "../provider/spec/types";
import type { EndpointArgs, PostgresMigrationArgs } from "./args";

/** The outputs the resource declares (DESIGN.md "Outputs"); the provider fills them. */
const OUTPUT_NAMES = [
  "state",
  "substate",
  "migrationMode",
  "migrationOption",
  "latencySeconds",
  "startedOn",
  "endedOn",
  "error",
  "validation",
  "dbDetails",
  "verification",
  "cutoverLsn",
  "events",
  "warnings",
  "workerLog",
  "runtimes",
] as const;

/** The endpoint with its password marked secret (kept structured so previews show the rest). */
function withSecretPassword(endpoint: pulumi.Input<EndpointArgs>): pulumi.Input<EndpointArgs> {
  if (pulumi.Output.isInstance(endpoint) || endpoint instanceof Promise) {
    return pulumi.secret(endpoint) as pulumi.Output<EndpointArgs>;
  }
  const { password } = endpoint;
  return { ...endpoint, password: password === undefined ? password : pulumi.secret(password) };
}

function passwordOf(endpoint: pulumi.Input<EndpointArgs>): pulumi.Output<string | undefined> {
  return pulumi.output(endpoint).apply((e) => e.password);
}

/** Module and type of the resource; `pulumi.dynamic.Resource` registers them as RESOURCE_TYPE. */
const MODULE = "pgmigrate";
const TYPE = "PostgresMigration";
export const RESOURCE_TYPE = `pulumi-nodejs:dynamic/${MODULE}:${TYPE}`;

/**
 * The dynamic provider of one migration. It remembers the passwords (as a secret, so Pulumi
 * stores the serialized provider encrypted) because `read` and `delete` only see the outputs,
 * and the resource's URN, which its diagnostics are attached to.
 * @internal Exported for tests.
 */
export function migrationProvider(
  args: PostgresMigrationArgs,
  urn?: pulumi.Input<string>,
): MigrationProvider {
  const credentials = pulumi.secret(
    pulumi
      .all([passwordOf(args.source), passwordOf(args.target)])
      .apply(([sourcePassword, targetPassword]) => ({ sourcePassword, targetPassword })),
  );
  return createMigrationProvider(credentials, urn === undefined ? undefined : pulumi.output(urn));
}

/**
 * An offline or online migration of PostgreSQL databases from `source` to `target`.
 *
 * `pulumi up` validates, copies schema and data under one snapshot and, online, keeps
 * replicating until `cutover: true`. `pulumi refresh` shows live latency and counters;
 * `pulumi destroy` cancels and rolls back an unfinished migration, or only forgets a finished one
 * (migrated data is never dropped).
 *
 * @example
 * ```ts
 * const migration = new PostgresMigration("orders", {
 *   source: { host: "old-db.example.com", username: "postgres", password: cfg.requireSecret("sourcePassword") },
 *   target: { host: server.fullyQualifiedDomainName, username: "pgadmin", password: cfg.requireSecret("targetPassword") },
 *   databases: ["orders"],
 *   mode: "Online",
 *   cutover: cfg.getBoolean("cutover") ?? false,
 * });
 * export const latency = migration.latencySeconds;
 * ```
 */
export class PostgresMigration extends pulumi.dynamic.Resource {
  /** Name of the migration on the target server. */
  declare public readonly migrationName: pulumi.Output<string>;
  /** InProgress, WaitingForUserAction, Canceled, Failed, ValidationFailed or Succeeded. */
  declare public readonly state: pulumi.Output<MigrationState>;
  /** The step within the state, e.g. MigratingData or WaitingForCutoverTrigger. */
  declare public readonly substate: pulumi.Output<MigrationSubstate>;
  /** Offline or Online. */
  declare public readonly migrationMode: pulumi.Output<MigrationMode>;
  /** Validate, Migrate or ValidateAndMigrate. */
  declare public readonly migrationOption: pulumi.Output<MigrationOption>;
  /** Online: how far the target is behind the source, in seconds (worst database); null before replication. */
  declare public readonly latencySeconds: pulumi.Output<number | null>;
  /** ISO timestamp of the start. */
  declare public readonly startedOn: pulumi.Output<string | null>;
  /** ISO timestamp of the end; null while the migration runs. */
  declare public readonly endedOn: pulumi.Output<string | null>;
  /** What went wrong, when it did. */
  declare public readonly error: pulumi.Output<string | null>;
  /** Premigration checks: server level and per database. */
  declare public readonly validation: pulumi.Output<ValidationReport | null>;
  /** Per-database progress: tables loaded, bytes and rows copied with rate and ETA, CDC counters, latency. */
  declare public readonly dbDetails: pulumi.Output<Record<string, DbDetails>>;
  /** Row-count (or checksum) comparison of source and target after the copy or cutover. */
  declare public readonly verification: pulumi.Output<VerificationReport | null>;
  /** The source WAL position the cutover stopped at (commits before it applied, none after); null before. */
  declare public readonly cutoverLsn: pulumi.Output<string | null>;
  /** The most recent events of the migration, oldest first (bounded). */
  declare public readonly events: pulumi.Output<readonly MigrationEvent[]>;
  /** The most recent warnings and errors: what the migration could not keep as on the source. */
  declare public readonly warnings: pulumi.Output<readonly MigrationEvent[]>;
  /** Where the worker on this machine writes its log (private to the user); null when none ran here. */
  declare public readonly workerLog: pulumi.Output<string | null>;
  /** The live runtimes serving the migration (host, pid, last heartbeat, units held); empty once ended. */
  declare public readonly runtimes: pulumi.Output<readonly RuntimeOutput[]>;

  /**
   * Declares a migration.
   * @param name Resource name; also the default `migrationName`.
   * @param args Source, target, databases and options.
   * @param opts Pulumi resource options (e.g. `dependsOn` the target server).
   */
  constructor(name: string, args: PostgresMigrationArgs, opts?: pulumi.CustomResourceOptions) {
    const outputs = Object.fromEntries(OUTPUT_NAMES.map((key) => [key, undefined]));
    // The URN the engine will give this resource: the host does not tell the provider.
    const urn = pulumi.createUrn(name, RESOURCE_TYPE, opts?.parent);
    super(
      migrationProvider(args, urn),
      name,
      {
        ...args,
        source: withSecretPassword(args.source),
        target: withSecretPassword(args.target),
        migrationName: args.migrationName ?? name,
        // Always in the inputs, so that setting it reads `~ cutover: false => true` in a preview.
        cutover: args.cutover ?? false,
        ...outputs,
      },
      opts,
      MODULE,
      TYPE,
    );
  }
}
