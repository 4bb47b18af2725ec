-- Control store, version 6: every change of a migration's row, or of one of its databases'
-- rows, notifies channel pgmigrate_changes with the migration's name, so a wait (--wait, the
-- provider, the console) reacts at once instead of at its next poll. Re-runnable.
-- The trigger's argument names the column holding the migration's name.
CREATE OR REPLACE FUNCTION pgmigrate.notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('pgmigrate_changes', to_jsonb(NEW) ->> TG_ARGV[0]);
  RETURN NULL;
END
$$;

-- EXECUTE PROCEDURE: the spelling PostgreSQL 10 (the oldest target) understands.
DROP TRIGGER IF EXISTS notify_change ON pgmigrate.migrations;
CREATE TRIGGER notify_change AFTER INSERT OR UPDATE ON pgmigrate.migrations
  FOR EACH ROW EXECUTE PROCEDURE pgmigrate.notify_change('name');

DROP TRIGGER IF EXISTS notify_change ON pgmigrate.databases;
CREATE TRIGGER notify_change AFTER INSERT OR UPDATE ON pgmigrate.databases
  FOR EACH ROW EXECUTE PROCEDURE pgmigrate.notify_change('migration');
