// Shared vocabulary of the engine: the resolved migration spec, states, reports and outputs.
// Names follow the reference service (Azure Database for PostgreSQL migration service).
import type { MigrationState, MigrationSubstate } from "./states";

/** libpq sslmode values we accept. */
export type SslMode = "disable" | "prefer" | "require" | "verify-ca" | "verify-full";

/** Where a source or target server is, and how to log in. */
export interface Endpoint {
  readonly host: string;
  readonly port: number;
  readonly username: string;
  /** Never stored, logged or returned; passed to child processes through the environment. */
  readonly password?: string;
  readonly sslMode: SslMode;
  /** PEM file path (verify-ca / verify-full). */
  readonly sslRootCert?: string;
  /** For the source: AWS_AURORA, AWS_RDS, OnPremises, AzureVM, GCP_CloudSQL, ... */
  readonly serverType?: string;
}

/**
 * Where the worker runs: `local` (spawned detached, respawned when dead), `external` (one
 * `pgmigrate runtime` started elsewhere) or `pool` (never spawned; every `pgmigrate runtime`
 * without a migration name shares its work: the copy is split into claimable units).
 */
export type RuntimeKind = "local" | "external" | "pool";

export interface RuntimeOptions {
  readonly kind: RuntimeKind;
  /** Directory of a local worker's log file (default: $XDG_STATE_HOME/pgmigrate or ~/.local/state/pgmigrate). */
  readonly logDir?: string;
}

export type MigrationMode = "Offline" | "Online";
export type MigrationOption = "Validate" | "Migrate" | "ValidateAndMigrate";
/**
 * "snapshot" (default): every table's rows hashed on both sides under the copy's exported
 * snapshot right after the base copy, then counts at cutover; "checksum": the same, with full
 * checksums at cutover; "counts": counts only; "none".
 */
export type VerifyMode = "snapshot" | "counts" | "checksum" | "none";

/** A fully resolved migration, defaults applied. Contains passwords: never persist as is. */
export interface MigrationSpec {
  readonly migrationName: string;
  readonly source: Endpoint;
  readonly target: Endpoint;
  readonly databases: readonly string[];
  readonly mode: MigrationMode;
  readonly option: MigrationOption;
  readonly overwriteDbsInTarget: boolean;
  readonly cutover: boolean;
  readonly parallelism: {
    readonly tables: number;
    readonly indexes: number;
    /** Bytes on disk above which a table is copied in block ranges; 0 or absent: DEFAULT_SPLIT_TABLES_LARGER_THAN. */
    readonly splitTablesLargerThan?: number;
  };
  readonly migrateRoles: boolean;
  /** "full": tables without a usable replica identity get REPLICA IDENTITY FULL (online). */
  readonly fixReplicaIdentity?: "full";
  readonly verify: VerifyMode;
  /** Database on the target server holding the `pgmigrate` control schema. */
  readonly controlDatabase: string;
}

/** States live with their predicates in ./states; re-exported as part of the vocabulary. */
export type { MigrationState, MigrationSubstate, RequestedAction } from "./states";

export type CheckState = "Succeeded" | "Warning" | "Failed";

/** One premigration check. Expected outcomes are data, not exceptions. */
export interface CheckResult {
  readonly type: string;
  readonly state: CheckState;
  readonly messages: readonly string[];
}

export interface DatabaseValidation {
  readonly databaseName: string;
  readonly summary: readonly CheckResult[];
}

export interface ValidationReport {
  /** Worst state over all checks. */
  readonly status: CheckState;
  readonly serverLevel: readonly CheckResult[];
  readonly databaseLevel: readonly DatabaseValidation[];
}

export type TableLoadState = "queued" | "loading" | "completed" | "errored";

export interface TableVerification {
  readonly databaseName: string;
  readonly table: string;
  /** "snapshot": row hashes under the copy's snapshot; "counts"/"checksum": at cutover or after an offline copy. */
  readonly method: "snapshot" | "counts" | "checksum";
  readonly sourceRows: number;
  readonly targetRows: number;
  readonly match: boolean;
  /** On a mismatch found by "snapshot": the first differing key, e.g. `(42)`, or what differs. */
  readonly difference?: string;
  /** Set when the table was not compared (e.g. the source was still being written). */
  readonly skippedReason?: string;
}

export interface VerificationReport {
  readonly status: "Succeeded" | "Failed" | "Skipped";
  readonly tables: readonly TableVerification[];
}

/** Per-database output, as in the reference service's `dbDetails`. */
export interface DbDetails {
  readonly databaseName: string;
  readonly migrationState: string;
  readonly fullLoadQueuedTables: number;
  readonly fullLoadLoadingTables: number;
  readonly fullLoadCompletedTables: number;
  readonly fullLoadErroredTables: number;
  readonly cdcInsertCounter: number;
  readonly cdcUpdateCounter: number;
  readonly cdcDeleteCounter: number;
  /** Changes (rows inserted, updated, deleted, truncations) applied and committed on the target since replication started: a running total. */
  readonly appliedChanges: number;
  /**
   * Changes received from the source and not yet applied on the target: the backlog, 0 when
   * the target has caught up (watch it fall before a cutover). Not a running total.
   */
  readonly incomingChanges: number;
  readonly latencySeconds: number | null;
  /** Where this database's cutover stops: commits at or after it are not applied (null before the cutover). */
  readonly cutoverLsn: string | null;
  /** Commit LSN of the last source transaction applied on the target (≤ cutoverLsn once cut over). */
  readonly lastAppliedCommitLsn: string | null;
  /** That transaction's commit time on the source (ISO 8601). */
  readonly lastAppliedCommitTime: string | null;
  /**
   * Table data copied so far: COPY text bytes and rows counted on the stream (completed and
   * loading tables; the rows of a loading table as of its last report, every few seconds).
   */
  readonly fullLoadBytesCopied: number;
  readonly fullLoadRowsCopied: number;
  /** Estimated COPY text bytes of all tables (never below fullLoadBytesCopied). */
  readonly fullLoadTotalBytes: number;
  /** Whole percent of the table data copied: at most 99 until every table committed, then 100; null without tables. */
  readonly fullLoadPercent: number | null;
  /** Recent copy rate of the tables loading now; null when none is loading or reporting. */
  readonly fullLoadBytesPerSecond: number | null;
  /** Seconds left at that rate; null when unknown. */
  readonly fullLoadEtaSeconds: number | null;
  readonly message: string;
  readonly startedOn: string | null;
  readonly endedOn: string | null;
}

/** One entry of a migration's event log, as outputs show it. */
export interface MigrationEvent {
  /** ISO 8601 time. */
  readonly at: string;
  readonly level: "info" | "warning" | "error";
  /** The database it concerns, or null for the whole migration. */
  readonly database: string | null;
  readonly message: string;
}

/** Everything a user sees (Pulumi outputs, `--json`). Never contains a password. */
export interface MigrationOutputs {
  readonly migrationName: string;
  readonly state: MigrationState;
  readonly substate: MigrationSubstate;
  readonly migrationMode: MigrationMode;
  readonly migrationOption: MigrationOption;
  readonly latencySeconds: number | null;
  readonly startedOn: string | null;
  readonly endedOn: string | null;
  readonly error: string | null;
  readonly validation: ValidationReport | null;
  readonly dbDetails: Readonly<Record<string, DbDetails>>;
  readonly verification: VerificationReport | null;
  /**
   * The source WAL position the cutover stopped at: every transaction committed before it is on
   * the target, none committed at or after it (writes after it are the user's to redirect).
   * Null before the cutover.
   */
  readonly cutoverLsn: string | null;
  /** The most recent events (state changes, reconnections, notes), oldest first; bounded. */
  readonly events: readonly MigrationEvent[];
  /** The most recent warnings and errors (owners that fell back, settings not copied, …); bounded. */
  readonly warnings: readonly MigrationEvent[];
  /** The log file of the last local worker started for this migration (null: none, or external). */
  readonly workerLog: string | null;
  /** The live runtimes serving the migration (pool runtimes share its copy); empty once ended. */
  readonly runtimes: readonly RuntimeOutput[];
}

/** A runtime process serving a migration, with the work units it runs now. */
export interface RuntimeOutput {
  readonly host: string;
  readonly pid: number;
  /** ISO time of its last heartbeat (every 3 s while alive). */
  readonly lastHeartbeat: string;
  /** It holds the migration's lease: state machine, snapshots, change streams. */
  readonly coordinator: boolean;
  /** The units it runs now: "database: schema.table[ range i/n]", "database: snapshot|stream". */
  readonly units: readonly string[];
  /** Copy units (tables, ranges) of this migration it completed. */
  readonly unitsDone: number;
}

/** A table as the clone and the progress report see it. */
export interface TableRef {
  readonly schema: string;
  readonly name: string;
}

/**
 * Where engine phases report progress. The control store implements it; tests may collect
 * in memory. Implementations must not throw for reporting failures that are not fatal.
 */
export interface ProgressSink {
  event(level: "info" | "warning" | "error", message: string, database?: string): Promise<void>;
  /** The full list of tables about to be copied for one database (all `queued`). */
  tablesQueued(
    database: string,
    tables: readonly (TableRef & {
      readonly estimatedBytes: number;
      readonly estimatedRows?: number;
    })[],
  ): Promise<void>;
  tableState(
    database: string,
    table: TableRef,
    state: TableLoadState,
    detail?: {
      rows?: number;
      bytes?: number;
      error?: string;
      /** Recent COPY rate, with a loading report. */
      bytesPerSecond?: number | null;
    },
  ): Promise<void>;
}

/** What testing one server's connection found (the console's Test connection): data, never thrown. */
export type ConnectionProbe =
  | {
      readonly status: "Succeeded";
      readonly message: string;
      /** Databases a migration could copy (not templates, connections allowed), by name. */
      readonly databases: readonly string[];
    }
  | { readonly status: "Failed"; readonly message: string };
