// Resource inputs: zod schemas, defaults, and the problems reported on exact properties.
// The provider's `check` and the CLI's properties file both end here.
import { z } from "zod";
import { MigrationError } from "../pg/errors";
import { migrationNameProblem } from "../pg/names";
import { didYouMean } from "./suggest";
import type { MigrationSpec } from "./types";

export const SSL_MODES = ["disable", "prefer", "require", "verify-ca", "verify-full"] as const;
export const MODES = ["Offline", "Online"] as const;
export const OPTIONS = ["Validate", "Migrate", "ValidateAndMigrate"] as const;
/** Tables larger than this on disk (heap bytes) are copied in block ranges by several workers. */
export const DEFAULT_SPLIT_TABLES_LARGER_THAN = 1024 ** 3;

/** The split threshold of a spec: 0 or absent means the default. */
export function splitThreshold(parallelism: { readonly splitTablesLargerThan?: number }): number {
  const bytes = parallelism.splitTablesLargerThan ?? 0;
  return bytes > 0 ? bytes : DEFAULT_SPLIT_TABLES_LARGER_THAN;
}

export const VERIFY_MODES = ["snapshot", "counts", "checksum", "none"] as const;
export const SERVER_TYPES = [
  "AWS_AURORA",
  "AWS_RDS",
  "AWS_EC2",
  "OnPremises",
  "AzureVM",
  "GCP_CloudSQL",
  "GCP_AlloyDB",
  "GCP_Compute",
  "EDB",
  "PostgreSQLSingleServer",
] as const;

const oneOf = (values: readonly string[], what: string) => {
  const message = `${what} must be one of ${values.map((v) => `"${v}"`).join(", ")}`;
  // A value of another type gets the same message (not "must be a string").
  return z.string({ error: message }).refine((v) => values.includes(v), { message });
};

export const endpointSchema = z
  .object({
    host: z.string().min(1, "host must not be empty: write the server's DNS name or IP address"),
    port: z.coerce
      .number()
      .int()
      .min(1, "port must be between 1 and 65535")
      .max(65535, "port must be between 1 and 65535")
      .default(5432),
    username: z.string().min(1, "username must not be empty"),
    password: z.string().optional(),
    sslMode: oneOf(SSL_MODES, "sslMode").default("prefer"),
    sslRootCert: z.string().min(1).optional(),
    serverType: oneOf(SERVER_TYPES, "serverType").optional(),
  })
  .strict();

const identifierList = z
  .array(
    z
      .string()
      .min(1, "a database name must not be empty")
      .max(63, "database names are at most 63 bytes"),
  )
  .min(1, 'databases must list at least one database, e.g. ["orders"]')
  .refine((dbs) => new Set(dbs).size === dbs.length, {
    message: "databases must not repeat a name",
  })
  .refine((dbs) => !dbs.some((d) => ["template0", "template1"].includes(d)), {
    message: "template0 and template1 cannot be migrated",
  });

/** The resource's inputs (camelCase, as in the SDK), before defaults. */
export const migrationInputSchema = z
  .object({
    migrationName: z
      .string()
      .superRefine((name, ctx) => {
        const problem = migrationNameProblem(name);
        if (problem) ctx.addIssue({ code: "custom", message: problem });
      })
      .optional(),
    source: endpointSchema,
    target: endpointSchema,
    databases: identifierList,
    mode: oneOf(MODES, "mode").default("Offline"),
    option: oneOf(OPTIONS, "option").default("ValidateAndMigrate"),
    overwriteDbsInTarget: z.boolean().default(false),
    cutover: z.boolean().default(false),
    parallelism: z
      .object({
        tables: z.number().int().min(1, "parallelism.tables must be at least 1").max(64).default(4),
        indexes: z
          .number()
          .int()
          .min(1, "parallelism.indexes must be at least 1")
          .max(64)
          .default(2),
        splitTablesLargerThan: z
          .number()
          .int("parallelism.splitTablesLargerThan must be a whole number of bytes")
          .min(0, "parallelism.splitTablesLargerThan must be 0 (the default) or more bytes")
          .optional(),
      })
      .strict()
      .default({ tables: 4, indexes: 2 }),
    migrateRoles: z.boolean().default(false),
    fixReplicaIdentity: z
      .literal("full", { message: 'fixReplicaIdentity must be "full" when set' })
      .optional(),
    verify: oneOf(VERIFY_MODES, "verify").default("snapshot"),
    controlDatabase: z.string().min(1).max(63).default("postgres"),
    runtime: z
      .object({
        /** `local` (default): the provider spawns a detached worker; `external`: `pgmigrate runtime` runs elsewhere; `pool`: runtimes without a migration name share the work. */
        kind: z.enum(["local", "external", "pool"]).default("local"),
        logDir: z.string().optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((input, ctx) => {
    if (input.cutover && input.mode === "Offline") {
      ctx.addIssue({
        code: "custom",
        path: ["cutover"],
        message: 'cutover applies to Online migrations only; remove it or set mode: "Online"',
      });
    }
  });

export type MigrationInput = z.input<typeof migrationInputSchema>;

/** One problem with the inputs, on the exact property (dotted path). */
export interface InputProblem {
  readonly property: string;
  readonly reason: string;
}

export type ResolveResult =
  | {
      readonly ok: true;
      readonly spec: MigrationSpec;
      readonly runtime: { kind: "local" | "external" | "pool"; logDir?: string };
    }
  | { readonly ok: false; readonly problems: readonly InputProblem[] };

/** The value at `path` of the raw input (undefined when absent). */
function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (typeof value !== "object" || value === null) return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/** What a value is, in a message (never the value: it may be a password). */
function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

function describeIssue(issue: z.core.$ZodIssue, input: unknown): string {
  if (issue.code === "invalid_type") {
    const given = valueAt(input, issue.path);
    if (given === undefined) return "is required";
    // A schema's own message (e.g. the choices of an enum) says more than the type.
    if (!issue.message.startsWith("Invalid input")) return issue.message;
    const expected = issue.expected === "array" || issue.expected === "object" ? "an" : "a";
    return `must be ${expected} ${issue.expected}, not ${kindOf(given)}`;
  }
  return issue.message;
}

/** Every input name, nested ones dotted: for suggestions when a key is misspelt. */
function knownKeys(path: readonly PropertyKey[]): string[] {
  const nested: Record<string, readonly string[]> = {
    source: Object.keys(endpointSchema.shape),
    target: Object.keys(endpointSchema.shape),
    parallelism: ["tables", "indexes", "splitTablesLargerThan"],
    runtime: ["kind", "logDir"],
  };
  if (path.length === 0) return Object.keys(migrationInputSchema.shape);
  return [...(nested[String(path[0])] ?? [])];
}

/** Validates inputs and applies defaults; `resourceName` is the default migration name. */
export function resolveSpec(input: unknown, resourceName?: string): ResolveResult {
  const parsed = migrationInputSchema.safeParse(input);
  if (!parsed.success) {
    return {
      ok: false,
      problems: parsed.error.issues.flatMap((issue) =>
        issue.code === "unrecognized_keys"
          ? issue.keys.map((key) => ({
              property: [...issue.path.map(String), key].join("."),
              reason: `unknown property "${key}"${didYouMean(key, knownKeys(issue.path))}: remove it or check its spelling`,
            }))
          : [
              {
                property: issue.path.map(String).join(".") || "(inputs)",
                reason: describeIssue(issue, input),
              },
            ],
      ),
    };
  }
  const v = parsed.data;
  const migrationName = v.migrationName ?? resourceName ?? "";
  const nameProblem = migrationNameProblem(migrationName);
  if (nameProblem) {
    return {
      ok: false,
      problems: [
        {
          property: "migrationName",
          reason: `${nameProblem}; set migrationName explicitly (the resource name "${resourceName}" cannot be used)`,
        },
      ],
    };
  }
  const spec: MigrationSpec = {
    migrationName,
    source: v.source as MigrationSpec["source"],
    target: v.target as MigrationSpec["target"],
    databases: v.databases,
    mode: v.mode as MigrationSpec["mode"],
    option: v.option as MigrationSpec["option"],
    overwriteDbsInTarget: v.overwriteDbsInTarget,
    cutover: v.cutover,
    parallelism: v.parallelism,
    migrateRoles: v.migrateRoles,
    fixReplicaIdentity: v.fixReplicaIdentity,
    verify: v.verify as MigrationSpec["verify"],
    controlDatabase: v.controlDatabase,
  };
  return {
    ok: true,
    spec,
    runtime: { kind: v.runtime?.kind ?? "local", logDir: v.runtime?.logDir },
  };
}

/** `--copy-units N`: a whole number, 0 or more; absent: undefined (each migration's parallelism). */
export function parseCopyUnits(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d{1,4}$/.test(text)) {
    throw new MigrationError(
      "input",
      `--copy-units must be a whole number (0 or more), not "${text}"`,
      {
        code: "PGM_INPUT",
      },
    );
  }
  return Number(text);
}
