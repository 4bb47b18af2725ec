// The one error type of the engine: what failed, in which phase, with PostgreSQL's fields.

/** SQLSTATE codes the engine reacts to, by name (never bare literals in logic). */
export const SQLSTATE = {
  invalidPassword: "28P01",
  invalidAuthorization: "28000",
  invalidCatalogName: "3D000",
  duplicateDatabase: "42P04",
  duplicateObject: "42710",
  duplicateSchema: "42P06",
  duplicateTable: "42P07",
  uniqueViolation: "23505",
  undefinedObject: "42704",
  undefinedTable: "42P01",
  undefinedColumn: "42703",
  insufficientPrivilege: "42501",
  objectInUse: "55006",
  adminShutdown: "57P01",
  crashShutdown: "57P02",
  cannotConnectNow: "57P03",
  tooManyConnections: "53300",
  connectionException: "08000",
  connectionDoesNotExist: "08003",
  connectionFailure: "08006",
  readOnlySqlTransaction: "25006",
  serializationFailure: "40001",
  deadlockDetected: "40P01",
  queryCanceled: "57014",
} as const;

/** Errors after which a retry on a new connection may succeed. */
export const TRANSIENT_CODES: readonly string[] = [
  SQLSTATE.adminShutdown,
  SQLSTATE.crashShutdown,
  SQLSTATE.cannotConnectNow,
  SQLSTATE.connectionException,
  SQLSTATE.connectionDoesNotExist,
  SQLSTATE.connectionFailure,
  SQLSTATE.serializationFailure,
  SQLSTATE.deadlockDetected,
];

const NODE_NETWORK_CODES = ["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH"];

export type MigrationPhase =
  | "input"
  | "control"
  | "validate"
  | "clone"
  | "schema"
  | "data"
  | "sequences"
  | "roles"
  | "replicate"
  | "cutover"
  | "verify"
  | "cancel"
  | "runtime";

/** PostgreSQL's error fields (node-postgres DatabaseError), when the failure came from a server. */
export interface PgErrorFields {
  readonly code?: string;
  readonly detail?: string;
  readonly hint?: string;
  readonly schema?: string;
  readonly table?: string;
  readonly column?: string;
  readonly constraint?: string;
}

export class MigrationError extends Error {
  override readonly name = "MigrationError";
  /** SQLSTATE when PostgreSQL reported one, else our own code (e.g. `PGM_INPUT`). */
  readonly code: string;
  readonly phase: MigrationPhase;
  readonly pg: PgErrorFields;

  constructor(
    phase: MigrationPhase,
    message: string,
    options: { code?: string; cause?: unknown; pg?: PgErrorFields } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.phase = phase;
    const fromCause = pgFields(options.cause);
    this.pg = { ...fromCause, ...options.pg };
    this.code = options.code ?? this.pg.code ?? "PGM_" + phase.toUpperCase();
  }

  /** Wraps anything thrown into a MigrationError for `phase`, keeping PostgreSQL's fields. */
  static wrap(phase: MigrationPhase, err: unknown, context?: string): MigrationError {
    if (err instanceof MigrationError) return err;
    const base = err instanceof Error ? err.message : String(err);
    const fields = pgFields(err);
    const where = fields.table
      ? ` (table ${fields.schema ? fields.schema + "." : ""}${fields.table})`
      : "";
    const message = `${context ? context + ": " : ""}${base}${where}`;
    return new MigrationError(phase, message, { cause: err });
  }
}

/** The PostgreSQL fields of an error thrown by node-postgres, if any. */
export function pgFields(err: unknown): PgErrorFields {
  if (typeof err !== "object" || err === null) return {};
  const e = err as Record<string, unknown>;
  const pick = (k: string): string | undefined =>
    typeof e[k] === "string" ? (e[k] as string) : undefined;
  const code = pick("code");
  return {
    code: code && /^[0-9A-Z]{5}$/.test(code) ? code : undefined,
    detail: pick("detail"),
    hint: pick("hint"),
    schema: pick("schema"),
    table: pick("table"),
    column: pick("column"),
    constraint: pick("constraint"),
  };
}

/**
 * True for connection losses and server restarts that a retry on a new connection can survive,
 * anywhere in the cause chain (clone, cdc and the control store wrap the driver's error).
 */
export function isTransient(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; depth < 5 && typeof e === "object" && e !== null; depth++) {
    if (isTransientOne(e)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

function isTransientOne(err: object): boolean {
  const code = (err as { code?: unknown }).code;
  if (
    typeof code === "string" &&
    (TRANSIENT_CODES.includes(code) || NODE_NETWORK_CODES.includes(code))
  ) {
    return true;
  }
  const message = (err as { message?: unknown }).message;
  return (
    typeof message === "string" &&
    /Connection terminated|terminating connection|server closed the connection|Client has encountered a connection error|the database system is (starting up|shutting down|in recovery mode)/i.test(
      message,
    )
  );
}
