// The resource's arguments as users write them: every field a `pulumi.Input`, names and defaults
// as in DESIGN.md "Resource inputs". Validation happens in the provider's `check`.
import type * as pulumi from "@pulumi/pulumi";
import type { MigrationMode, MigrationOption, SslMode, VerifyMode } from "../provider/spec/types";

/** How to reach and log in to a source or target server. */
export interface EndpointArgs {
  /** DNS name or IP address of the server. */
  host: pulumi.Input<string>;
  /** TCP port; default 5432. */
  port?: pulumi.Input<number>;
  /** Login role. For the source it needs REPLICATION (or rds_replication) for online migrations. */
  username: pulumi.Input<string>;
  /**
   * The password. Always stored encrypted in the Pulumi state (the resource marks it secret
   * even when given as a plain string); never part of any output.
   */
  password: pulumi.Input<string>;
  /** libpq sslmode; default "prefer". */
  sslMode?: pulumi.Input<SslMode>;
  /** Path of a PEM file with the CA certificate (verify-ca / verify-full). */
  sslRootCert?: pulumi.Input<string>;
  /** Kind of source server: "AWS_AURORA", "AWS_RDS", "OnPremises", "AzureVM", "GCP_CloudSQL", … */
  serverType?: pulumi.Input<string>;
}

/** How many tables are copied and indexes built at once. */
export interface ParallelismArgs {
  /** Tables copied concurrently per database; default 4. */
  tables?: pulumi.Input<number>;
  /** Indexes built concurrently; default 2. */
  indexes?: pulumi.Input<number>;
  /**
   * Bytes on disk above which a table is split into ranges copied by several workers at once
   * under the same snapshot (ctid block ranges from PostgreSQL 14 sources, ranges of a one-column
   * integer primary key from older ones); default (or 0) 1 GiB.
   */
  splitTablesLargerThan?: pulumi.Input<number>;
}

/** Where the migration's worker runs. */
export interface RuntimeArgs {
  /**
   * "local" (default): the provider starts a detached worker on the machine running Pulumi and
   * restarts it when it died. "external": you run `pgmigrate runtime` elsewhere.
   * "pool": no worker is started for it; every `pgmigrate runtime --server` without a migration name (a pool, e.g. MigrationRuntime on Kubernetes) shares its work.
   */
  kind?: pulumi.Input<"local" | "external" | "pool">;
  /** Directory for the local worker's log (yours, not writable by others); default `$XDG_STATE_HOME/pgmigrate` or `~/.local/state/pgmigrate`. */
  logDir?: pulumi.Input<string>;
}

/** Arguments of {@link PostgresMigration}. */
export interface PostgresMigrationArgs {
  /** The server to migrate from (PostgreSQL 10 or newer; wal_level=logical for Online). */
  source: pulumi.Input<EndpointArgs>;
  /** The server to migrate to (same or newer major version). Holds the control store. */
  target: pulumi.Input<EndpointArgs>;
  /** Databases to migrate, e.g. ["orders"]. */
  databases: pulumi.Input<pulumi.Input<string>[]>;
  /** "Offline" (default): copy once. "Online": copy, then replicate until `cutover`. */
  mode?: pulumi.Input<MigrationMode>;
  /** "ValidateAndMigrate" (default), "Validate" (checks only) or "Migrate" (no checks). */
  option?: pulumi.Input<MigrationOption>;
  /** Replace target databases that already exist; default false. */
  overwriteDbsInTarget?: pulumi.Input<boolean>;
  /**
   * Online only: set to true (after writes to the source have stopped) to finish the
   * migration: drain, sync sequences, drop slot and publication, end `Succeeded`. Cannot be undone.
   */
  cutover?: pulumi.Input<boolean>;
  /** Name of the migration on the target server; default the resource name. Lowercase letters, digits, hyphens. */
  migrationName?: pulumi.Input<string>;
  /** Copy parallelism; changes apply in place. */
  parallelism?: pulumi.Input<ParallelismArgs>;
  /**
   * Create the source's roles missing on the target before the copy, so their objects keep their
   * owners and grants; default false (owners and grants of roles that exist are kept either way).
   */
  migrateRoles?: pulumi.Input<boolean>;
  /** "full": give tables without a usable replica identity REPLICA IDENTITY FULL (Online). */
  fixReplicaIdentity?: pulumi.Input<"full">;
  /**
   * How the result is verified. "snapshot" (default): right after the base copy, before any
   * replicated change is applied, every table's rows are hashed on the source under the copy's
   * snapshot and on the target (no downtime); a difference fails the migration naming the table
   * and the first differing key; at cutover row counts are compared. "checksum": the same, with
   * full checksums at cutover. "counts": row counts only. "none": no verification.
   */
  verify?: pulumi.Input<VerifyMode>;
  /** Database on the target holding the `pgmigrate` control schema; default "postgres". */
  controlDatabase?: pulumi.Input<string>;
  /** Where the worker runs; default local. */
  runtime?: pulumi.Input<RuntimeArgs>;
}
