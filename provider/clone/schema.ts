// Schema of one database via pg_dump/pg_restore: dumped once (pre- and post-data) from the
// clone's snapshot into a custom-format file, restored in two passes around the data copy.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { OWN_SCHEMAS } from "../pg/catalog";
import { MigrationError } from "../pg/errors";
import { OBJECT_PREFIX } from "../pg/names";
import { processAlive } from "../pg/process";
import type { MigrationSpec } from "../spec/types";
import { dbnameConninfo, runTool, toolEnv, type DumpTools } from "../pg/dump-tools";

export { dbnameConninfo } from "../pg/dump-tools";

/** Schemas never copied: the control store and the apply bookkeeping live there. */
export const EXCLUDED_SCHEMAS: readonly string[] = OWN_SCHEMAS;

/** Where the dump and its filtered table of contents live (inside a temp dir the caller removes). */
export interface SchemaArchive {
  readonly file: string;
  readonly list: string;
}

const DUMP_DIR_PREFIX = "pgmigrate-clone-";

/**
 * A private temp directory for one clone's dump, named after this process. Directories of
 * processes that no longer exist (a worker killed with SIGKILL cannot clean up) are removed.
 */
export async function makeDumpDir(): Promise<string> {
  const tmp = os.tmpdir();
  const entries = await fs.readdir(tmp).catch(() => [] as string[]);
  for (const entry of entries) {
    const m = new RegExp(`^${DUMP_DIR_PREFIX}(\\d+)-`).exec(entry);
    if (m && !processAlive(Number(m[1]))) {
      await fs.rm(path.join(tmp, entry), { recursive: true, force: true }).catch(() => undefined);
    }
  }
  return fs.mkdtemp(path.join(tmp, `${DUMP_DIR_PREFIX}${process.pid}-`));
}

/**
 * Drops archive entries that must not be restored: our own publications (a source being migrated
 * online has one) and the built-in plpgsql extension, which exists in every database and whose
 * comment only a superuser may set (older pg_dump versions still dump it).
 */
export function filterToc(list: string): string {
  const ours = new RegExp(`\\bPUBLICATION( TABLE| TABLES IN SCHEMA)? .*\\b${OBJECT_PREFIX}`);
  const plpgsql = /\b(EXTENSION - plpgsql|COMMENT - EXTENSION plpgsql)\b/;
  return list
    .split("\n")
    .filter((line) => line.startsWith(";") || !(ours.test(line) || plpgsql.test(line)))
    .join("\n");
}

/** pg_dump of the schema (pre- and post-data, no table data) as of `snapshot`. */
export async function dumpSchema(args: {
  tools: DumpTools;
  spec: MigrationSpec;
  database: string;
  snapshot: string;
  dir: string;
  signal?: AbortSignal;
}): Promise<SchemaArchive> {
  const { tools, spec, database, snapshot, dir, signal } = args;
  const file = path.join(dir, "schema.dump");
  const list = path.join(dir, "schema.list");
  const secrets = [spec.source.password, spec.target.password];
  try {
    await runTool(
      tools.pgDump,
      [
        "--format=custom",
        // Both sections, not --schema-only: that would also drop REFRESH MATERIALIZED VIEW.
        "--section=pre-data",
        "--section=post-data",
        `--snapshot=${snapshot}`,
        // Exact names (pg_dump patterns: only * ? and " are special; our names have none).
        ...EXCLUDED_SCHEMAS.map((schema) => `--exclude-schema=${schema}`),
        // Subscriptions would point the target at someone else's publisher.
        "--no-subscriptions",
        // Large object contents are data; without them the target would get empty objects.
        "-B", // --no-blobs (renamed --no-large-objects in 16; the short flag is stable)
        ...(tools.major >= 10 ? ["--no-sync"] : []),
        `--file=${file}`,
        `--dbname=${dbnameConninfo(database)}`,
      ],
      await toolEnv({ endpoint: spec.source, database, privateDir: dir }),
      secrets,
      signal,
    );
    const toc = await runTool(
      tools.pgRestore,
      ["--list", file],
      // Reads the archive only: no server, no password.
      await toolEnv(),
      secrets,
      signal,
    );
    await fs.writeFile(list, filterToc(toc));
    return { file, list };
  } catch (err) {
    throw MigrationError.wrap("schema", err, `dumping the schema of database "${database}"`);
  }
}

/**
 * Restores one section into the target database. Ownership and grants are always left out here:
 * objects belong to the target user until restorePrivileges (privileges.ts) applies the source's
 * owners and ACLs item by item, skipping only roles missing on the target. Tablespaces are never
 * restored: managed targets have none of the source's. Stops at the first error so a failed
 * schema never passes for done.
 */
export async function restoreSection(args: {
  tools: DumpTools;
  spec: MigrationSpec;
  database: string;
  archive: SchemaArchive;
  section: "pre-data" | "post-data";
  /** A restore list other than the archive's whole filtered one (a part of post-data). */
  list?: string;
  /** Parallel jobs; default 1 for pre-data, `parallelism.indexes` for post-data. */
  jobs?: number;
  /** PGOPTIONS of the restore's sessions (e.g. maintenance_work_mem). */
  pgOptions?: string;
  /** What is restored, for the error message; default the section. */
  what?: string;
  signal?: AbortSignal;
}): Promise<void> {
  const { tools, spec, database, archive, section, signal } = args;
  const jobs = args.jobs ?? (section === "post-data" ? Math.max(1, spec.parallelism.indexes) : 1);
  const env = await toolEnv({
    endpoint: spec.target,
    database,
    privateDir: path.dirname(archive.file),
  });
  if (args.pgOptions) env.PGOPTIONS = `${env.PGOPTIONS ?? ""} ${args.pgOptions}`.trim();
  try {
    await runTool(
      tools.pgRestore,
      [
        `--section=${section}`,
        "--exit-on-error",
        "--no-tablespaces",
        "--no-owner",
        "--no-privileges",
        ...(jobs > 1 ? [`--jobs=${jobs}`] : []),
        `--use-list=${args.list ?? archive.list}`,
        `--dbname=${dbnameConninfo(database)}`,
        archive.file,
      ],
      env,
      [spec.source.password, spec.target.password],
      signal,
    );
  } catch (err) {
    const error = MigrationError.wrap(
      "schema",
      err,
      `restoring ${args.what ?? section} of database "${database}"`,
    );
    if (/role "[^"]+" does not exist/.test(error.message)) {
      throw new MigrationError(
        "schema",
        `${error.message}\nCreate the role on the target, or run with migrateRoles: true so the ` +
          `migration creates the roles that own objects before restoring the schema.`,
        { cause: err },
      );
    }
    throw error;
  }
}
