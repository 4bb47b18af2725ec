-- Control store, version 7: scale-out. A migration whose runtime is a pool (`runtime: { kind:
-- "pool" }`) is driven by one runtime holding its lease (the coordinator: state machine,
-- snapshot, change streams) while its copy is split into work units that every runtime of the
-- pool claims (FOR UPDATE SKIP LOCKED). Runtimes heartbeat here; a unit whose owner stopped
-- heartbeating is claimed again. Re-runnable.

ALTER TABLE pgmigrate.migrations DROP CONSTRAINT IF EXISTS migrations_runtime_kind_check;
ALTER TABLE pgmigrate.migrations ADD CONSTRAINT migrations_runtime_kind_check
  CHECK (runtime_kind IN ('local', 'external', 'pool'));
COMMENT ON COLUMN pgmigrate.migrations.runtime_kind IS
  'local: a detached worker on the machine that runs pulumi/pgmigrate, respawned when dead; external: `pgmigrate runtime` runs elsewhere and is never spawned; pool: never spawned, and its copy is shared by every `pgmigrate runtime` without a migration name.';

-- One row per live runtime process (`pgmigrate runtime`, a spawned worker).
CREATE TABLE IF NOT EXISTS pgmigrate.runtimes (
  id text PRIMARY KEY,
  host text NOT NULL,
  pid integer NOT NULL,
  -- The migration a named runtime serves; NULL: a pool runtime (every pool migration).
  migration text,
  started_at timestamptz NOT NULL DEFAULT now(),
  heartbeat_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS pgmigrate.work_units (
  id bigserial PRIMARY KEY,
  migration text NOT NULL REFERENCES pgmigrate.migrations (name) ON DELETE CASCADE,
  database text NOT NULL,
  -- snapshot: the slot/exported snapshot held while the database's copy runs (coordinator);
  -- copy: one table or one range of a table; stream: the database's change stream (coordinator).
  kind text NOT NULL CHECK (kind IN ('snapshot', 'copy', 'stream')),
  -- The snapshot a copy unit imports; units of an older snapshot are canceled, never mixed.
  snapshot text,
  -- What a copy unit copies (clone/ranges.ts CopyUnit), with its position in the plan.
  unit jsonb,
  seq integer NOT NULL DEFAULT 0,
  state text NOT NULL DEFAULT 'pending'
    CHECK (state IN ('pending', 'running', 'done', 'failed', 'canceled')),
  -- The runtime (pgmigrate.runtimes.id) running it.
  owner text,
  claims integer NOT NULL DEFAULT 0,
  -- The target backend of a running copy, ended before the unit is claimed again.
  target_pid integer,
  target_backend_start timestamptz,
  -- The target transaction that wrote the unit, recorded just before its COMMIT: whoever claims
  -- the unit again asks the server whether it committed (txid_status) instead of guessing.
  target_xid bigint,
  rows bigint NOT NULL DEFAULT 0,
  bytes bigint NOT NULL DEFAULT 0,
  error text,
  error_code text,
  -- Every runtime that ever ran this unit, in order (the store records who copied what).
  history text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz
);
-- Every insert or update of a unit takes the next version, so its coordinator reads only what
-- changed since its last look (a migration may have thousands of units).
CREATE SEQUENCE IF NOT EXISTS pgmigrate.work_units_version;
ALTER TABLE pgmigrate.work_units ADD COLUMN IF NOT EXISTS version bigint;
CREATE OR REPLACE FUNCTION pgmigrate.work_units_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.version := nextval('pgmigrate.work_units_version');
  RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS version ON pgmigrate.work_units;
CREATE TRIGGER version BEFORE INSERT OR UPDATE ON pgmigrate.work_units
  FOR EACH ROW EXECUTE PROCEDURE pgmigrate.work_units_version();
CREATE INDEX IF NOT EXISTS work_units_changes ON pgmigrate.work_units (migration, database, version);

CREATE INDEX IF NOT EXISTS work_units_claimable
  ON pgmigrate.work_units (id) WHERE state IN ('pending', 'running');
CREATE INDEX IF NOT EXISTS work_units_by_migration
  ON pgmigrate.work_units (migration, database, kind);

DROP TRIGGER IF EXISTS notify_change ON pgmigrate.work_units;
CREATE TRIGGER notify_change AFTER INSERT OR UPDATE ON pgmigrate.work_units
  FOR EACH ROW EXECUTE PROCEDURE pgmigrate.notify_change('migration');
