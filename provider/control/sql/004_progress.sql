-- Control store, version 4: byte-level copy progress. estimated_bytes now holds the estimated
-- COPY text size (the unit the copied bytes are counted in), estimated_rows its row estimate;
-- bytes_per_second is the recent rate the worker measured, as of progress_at.
ALTER TABLE pgmigrate.tables
  ADD COLUMN estimated_rows bigint,
  ADD COLUMN bytes_per_second float8,
  ADD COLUMN progress_at timestamptz;
