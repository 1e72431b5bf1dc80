-- Least privilege: a database role per job, none of them a superuser (README, "Security").
--
--   rates_owner   owns every object of the schema; migrations after this one run as it
--                 (the migrate job SET ROLEs to the owner of schema_migrations). NOLOGIN: nobody
--                 connects as it, only the platform's admin job may become it.
--   rates_read    the read pool (GET /rates, GET /batches, /readyz): SELECT on what it reads.
--   rates_ingest  the batch pool (POST /batches, python -m rates ingest): INSERT into prices and
--                 batches, the batch record's figures, SELECT on ports and batches.
--
-- The integrity triggers of 0003 lock the batch's ports FOR KEY SHARE, which PostgreSQL allows
-- only to a role with UPDATE on ports, and the data-version trigger of 0002 UPDATEs data_version.
-- Rather than give the ingest role those two UPDATE rights (it could then rewrite ports and the
-- version itself), the trigger functions become SECURITY DEFINER, owned by rates_owner: they do
-- exactly their check or their bump with the owner's rights, and nothing else can call them.
--
-- Roles belong to the cluster, not to a database: they are created only when missing (another
-- database of the cluster may have them already) and get no password here; the migrate job sets
-- the passwords of the two login roles from its secret files on every run. Every statement
-- below can run again without effect.

DO $$
DECLARE
    role_name text;
    login boolean;
BEGIN
    FOR role_name, login IN VALUES ('rates_owner', false), ('rates_read', true), ('rates_ingest', true) LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I %s NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS',
                               role_name, CASE WHEN login THEN 'LOGIN' ELSE 'NOLOGIN' END);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created meanwhile by a migration of another database of the cluster
            END;
        END IF;
        -- An existing role with more rights than these is brought back to them.
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = role_name
                   AND (rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls
                        OR rolcanlogin IS DISTINCT FROM login)) THEN
            EXECUTE format('ALTER ROLE %I %s NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS',
                           role_name, CASE WHEN login THEN 'LOGIN' ELSE 'NOLOGIN' END);
        END IF;
    END LOOP;
END
$$;

-- The database: only the login roles may connect; nobody but the superuser creates temporary
-- tables; nobody but the owner creates objects in public.
DO $$
BEGIN
    EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO rates_read, rates_ingest', current_database());
END
$$;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO rates_owner;
GRANT USAGE ON SCHEMA public TO rates_read, rates_ingest;

-- Every table, view, sequence and function of public to the owner, whatever they are (the dump
-- may be another one than db/rates.sql). Sequences owned by a column, and indexes, follow their
-- table; objects of extensions are left to them.
DO $$
DECLARE
    statement text;
BEGIN
    FOR statement IN
        SELECT format('ALTER %s %s OWNER TO rates_owner',
                      CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                     WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
                      c.oid::regclass)
        FROM pg_catalog.pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                          WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
                            AND d.deptype IN ('a', 'i', 'e'))
        UNION ALL
        SELECT format('ALTER ROUTINE %s OWNER TO rates_owner', p.oid::regprocedure)
        FROM pg_catalog.pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                          WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
    LOOP
        EXECUTE statement;
    END LOOP;
END
$$;

-- The trigger functions run with their owner's rights (see the top), on a fixed search_path
-- (their names are qualified; pg_temp last, so no temporary object can stand in for anything).
ALTER FUNCTION public.bump_data_version() SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION public.prices_assert_ports_exist() SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION public.ports_assert_unreferenced() SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION public.ports_refuse_truncate() SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE EXECUTE ON FUNCTION public.bump_data_version(), public.prices_assert_ports_exist(),
    public.ports_assert_unreferenced(), public.ports_refuse_truncate() FROM PUBLIC;

-- Reads: the tables GET /rates reads (and the data version its cache checks), the batch records.
GRANT SELECT ON public.prices, public.ports, public.regions, public.data_version, public.batches TO rates_read;

-- Batches: the ports to check codes against, the rows, the record (its key first, its figures
-- last, read back and locked on a replay), the record's identity sequence.
GRANT SELECT ON public.ports TO rates_ingest;
GRANT INSERT ON public.prices TO rates_ingest;
GRANT SELECT, INSERT (key), UPDATE (rows, sha256, committed_at, duration_ms) ON public.batches TO rates_ingest;
DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO rates_ingest', pg_catalog.pg_get_serial_sequence('public.batches', 'batch_id'));
END
$$;
