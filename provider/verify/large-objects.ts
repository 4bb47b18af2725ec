// Large objects compared like a table: their count and an order-independent hash of each
// object's OID and contents (lo_get), and on a mismatch the first OID that differs.
import type { Client } from "pg";
import type { TableVerification } from "../spec/types";
import type { Measure, Pair } from "./measure";

/** How large objects appear in the verification report, next to the tables. */
export const LARGE_OBJECTS = "pg_catalog.pg_largeobject";

// lo_get reads a whole object: objects over 1 GB cannot be hashed this way (bytea's limit).
const MEASURE_SQL = `
  SELECT count(*)::text AS rows,
         COALESCE(sum(('x' || substr(md5(m.oid::text || ':' || md5(pg_catalog.lo_get(m.oid))), 1, 16))::bit(64)::bigint), 0)::text AS hash
    FROM pg_catalog.pg_largeobject_metadata m`;

const OBJECTS_SQL = `
  SELECT m.oid::text AS oid, md5(pg_catalog.lo_get(m.oid)) AS h
    FROM pg_catalog.pg_largeobject_metadata m ORDER BY m.oid`;

async function measureObjects(client: Client): Promise<Measure> {
  const { rows } = await client.query<{ rows: string; hash: string }>(MEASURE_SQL);
  return { rows: Number(rows[0].rows), hash: rows[0].hash };
}

async function firstDifferingObject(pair: Pair): Promise<string | undefined> {
  const [onSource, onTarget] = await Promise.all(
    [pair.source, pair.target].map(async (c) => {
      const { rows } = await c.query<{ oid: string; h: string }>(OBJECTS_SQL);
      return new Map(rows.map((r) => [r.oid, r.h]));
    }),
  );
  for (const [oid, h] of onSource) {
    if (!onTarget.has(oid)) return `large object ${oid} is missing on the target`;
    if (onTarget.get(oid) !== h) return `large object ${oid} differs`;
  }
  for (const oid of onTarget.keys()) {
    if (!onSource.has(oid)) return `large object ${oid} exists only on the target`;
  }
  return undefined;
}

/**
 * Compares the large objects of `database` (source inside the snapshot's transaction); no entry
 * when neither side has any.
 */
export async function verifyLargeObjects(
  pair: Pair,
  database: string,
): Promise<TableVerification | undefined> {
  const [onSource, onTarget] = await Promise.all([
    measureObjects(pair.source),
    measureObjects(pair.target),
  ]);
  if (onSource.rows === 0 && onTarget.rows === 0) return undefined;
  const match = onSource.rows === onTarget.rows && onSource.hash === onTarget.hash;
  const difference = match ? undefined : await firstDifferingObject(pair);
  return {
    databaseName: database,
    table: LARGE_OBJECTS,
    method: "snapshot",
    sourceRows: onSource.rows,
    targetRows: onTarget.rows,
    match,
    ...(difference === undefined ? {} : { difference }),
  };
}
