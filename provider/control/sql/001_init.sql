-- Control store, version 1: migrations, per-database and per-table progress, events, lease.
-- Applied once inside a transaction holding the install advisory lock; never edit after release,
-- add 002_*.sql instead.

CREATE TABLE pgmigrate.migrations (
  name               text PRIMARY KEY,
  -- The resolved spec without passwords (publicSpec).
  spec               jsonb NOT NULL,
  -- Hash of the spec without passwords and `cutover`: "same migration" when re-created.
  spec_hash          text NOT NULL,
  mode               text NOT NULL,
  option             text NOT NULL,
  state              text NOT NULL,
  substate           text NOT NULL,
  requested_action   text CHECK (requested_action IN ('cutover', 'cancel')),
  requested_at       timestamptz,
  error              text,
  -- Target databases this migration created: the only ones a cancel drops.
  created_databases  text[] NOT NULL DEFAULT '{}',
  validation         jsonb,
  verification       jsonb,
  created_at         timestamptz NOT NULL DEFAULT now(),
  started_on         timestamptz,
  ended_on           timestamptz,
  updated_at         timestamptz NOT NULL DEFAULT now(),
  -- Runtime lease: one worker at a time, kept alive by heartbeats.
  lease_owner        text,
  heartbeat_at       timestamptz,
  worker_pid         integer,
  worker_host        text,
  worker_log         text,
  -- Last time a spawner started a worker; debounces concurrent spawners.
  spawned_at         timestamptz
);

CREATE INDEX migrations_active ON pgmigrate.migrations (created_at) WHERE ended_on IS NULL;

CREATE TABLE pgmigrate.databases (
  migration          text NOT NULL REFERENCES pgmigrate.migrations (name) ON DELETE CASCADE,
  name               text NOT NULL,
  position           integer NOT NULL,
  migration_state    text NOT NULL DEFAULT 'Queued',
  -- Internal resume point: pending, preparing, copying, copied, streaming, completed.
  step               text NOT NULL DEFAULT 'pending',
  copy_completed     boolean NOT NULL DEFAULT false,
  slot               text,
  consistent_point   text,
  cutover_lsn        text,
  applied_lsn        text,
  inserts            bigint NOT NULL DEFAULT 0,
  updates            bigint NOT NULL DEFAULT 0,
  deletes            bigint NOT NULL DEFAULT 0,
  truncates          bigint NOT NULL DEFAULT 0,
  applied_changes    bigint NOT NULL DEFAULT 0,
  incoming_changes   bigint NOT NULL DEFAULT 0,
  latency_seconds    double precision,
  lag_bytes          bigint,
  verification       jsonb,
  message            text NOT NULL DEFAULT '',
  started_on         timestamptz,
  ended_on           timestamptz,
  updated_at         timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (migration, name)
);

CREATE TABLE pgmigrate.tables (
  migration          text NOT NULL,
  database           text NOT NULL,
  schema_name        text NOT NULL,
  table_name         text NOT NULL,
  state              text NOT NULL CHECK (state IN ('queued', 'loading', 'completed', 'errored')),
  estimated_bytes    bigint NOT NULL DEFAULT 0,
  rows               bigint,
  bytes              bigint,
  error              text,
  started_at         timestamptz,
  ended_at           timestamptz,
  PRIMARY KEY (migration, database, schema_name, table_name),
  FOREIGN KEY (migration, database) REFERENCES pgmigrate.databases (migration, name)
    ON DELETE CASCADE
);

CREATE TABLE pgmigrate.events (
  id                 bigserial PRIMARY KEY,
  migration          text NOT NULL REFERENCES pgmigrate.migrations (name) ON DELETE CASCADE,
  at                 timestamptz NOT NULL DEFAULT clock_timestamp(),
  level              text NOT NULL CHECK (level IN ('info', 'warning', 'error')),
  database           text,
  message            text NOT NULL
);

CREATE INDEX events_by_migration ON pgmigrate.events (migration, id);
