-- What the monitoring needs in PostgreSQL, run by the one-shot `monitoring-setup` job
-- (compose.monitoring.yaml; `make monitor`) as the superuser, in the `postgres` database, on the
-- primary. Every statement can run again without effect.
\set ON_ERROR_STOP on

-- Statistics of every statement (the server loads the library: compose.yaml's db command,
-- Patroni's configuration). The SELECT fails on a server started before it was configured.
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
SELECT FROM pg_stat_statements LIMIT 1;

-- The exporter's role: pg_monitor (statistics of every session, statement and database,
-- replication state, settings) and nothing else: it reads no table of the rates database and
-- writes nothing. Its password comes from the job's secret file, read by psql itself (never on
-- a command line), and is set at every run, so a changed MONITOR_ROLE_PASSWORD applies then.
SELECT NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'rates_monitor') AS missing \gset
\if :missing
CREATE ROLE rates_monitor LOGIN;
\endif
\set monitor_password `cat /run/secrets/db_monitor_password`
ALTER ROLE rates_monitor LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'monitor_password';
GRANT pg_monitor TO rates_monitor;

-- Nobody but the superuser creates anything in this database (PostgreSQL 15's default; the rates
-- database has the same rules from migration 0005), so the monitoring role cannot either.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE TEMPORARY ON DATABASE postgres FROM PUBLIC;
