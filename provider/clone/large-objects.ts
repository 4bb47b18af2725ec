// Large objects in the base copy: read under the copy's snapshot on the source (metadata from
// pg_largeobject_metadata, contents with lo_get in chunks) and written on the target with the
// same OIDs (lo_from_bytea, lo_put), then owners, grants and comments. Column values that hold
// an OID keep pointing at the same object. Changes after the snapshot are not replicated.
import type { Client } from "pg";
import { MigrationError } from "../pg/errors";
import { quoteIdent, quoteLiteral } from "../pg/ident";
import { beginAtSnapshot, hardClose, openSession } from "../pg/session";
import type { MigrationSpec } from "../spec/types";

/** Bytes read and written per round trip: any object size with bounded memory. */
const CHUNK = 1024 * 1024;

interface LargeObject {
  readonly oid: string;
  readonly owner: string;
  /** Explicit privileges (lomacl not null): grantee null is PUBLIC. Null: the owner's defaults. */
  readonly acl: { grantee: string | null; privilege: string; grantable: boolean }[] | null;
  readonly comment: string | null;
}

const METADATA_SQL = `
  SELECT m.oid::text AS oid, pg_catalog.pg_get_userbyid(m.lomowner) AS owner,
         CASE WHEN m.lomacl IS NULL THEN NULL ELSE
           COALESCE((SELECT json_agg(json_build_object(
                       'grantee', CASE WHEN a.grantee = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(a.grantee) END,
                       'privilege', a.privilege_type, 'grantable', a.is_grantable))
                       FROM pg_catalog.aclexplode(m.lomacl) AS a), '[]'::json) END AS acl,
         pg_catalog.obj_description(m.oid, 'pg_largeobject') AS comment
    FROM pg_catalog.pg_largeobject_metadata m ORDER BY m.oid`;

export interface CopiedLargeObjects {
  readonly count: number;
  readonly bytes: number;
  readonly warnings: string[];
}

/** Writes one object's contents on the target under its source OID, chunk by chunk. */
async function copyContents(source: Client, target: Client, oid: string): Promise<number> {
  let offset = 0;
  for (;;) {
    const { rows } = await source.query<{ chunk: Buffer }>(
      "SELECT pg_catalog.lo_get($1::oid, $2, $3) AS chunk",
      [oid, offset, CHUNK],
    );
    const chunk = rows[0].chunk;
    if (offset === 0) {
      await target.query("SELECT pg_catalog.lo_from_bytea($1::oid, $2::bytea)", [oid, chunk]);
    } else if (chunk.length > 0) {
      await target.query("SELECT pg_catalog.lo_put($1::oid, $2, $3::bytea)", [oid, offset, chunk]);
    }
    offset += chunk.length;
    if (chunk.length < CHUNK) return offset;
  }
}

/**
 * Owner (the target user stands in for a role missing on the target), explicit privileges
 * (grants to missing roles are left out) and comment of one object, as on the source.
 */
async function copyMetadata(
  target: Client,
  lo: LargeObject,
  roles: ReadonlySet<string>,
  targetUser: string,
  missing: Set<string>,
): Promise<void> {
  const name = `LARGE OBJECT ${Number(lo.oid)}`;
  let owner = targetUser;
  if (roles.has(lo.owner)) {
    if (lo.owner !== targetUser)
      await target.query(`ALTER ${name} OWNER TO ${quoteIdent(lo.owner)}`);
    owner = lo.owner;
  } else {
    missing.add(lo.owner);
  }
  if (lo.acl !== null) {
    // An explicit list replaces the owner's implicit rights: start from none, as the source.
    await target.query(`REVOKE ALL ON ${name} FROM ${quoteIdent(owner)}`);
    for (const item of lo.acl) {
      if (item.grantee !== null && !roles.has(item.grantee)) {
        missing.add(item.grantee);
        continue;
      }
      const grantee = item.grantee === null ? "PUBLIC" : quoteIdent(item.grantee);
      const option = item.grantable ? " WITH GRANT OPTION" : "";
      // privilege_type is SELECT or UPDATE, the only large object privileges.
      if (item.privilege !== "SELECT" && item.privilege !== "UPDATE") continue;
      await target.query(`GRANT ${item.privilege} ON ${name} TO ${grantee}${option}`);
    }
  }
  if (lo.comment !== null) {
    // COMMENT takes no parameter; escapeLiteral writes an E'' literal when needed.
    await target.query(`COMMENT ON ${name} IS ${quoteLiteral(lo.comment)}`);
  }
}

/**
 * Copies every large object of `database` as `snapshot` sees it, in one target transaction
 * (a failure leaves none behind). Returns counts and a warning naming roles missing on the
 * target (owners fell back to the target user; their grants were left out).
 */
export async function copyLargeObjects(
  spec: MigrationSpec,
  database: string,
  snapshot: string,
): Promise<CopiedLargeObjects> {
  const source = await openSession(spec.source, database, "pgmigrate large objects");
  let target: Client | undefined;
  try {
    await beginAtSnapshot(source, snapshot);
    const objects = (await source.query<LargeObject>(METADATA_SQL)).rows;
    if (objects.length === 0) return { count: 0, bytes: 0, warnings: [] };
    target = await openSession(spec.target, database, "pgmigrate large objects");
    const roles = new Set(
      (
        await target.query<{ name: string }>("SELECT rolname AS name FROM pg_catalog.pg_roles")
      ).rows.map((r) => r.name),
    );
    const missing = new Set<string>();
    let bytes = 0;
    await target.query("BEGIN");
    for (const lo of objects) {
      bytes += await copyContents(source, target, lo.oid);
      await copyMetadata(target, lo, roles, spec.target.username, missing);
    }
    await target.query("COMMIT");
    await source.query("COMMIT");
    const warnings =
      missing.size === 0
        ? []
        : [
            `database "${database}": large objects owned by or granted to roles missing on the target ` +
              `(${[...missing].sort().join(", ")}) are owned by "${spec.target.username}" and those grants were left out`,
          ];
    return { count: objects.length, bytes, warnings };
  } catch (err) {
    throw MigrationError.wrap("data", err, `copying the large objects of database "${database}"`);
  } finally {
    // Closing rolls back whatever is still open on either side.
    await source.end().catch(() => undefined);
    if (target) await hardClose(target);
  }
}
