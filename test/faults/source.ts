// The source data every fault run migrates: pgbench's tables (written to during the run), a bulk
// table large enough that the copy and its index builds take a while, and enough small objects
// that the schema (pre-data) step does too. Built once as a template; each run clones it.
import { initPgbench } from "../support/pgbench";
import type { PgServer } from "../support/postgres";

export const TEMPLATE_DATABASE = "faults_template";

/** Rows of public.bulk: the copy phase's length. */
export const BULK_ROWS = 200_000;
/** Small tables, each with a view and a function: the pre-data phase's length. */
const SMALL_OBJECTS = 300;

/** Creates and fills the template database on `source`. */
export async function buildTemplate(source: PgServer): Promise<void> {
  await source.query(`CREATE DATABASE ${TEMPLATE_DATABASE}`);
  await initPgbench(source, TEMPLATE_DATABASE, { scale: 1, historyPrimaryKey: true });
  await source.query(
    `CREATE TABLE public.bulk (id int PRIMARY KEY, batch int NOT NULL, payload text NOT NULL,
       created timestamptz NOT NULL DEFAULT '2026-01-01 00:00:00+00');
     INSERT INTO public.bulk (id, batch, payload)
       SELECT g, g % 97, repeat(md5(g::text), 2) FROM generate_series(1, ${BULK_ROWS}) g;
     CREATE INDEX bulk_batch ON public.bulk (batch, id);
     CREATE INDEX bulk_payload ON public.bulk (payload);
     CREATE INDEX bulk_created ON public.bulk (created, payload);
     CREATE TABLE public.counters (id serial PRIMARY KEY, label text NOT NULL);
     INSERT INTO public.counters (label) SELECT 'counter ' || g FROM generate_series(1, 50) g;
     CREATE SEQUENCE public.ticket_seq START 1000;
     SELECT setval('public.ticket_seq', 1234);
     CREATE SCHEMA small;
     DO $$ BEGIN
       FOR i IN 1..${SMALL_OBJECTS} LOOP
         EXECUTE format('CREATE TABLE small.t%s (id int PRIMARY KEY, note text)', i);
         EXECUTE format('INSERT INTO small.t%s VALUES (1, %L)', i, 'row of ' || i);
         EXECUTE format('CREATE VIEW small.v%s AS SELECT id, note FROM small.t%s', i, i);
         EXECUTE format('CREATE FUNCTION small.f%s(int) RETURNS int LANGUAGE sql IMMUTABLE AS %L',
                        i, 'SELECT $1 + ' || i);
       END LOOP;
     END $$;`,
    [],
    TEMPLATE_DATABASE,
  );
  await source.query("VACUUM ANALYZE", [], TEMPLATE_DATABASE);
}

/** A new source database for one run, a copy of the template. */
export async function cloneTemplate(source: PgServer, database: string): Promise<void> {
  await source.query(`CREATE DATABASE "${database}" TEMPLATE ${TEMPLATE_DATABASE}`);
}
