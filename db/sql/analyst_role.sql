-- Read-only SQL access to the ENSO store (PostgreSQL): a NOLOGIN group role that may read every
-- table and view of schema public (forecast, latest_forecast, forecast_verification,
-- verification_score, index_observation, ...) and write or create nothing, not even temporary
-- tables. `enso db grant-analyst` refuses a role (or login) that is a superuser or may write.
--
-- Applied by `enso db grant-analyst [--role NAME] [--user NAME --password-env VAR]`, or by hand:
--   psql "postgresql://<owner>@<host>/<database>" -v role=enso_analyst -f db/sql/analyst_role.sql
-- Run it as the role that owns the tables (the one running `enso db upgrade`) and may create
-- roles: the default privileges below then cover the tables and views of future migrations.
-- Idempotent: running it again changes nothing.
--
-- A person's login, a member of the group (or `enso db grant-analyst --user alice --password-env VAR`):
--   CREATE ROLE alice LOGIN PASSWORD 'change-me' IN ROLE enso_analyst;
--
-- PostgreSQL 15 and later let only the database owner create objects in schema public. On older
-- servers every role may: there, also run REVOKE CREATE ON SCHEMA public FROM PUBLIC (and grant
-- CREATE back to the role that runs the migrations if it does not own the schema).
--
-- Temporary tables: PostgreSQL grants TEMPORARY on every database to PUBLIC. The script revokes it
-- and grants it back to the role running the script; any other login that needs temporary tables
-- on this database must be granted TEMPORARY explicitly. Only the database owner (or a superuser)
-- can revoke it: run the script as that role (grant-analyst checks the result).

SELECT set_config('enso.analyst_role', :'role', false);

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = current_setting('enso.analyst_role')) THEN
        EXECUTE format('CREATE ROLE %I NOLOGIN', current_setting('enso.analyst_role'));
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), current_setting('enso.analyst_role'));
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM %I', current_database(), current_setting('enso.analyst_role'));
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO %I', current_database(), current_user);
END
$$;

GRANT USAGE ON SCHEMA public TO :"role";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"role";
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO :"role";
