// Installs and upgrades the control schema: numbered DDL files from ./sql applied in order, each
// once, inside one transaction holding an advisory lock, recorded in pgmigrate.schema_version.
import fs from "node:fs";
import path from "node:path";
import { connect } from "../pg/connect";
import { MigrationError, pgFields, SQLSTATE } from "../pg/errors";
import { quoteIdent } from "../pg/ident";
import type { ControlLocation, Queryable } from "./db";

/** Arbitrary constant: serialises concurrent installers on one server. */
const INSTALL_LOCK_KEY = 0x70676d69; // "pgmi"

/** One versioned DDL file. */
export interface SchemaMigration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

// Compiled code reads dist/provider/control/sql (copied by the build); fall back to the
// sources so a bare `tsc` build and the published package (which ships both) work too.
function sqlDirectory(): string {
  const candidates = [
    path.join(__dirname, "sql"),
    path.join(__dirname, "..", "..", "..", "provider", "control", "sql"),
  ];
  const found = candidates.find((dir) => fs.existsSync(dir));
  if (!found)
    throw new MigrationError("control", `control schema DDL not found in ${candidates[0]}`);
  return found;
}

/** The DDL files, ordered by version. */
export function schemaMigrations(): SchemaMigration[] {
  const dir = sqlDirectory();
  return fs
    .readdirSync(dir)
    .map((file) => /^(\d+)_([\w-]+)\.sql$/.exec(file))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({
      version: Number(m[1]),
      name: m[2],
      sql: fs.readFileSync(path.join(dir, m[0]), "utf8"),
    }))
    .sort((a, b) => a.version - b.version);
}

/** Creates the control database when it is missing (never `postgres`, which always exists). */
export async function ensureControlDatabase(at: ControlLocation): Promise<void> {
  try {
    const probe = await connect(at.target, at.controlDatabase);
    await probe.end().catch(() => undefined);
    return;
  } catch (err) {
    if (pgFields(err).code !== SQLSTATE.invalidCatalogName || at.controlDatabase === "postgres") {
      throw MigrationError.wrap(
        "control",
        err,
        `cannot connect to the control database "${at.controlDatabase}"`,
      );
    }
  }
  const admin = await connect(at.target, "postgres");
  try {
    await admin.query(`CREATE DATABASE ${quoteIdent(at.controlDatabase)}`);
  } catch (err) {
    if (pgFields(err).code !== SQLSTATE.duplicateDatabase) {
      throw MigrationError.wrap(
        "control",
        err,
        `cannot create the control database "${at.controlDatabase}"; create it yourself or grant CREATEDB`,
      );
    }
  } finally {
    await admin.end().catch(() => undefined);
  }
}

/** The newest control schema version this code knows (the highest numbered DDL file). */
export function knownSchemaVersion(): number {
  return Math.max(0, ...schemaMigrations().map((m) => m.version));
}

function tooNew(installed: number, known: number): MigrationError {
  return new MigrationError(
    "control",
    `the pgmigrate control schema on this server is version ${installed}, newer than this ` +
      `pgmigrate understands (up to version ${known}); upgrade pgmigrate to manage these migrations`,
    { code: "PGM_SCHEMA_TOO_NEW" },
  );
}

/**
 * Refuses a control schema newer than this code: an old pgmigrate must not read or write a
 * layout it does not know. Nothing installed yet is fine (reads then find nothing).
 */
export async function checkSchemaVersion(db: Queryable): Promise<void> {
  let installed: number;
  try {
    const { rows } = await db.query<{ version: number | null }>(
      "SELECT max(version) AS version FROM pgmigrate.schema_version",
    );
    installed = rows[0]?.version ?? 0;
  } catch (err) {
    if (pgFields(err).code === SQLSTATE.undefinedTable) return;
    throw err;
  }
  const known = knownSchemaVersion();
  if (installed > known) throw tooNew(installed, known);
}

/** Versions already applied, ascending. */
export async function appliedVersions(db: Queryable): Promise<number[]> {
  const { rows } = await db.query<{ version: number }>(
    "SELECT version FROM pgmigrate.schema_version ORDER BY version",
  );
  return rows.map((r) => r.version);
}

async function recordVersion(db: Queryable, migration: SchemaMigration): Promise<void> {
  await db.query("INSERT INTO pgmigrate.schema_version (version, name) VALUES ($1, $2)", [
    migration.version,
    migration.name,
  ]);
}

/**
 * A target user who may not create (or use) the control schema where it was asked for
 * (typically a CREATEDB user on a managed server, in `postgres`, perhaps where another user
 * installed it): point it at a database of its own, which pgmigrate creates when missing.
 */
export function controlPrivilegeError(
  at: ControlLocation,
  err: unknown,
  action: "create" | "use",
): MigrationError {
  const user = quoteIdent(at.target.username);
  const database = quoteIdent(at.controlDatabase);
  const reason = err instanceof Error ? err.message : String(err);
  const grant =
    action === "create"
      ? `GRANT CREATE ON DATABASE ${database} TO ${user};`
      : `GRANT USAGE ON SCHEMA pgmigrate TO ${user}; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA pgmigrate TO ${user}; GRANT USAGE ON ALL SEQUENCES IN SCHEMA pgmigrate TO ${user};`;
  return new MigrationError(
    "control",
    `target user ${user} may not ${action} the pgmigrate control schema in database ${database} ` +
      `(${reason}): set controlDatabase to a database the user owns, e.g. "pgmigrate" ` +
      "(created by pgmigrate when missing, if the user has CREATEDB; on the command line, the " +
      "database of the --server URL: postgresql://…/pgmigrate), or have an administrator run " +
      `${grant} (in database ${database})`,
    { code: "PGM_CONTROL_PRIVILEGE", cause: err },
  );
}

/** Applies the DDL files not yet applied. Safe to run concurrently and repeatedly. */
export async function installControlSchema(at: ControlLocation): Promise<{ applied: number[] }> {
  await ensureControlDatabase(at);
  const client = await connect(at.target, at.controlDatabase);
  try {
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock($1)", [INSTALL_LOCK_KEY]);
    await client.query("CREATE SCHEMA IF NOT EXISTS pgmigrate");
    await client.query(
      `CREATE TABLE IF NOT EXISTS pgmigrate.schema_version (
         version integer PRIMARY KEY,
         name text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const versions = await appliedVersions(client);
    const known = knownSchemaVersion();
    const newest = Math.max(0, ...versions);
    if (newest > known) throw tooNew(newest, known);
    const done = new Set(versions);
    const applied: number[] = [];
    for (const migration of schemaMigrations()) {
      if (done.has(migration.version)) continue;
      await client.query(migration.sql);
      await recordVersion(client, migration);
      applied.push(migration.version);
    }
    await client.query("COMMIT");
    return { applied };
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    if (pgFields(err).code === SQLSTATE.insufficientPrivilege)
      throw controlPrivilegeError(at, err, "create");
    throw MigrationError.wrap("control", err, "installing the pgmigrate control schema");
  } finally {
    await client.end().catch(() => undefined);
  }
}
