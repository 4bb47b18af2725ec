-- Control store, version 5: the latency history of online migrations (the console's chart).
-- The worker adds one sample per migration every few seconds while streaming and keeps only
-- the newest ones (control/latency.ts: LATENCY_SAMPLES_KEPT); IF NOT EXISTS makes a rerun harmless.
CREATE TABLE IF NOT EXISTS pgmigrate.latency_samples (
  migration          text NOT NULL REFERENCES pgmigrate.migrations (name) ON DELETE CASCADE,
  at                 timestamptz NOT NULL DEFAULT clock_timestamp(),
  -- The highest latency of the migration's change streams, as outputs report it.
  latency_seconds    float8 NOT NULL,
  -- WAL the streams have yet to apply, summed over the databases (null when unknown).
  lag_bytes          bigint,
  PRIMARY KEY (migration, at)
);

COMMENT ON TABLE pgmigrate.latency_samples IS
  'Latency samples of streaming migrations, newest kept per migration; written by the worker under its lease.';
