// What the target server offers to the databases about to land on it (extensions, collations,
// locales, existing databases), read once; and whether each target database may be written.
import type { Client } from "pg";
import { quoteIdent } from "../pg/ident";
import { CONTROL_SCHEMA } from "../pg/names";
import type { CheckResult, MigrationSpec } from "../spec/types";
import { CHECK, failed, succeeded, warning } from "./checks";
import type { TargetLocales } from "./compat";
import { normalizeLocale, systemCollationKey } from "./compat";
import { release, tryConnect } from "./connectivity";
import { majorOf } from "./server";
import { replicaRoleAllowed } from "./triggers";

export interface TargetCatalog {
  readonly extensionDefaults: ReadonlyMap<string, string>;
  /** Managed targets that allow-list extensions (Azure: azure.extensions); undefined elsewhere. */
  readonly extensionAllowList?: readonly string[];
  readonly locales: TargetLocales;
  readonly databases: ReadonlySet<string>;
  /** The target user may SET session_replication_role (so triggers stay quiet during apply). */
  readonly replicaRole: boolean;
  /** Every role of the target server. */
  readonly roles: ReadonlySet<string>;
  /** Roles the target user may give objects to (all for a superuser, else those it is a member of). */
  readonly ownerRoles: ReadonlySet<string>;
  /** lc_monetary a new database gets on the target (server and role default). */
  readonly lcMonetary: string;
}

export async function readTargetCatalog(
  client: Client,
  versionNum: number,
): Promise<TargetCatalog> {
  const extensions = await client.query<{ name: string; default_version: string | null }>(
    "SELECT name, default_version FROM pg_available_extensions",
  );
  const extensionDefaults = new Map<string, string>();
  for (const row of extensions.rows) {
    if (row.default_version !== null) extensionDefaults.set(row.name, row.default_version);
  }

  let extensionAllowList: string[] | undefined;
  if (versionNum >= 90_600) {
    const { rows } = await client.query<{ allow: string | null }>(
      "SELECT current_setting('azure.extensions', true) AS allow",
    );
    const allow = rows[0]?.allow;
    if (allow) extensionAllowList = allow.split(",").filter((e) => e.trim() !== "");
  }

  const provider = versionNum >= 100_000 ? "c.collprovider" : "'c'::\"char\"";
  const collations = await client.query<{
    name: string;
    provider: string;
    system: boolean;
    collate: string | null;
  }>(
    `SELECT c.collname AS name, ${provider} AS provider, n.nspname = 'pg_catalog' AS system,
            c.collcollate AS collate
       FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace`,
  );
  const systemCollations = new Set<string>();
  const libcLocales = new Set<string>();
  const providers = new Set<string>();
  for (const row of collations.rows) {
    providers.add(row.provider);
    if (row.system) systemCollations.add(systemCollationKey(row.name, row.provider));
    if (row.provider === "c" && row.collate) libcLocales.add(normalizeLocale(row.collate));
  }
  const dbs = await client.query<{ datname: string; datcollate: string; datctype: string }>(
    "SELECT datname, datcollate, datctype FROM pg_database",
  );
  for (const row of dbs.rows) {
    libcLocales.add(normalizeLocale(row.datcollate));
    libcLocales.add(normalizeLocale(row.datctype));
  }
  const replicaRole = await replicaRoleAllowed(client);
  const roles = await client.query<{ rolname: string; can_own: boolean }>(
    `SELECT r.rolname, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
                       OR pg_has_role(current_user, r.oid, 'MEMBER') AS can_own
       FROM pg_roles r`,
  );
  // The validation session leaves lc_monetary unpinned (validate/connectivity.ts).
  const monetary = await client.query<{ lc: string }>(
    "SELECT current_setting('lc_monetary') AS lc",
  );
  return {
    lcMonetary: monetary.rows[0].lc,
    replicaRole,
    roles: new Set(roles.rows.map((r) => r.rolname)),
    ownerRoles: new Set(roles.rows.filter((r) => r.can_own).map((r) => r.rolname)),
    extensionDefaults,
    extensionAllowList,
    locales: { major: majorOf(versionNum), systemCollations, libcLocales, providers },
    databases: new Set(dbs.rows.map((r) => r.datname)),
  };
}

const USER_TABLES_SQL = `
SELECT format('%I.%I', n.nspname, c.relname) AS name, count(*) OVER () AS total
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname !~ '^pg_(toast|temp_)'
   AND n.nspname <> ALL($1::text[])
 ORDER BY 1
 LIMIT 10`;

/** The target database must be absent or empty, unless the user asked to overwrite it. */
export async function targetDatabaseCheck(
  spec: MigrationSpec,
  database: string,
  catalog: TargetCatalog,
): Promise<CheckResult> {
  const name = quoteIdent(database);
  if (!catalog.databases.has(database)) {
    return succeeded(
      CHECK.targetDatabase,
      `database ${name} does not exist on the target and will be created`,
    );
  }
  const isControl = database === spec.controlDatabase;
  if (isControl && spec.overwriteDbsInTarget) {
    return failed(
      CHECK.targetDatabase,
      `database ${name} is the control database on the target (it holds the migration's state) and cannot be dropped and recreated: set controlDatabase to another database`,
    );
  }
  const session = await tryConnect(spec.target, database);
  if (!session.ok) return failed(CHECK.targetDatabase, session.message);
  try {
    // The validation session leaves default_transaction_read_only unpinned: this is what the
    // database's users would get. Overwritten databases are recreated without it.
    const readOnly = await session.client.query<{ on: boolean }>(
      "SELECT current_setting('default_transaction_read_only') = 'on' AS on",
    );
    if (readOnly.rows[0].on && !spec.overwriteDbsInTarget) {
      return failed(
        CHECK.targetDatabase,
        `database ${name} on the target is read-only (default_transaction_read_only = on): the migrated database would refuse its applications' writes; ALTER DATABASE ${name} RESET default_transaction_read_only (and ALTER ROLE ... RESET if set per role)`,
      );
    }
    const ignored = isControl ? [CONTROL_SCHEMA] : [];
    const { rows } = await session.client.query<{ name: string; total: string }>(USER_TABLES_SQL, [
      ignored,
    ]);
    if (rows.length === 0) {
      return succeeded(
        CHECK.targetDatabase,
        `database ${name} exists on the target and has no tables; it will be used`,
      );
    }
    const total = Number(rows[0].total);
    const names = rows.map((r) => r.name).join(", ");
    const sample = total > rows.length ? `${names} and ${total - rows.length} more` : names;
    if (spec.overwriteDbsInTarget) {
      return warning(
        CHECK.targetDatabase,
        `database ${name} exists on the target with ${total} table(s) (${sample}); it will be dropped and recreated (overwriteDbsInTarget)`,
      );
    }
    return failed(
      CHECK.targetDatabase,
      `database ${name} already exists on the target and has ${total} table(s) (${sample}): set overwriteDbsInTarget: true to drop and recreate it, or drop or rename it yourself`,
    );
  } finally {
    await release(session.client);
  }
}
