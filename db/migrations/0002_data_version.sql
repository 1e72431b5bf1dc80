-- A data version, bumped in the same transaction as every write that can change an answer of
-- the read path (prices, ports, regions), whoever the writer is (the API, psql, a job).
-- Being transactional, a reader never sees a version whose data it cannot see: a cache keyed
-- on it cannot serve a result older than the last committed change.
CREATE TABLE public.data_version (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version    bigint NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO public.data_version (version) VALUES (1);

CREATE FUNCTION public.bump_data_version() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    UPDATE public.data_version SET version = version + 1, changed_at = now();
    RETURN NULL;
END
$$;

-- FOR EACH STATEMENT: one bump per statement (a whole COPY is one), not one per row.
CREATE TRIGGER prices_bump_data_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON public.prices
    FOR EACH STATEMENT EXECUTE FUNCTION public.bump_data_version();
CREATE TRIGGER ports_bump_data_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON public.ports
    FOR EACH STATEMENT EXECUTE FUNCTION public.bump_data_version();
CREATE TRIGGER regions_bump_data_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON public.regions
    FOR EACH STATEMENT EXECUTE FUNCTION public.bump_data_version();
