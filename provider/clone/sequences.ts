// Sequence values: read from every sequence on the source and set on the target, so inserts on
// the target continue where the source stopped (end of an offline clone, online cutover).
import type { Client } from "pg";
import { withClient } from "../pg/connect";
import { MigrationError } from "../pg/errors";
import { qualify } from "../pg/ident";
import { migratedRelationSql } from "../pg/catalog";
import type { MigrationSpec } from "../spec/types";

interface SequenceValue {
  readonly schema: string;
  readonly name: string;
  readonly lastValue: string;
  readonly isCalled: boolean;
}

/** Sequences per UNION ALL query: one round trip for many, without an unbounded statement. */
const BATCH = 200;

/** User sequences (pg/catalog.ts: not extension members, not in system schemas or ours). */
async function listSequences(source: Client): Promise<{ schema: string; name: string }[]> {
  const { rows } = await source.query<{ schema: string; name: string }>(
    `SELECT n.nspname AS schema, c.relname AS name
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE ${migratedRelationSql(["S"])}
      ORDER BY 1, 2`,
  );
  return rows;
}

/**
 * last_value and is_called straight from each sequence relation, as pg_dump reads them
 * (pg_sequences would hide is_called and needs PostgreSQL 10).
 */
async function readValues(
  source: Client,
  sequences: readonly { schema: string; name: string }[],
): Promise<SequenceValue[]> {
  const values: SequenceValue[] = [];
  for (let i = 0; i < sequences.length; i += BATCH) {
    const batch = sequences.slice(i, i + BATCH);
    const sql = batch
      .map(
        (s, j) =>
          `SELECT ${j} AS i, last_value::text AS v, is_called AS c FROM ${qualify(s.schema, s.name)}`,
      )
      .join(" UNION ALL ");
    const { rows } = await source.query<{ i: number; v: string; c: boolean }>(sql);
    for (const row of rows) {
      const s = batch[row.i];
      values.push({ schema: s.schema, name: s.name, lastValue: row.v, isCalled: row.c });
    }
  }
  return values;
}

/** What syncSequences did: how many values it set, and the sequences the target lacks. */
export interface SequenceSync {
  readonly synced: number;
  /** Qualified names of source sequences with no counterpart on the target (created later). */
  readonly missing: readonly string[];
}

/**
 * Copies every sequence's last_value/is_called from source to target, listing the sequences
 * on the source now (not at the copy): one created on the source since, which the target lacks,
 * is reported in `missing` and the others are still set.
 */
export async function syncSequences(spec: MigrationSpec, database: string): Promise<SequenceSync> {
  try {
    const values = await withClient(
      spec.source,
      database,
      async (source) => readValues(source, await listSequences(source)),
      { applicationName: "pgmigrate sequences" },
    );
    if (values.length === 0) return { synced: 0, missing: [] };
    const { rows } = await withClient(
      spec.target,
      database,
      (target) =>
        target.query<{ synced: number; missing: string[] }>(
          `WITH t AS (
             SELECT s, n, v, c, to_regclass(format('%I.%I', s, n)) AS seq
               FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bool[]) AS t(s, n, v, c))
           SELECT (SELECT count(setval(seq, v, c))::int FROM t WHERE seq IS NOT NULL) AS synced,
                  (SELECT coalesce(array_agg(format('%I.%I', s, n) ORDER BY s, n), '{}')
                     FROM t WHERE seq IS NULL) AS missing`,
          [
            values.map((v) => v.schema),
            values.map((v) => v.name),
            values.map((v) => v.lastValue),
            values.map((v) => v.isCalled),
          ],
        ),
      { applicationName: "pgmigrate sequences" },
    );
    return { synced: rows[0].synced, missing: rows[0].missing };
  } catch (err) {
    throw MigrationError.wrap(
      "sequences",
      err,
      `copying sequence values of database "${database}"`,
    );
  }
}
