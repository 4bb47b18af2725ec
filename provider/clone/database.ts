// Target databases: created like the source (encoding, collation, ctype, locale provider),
// checked for emptiness, dropped on cancel/rollback.
import type { Client } from "pg";
import { userSchemaSql } from "../pg/catalog";
import { serverMajor, withClient } from "../pg/connect";
import { MigrationError, SQLSTATE, pgFields } from "../pg/errors";
import { quoteIdent, quoteLiteral } from "../pg/ident";
import { sleep } from "../pg/retry";
import type { MigrationSpec } from "../spec/types";

/** Where to connect to create or drop `database`: never the database itself. */
export function maintenanceDatabase(spec: MigrationSpec, database: string): string {
  if (spec.controlDatabase !== database) return spec.controlDatabase;
  return database === "postgres" ? "template1" : "postgres";
}

/** The source database's locale settings, read version-independently through to_jsonb. */
async function sourceLocale(spec: MigrationSpec, database: string): Promise<string[]> {
  const row = await withClient(spec.source, database, async (client) => {
    const { rows } = await client.query<{ d: Record<string, unknown>; encoding: string }>(
      `SELECT to_jsonb(d) AS d, pg_encoding_to_char(d.encoding) AS encoding
         FROM pg_database d WHERE d.datname = current_database()`,
    );
    return rows[0];
  });
  const d = row.d;
  const clauses = [
    `ENCODING ${quoteLiteral(row.encoding)}`,
    `LC_COLLATE ${quoteLiteral(String(d.datcollate))}`,
    `LC_CTYPE ${quoteLiteral(String(d.datctype))}`,
  ];
  // PostgreSQL 15+: databases may use ICU (datlocprovider 'i'); 17 renamed daticulocale to datlocale.
  const provider = d.datlocprovider;
  const locale = d.daticulocale ?? d.datlocale;
  if (provider === "i" && typeof locale === "string") {
    clauses.push("LOCALE_PROVIDER icu", `ICU_LOCALE ${quoteLiteral(locale)}`);
  }
  return clauses;
}

/**
 * Counts objects a migration would collide with: relations, functions and types outside system
 * schemas and ours (pg/catalog.ts), extensions other than plpgsql, schemas other than public.
 */
async function userObjectCount(target: Client): Promise<number> {
  const userSchema = userSchemaSql();
  const { rows } = await target.query<{ n: string }>(
    `SELECT ((SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${userSchema})
           + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE ${userSchema})
           + (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE ${userSchema})
           + (SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql')
           + (SELECT count(*) FROM pg_namespace n WHERE ${userSchema} AND n.nspname <> 'public'))::text AS n`,
  );
  return Number(rows[0].n);
}

/**
 * Creates the target database with the source's encoding, LC_COLLATE, LC_CTYPE (from template0);
 * drops it first only when spec.overwriteDbsInTarget. An existing empty database is used as is.
 */
export async function prepareTargetDatabase(
  spec: MigrationSpec,
  database: string,
): Promise<{ created: boolean }> {
  try {
    const exists = await withClient(spec.target, maintenanceDatabase(spec, database), async (c) => {
      const { rows } = await c.query("SELECT 1 FROM pg_database WHERE datname = $1", [database]);
      return rows.length > 0;
    });
    // The control database is never dropped, even with overwrite: it must merely be empty.
    if (exists && spec.overwriteDbsInTarget && database !== spec.controlDatabase) {
      await dropTargetDatabase(spec, database);
    } else if (exists) {
      const objects = await withClient(spec.target, database, userObjectCount);
      if (objects > 0) {
        throw new MigrationError(
          "clone",
          `target database "${database}" already exists and is not empty (${objects} objects): ` +
            `drop it, or set overwriteDbsInTarget: true to replace it`,
          { code: SQLSTATE.duplicateDatabase },
        );
      }
      return { created: false };
    }
    const clauses = await sourceLocale(spec, database);
    await withClient(spec.target, maintenanceDatabase(spec, database), (c) =>
      c.query(`CREATE DATABASE ${quoteIdent(database)} TEMPLATE template0 ${clauses.join(" ")}`),
    );
    return { created: true };
  } catch (err) {
    throw MigrationError.wrap("clone", err, `preparing target database "${database}"`);
  }
}

/** Drops a target database (cancel/rollback), ending its sessions first. Idempotent. */
export async function dropTargetDatabase(spec: MigrationSpec, database: string): Promise<void> {
  if (database === spec.controlDatabase) {
    throw new MigrationError(
      "cancel",
      `refusing to drop "${database}": it holds pgmigrate's records of this migration (controlDatabase)`,
    );
  }
  try {
    await withClient(spec.target, maintenanceDatabase(spec, database), async (c) => {
      if ((await serverMajor(c)) >= 13) {
        await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(database)} WITH (FORCE)`);
        return;
      }
      // Before 13: terminate, then drop; a session may sneak in between, so try a few times.
      for (let attempt = 1; ; attempt++) {
        await c.query(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
          [database],
        );
        try {
          await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(database)}`);
          return;
        } catch (err) {
          if (pgFields(err).code !== SQLSTATE.objectInUse || attempt >= 5) throw err;
          await sleep(200 * attempt);
        }
      }
    });
  } catch (err) {
    throw MigrationError.wrap("cancel", err, `dropping target database "${database}"`);
  }
}
