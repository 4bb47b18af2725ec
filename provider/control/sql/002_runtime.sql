-- Control store, version 2: the runtime a migration runs under, so that whoever looks after it
-- later (the CLI, the next `pulumi up`) spawns a local worker only for a local migration and
-- keeps its log directory; and a stamp that rate-limits the "no worker is running" warning.

-- Migrations created before version 2 were all looked after as local ones.
ALTER TABLE pgmigrate.migrations
  ADD COLUMN runtime_kind text NOT NULL DEFAULT 'local'
    CHECK (runtime_kind IN ('local', 'external')),
  ADD COLUMN runtime_log_dir text,
  ADD COLUMN worker_warned_at timestamptz;

COMMENT ON COLUMN pgmigrate.migrations.runtime_kind IS
  'local: a detached worker on the machine that runs pulumi/pgmigrate, respawned when dead; external: `pgmigrate runtime` runs elsewhere and is never spawned.';
COMMENT ON COLUMN pgmigrate.databases.incoming_changes IS
  'Changes received from the source and not yet applied on the target (the backlog; 0 when caught up).';
COMMENT ON COLUMN pgmigrate.databases.applied_changes IS
  'Changes applied and committed on the target since the stream started (running total).';
