-- Control store, version 3: a cutover that survives its worker, and a bound on crash loops.

-- Set (once) when the first database of a cutover has applied everything up to the cutover
-- LSN: from then on the target is complete and a cancel is refused (it would drop a complete
-- target); a successor worker resumes the steps after the drain.
ALTER TABLE pgmigrate.migrations
  ADD COLUMN cutover_drained_at timestamptz,
  -- Crashes of a worker (an error nothing handled) at the same position in a row: a worker
  -- that finds crash_count at the bound fails the migration with crash_error as the cause.
  ADD COLUMN crash_count integer NOT NULL DEFAULT 0,
  ADD COLUMN crash_position text,
  ADD COLUMN crash_error text;

-- The source commit time of the last transaction applied on the target (next to applied_lsn).
ALTER TABLE pgmigrate.databases
  ADD COLUMN applied_commit_time timestamptz;

COMMENT ON COLUMN pgmigrate.databases.step IS
  'Internal resume point: pending, preparing, copying, copied, streaming, drained (applied up to cutover_lsn, stream stopped), completed.';
