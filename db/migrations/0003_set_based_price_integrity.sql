-- prices -> ports integrity, checked once per statement instead of once per row.
-- The two foreign keys prices(orig_code|dest_code) -> ports(code) fire two checks per inserted
-- row, which made a COPY of a large batch 4-7x slower than the COPY itself. They are replaced
-- by triggers that keep the same guarantees for every writer (the API, psql, any job), with
-- one set-based query per statement. docs/adr/0001-set-based-price-integrity.md has the
-- reasoning, the race analysis and the measurements.

-- 1. Drop the per-row foreign keys from prices to ports, whatever their names.
DO $$
DECLARE
    fk record;
BEGIN
    FOR fk IN
        SELECT conname FROM pg_catalog.pg_constraint
        WHERE conrelid = 'public.prices'::regclass AND contype = 'f'
          AND confrelid = 'public.ports'::regclass
    LOOP
        EXECUTE format('ALTER TABLE public.prices DROP CONSTRAINT %I', fk.conname);
    END LOOP;
END
$$;

-- 2. The data must already hold (it did under the foreign keys; a schema adopted without them
--    may not): refuse to go on rather than claim an integrity that is not there.
DO $$
DECLARE
    orphans bigint;
BEGIN
    SELECT count(*) INTO orphans FROM public.prices p
    WHERE NOT EXISTS (SELECT 1 FROM public.ports WHERE code = p.orig_code)
       OR NOT EXISTS (SELECT 1 FROM public.ports WHERE code = p.dest_code);
    IF orphans > 0 THEN
        RAISE EXCEPTION '% price row(s) reference port codes missing from ports; fix them, then migrate again',
            orphans USING ERRCODE = 'foreign_key_violation';
    END IF;
END
$$;

-- 3. Prices side: after each INSERT/COPY or UPDATE statement, the distinct codes of the new rows
--    (a hash aggregate over the transition table: routes first, then their codes) must be ports.
--    The ports found are locked FOR KEY SHARE, as a foreign key does, until the transaction
--    ends: a concurrent DELETE or key UPDATE of one of them waits, then sees these prices
--    (section 4) and fails. A port deleted before the lock is taken is simply not found.
--    enable_sort = off: the codes are text under the database collation, and sorting them
--    (a plan the planner may pick for DISTINCT) costs several times the hash aggregate.
CREATE FUNCTION public.prices_assert_ports_exist() RETURNS trigger
    LANGUAGE plpgsql
    SET enable_sort = off
AS $$
DECLARE
    codes text[];
    found text[];
    missing text[];
BEGIN
    SELECT array_agg(code) INTO codes
    FROM (SELECT DISTINCT unnest(ARRAY[orig_code, dest_code]) AS code
          FROM (SELECT DISTINCT orig_code, dest_code FROM new_prices) AS routes) AS c;
    IF codes IS NULL THEN  -- the statement wrote no row
        RETURN NULL;
    END IF;
    -- One query both locks and lists the ports found, read to the end by the aggregate, so the
    -- codes compared below are exactly the ones locked.
    SELECT array_agg(code) INTO found
    FROM (SELECT p.code FROM public.ports p WHERE p.code = ANY (codes) FOR KEY SHARE OF p) AS locked;
    IF cardinality(found) IS DISTINCT FROM cardinality(codes) THEN
        SELECT array_agg(code ORDER BY code) INTO missing
        FROM (SELECT unnest(codes) EXCEPT SELECT unnest(found)) AS m(code);
        RAISE EXCEPTION 'insert or update on table "prices" references port code(s) not in table "ports": %',
            array_to_string(missing[1:20], ', ')
            USING ERRCODE = 'foreign_key_violation',
                  TABLE = 'prices',
                  DETAIL = 'missing port codes: ' || array_to_string(missing, ',');
    END IF;
    RETURN NULL;
END
$$;

-- Transition tables need one trigger per event. Names sort before prices_bump_data_version
-- (0002): AFTER triggers fire in name order, so the ports are locked before the single
-- data_version row, the order a port deleter also follows.
CREATE TRIGGER prices_assert_ports_on_insert
    AFTER INSERT ON public.prices
    REFERENCING NEW TABLE AS new_prices
    FOR EACH STATEMENT EXECUTE FUNCTION public.prices_assert_ports_exist();
CREATE TRIGGER prices_assert_ports_on_update
    AFTER UPDATE ON public.prices
    REFERENCING NEW TABLE AS new_prices
    FOR EACH STATEMENT EXECUTE FUNCTION public.prices_assert_ports_exist();

-- 4. Ports side, like ON DELETE/UPDATE NO ACTION: after a DELETE or UPDATE statement, a code
--    that no longer exists in ports must not be referenced by any price. The rows were locked
--    by the statement (waiting for any batch holding them FOR KEY SHARE to finish), and at READ
--    COMMITTED this check sees everything committed until now.
--    At REPEATABLE READ / SERIALIZABLE the check sees the transaction's snapshot only, which can
--    miss prices committed since; every price write bumps public.data_version (0002) in its
--    transaction, so locking that row here fails with a serialization error (40001) exactly
--    when such a write committed after the snapshot. The transaction then retries and sees it.
CREATE FUNCTION public.ports_assert_unreferenced() RETURNS trigger
    LANGUAGE plpgsql
AS $$
DECLARE
    gone text;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        PERFORM 1 FROM public.data_version FOR UPDATE;
    END IF;
    SELECT o.code INTO gone
    FROM (SELECT DISTINCT code FROM old_ports) o
    WHERE NOT EXISTS (SELECT 1 FROM public.ports p WHERE p.code = o.code)
      AND (EXISTS (SELECT 1 FROM public.prices WHERE orig_code = o.code)
           OR EXISTS (SELECT 1 FROM public.prices WHERE dest_code = o.code))
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'update or delete on table "ports" removes port code % which table "prices" still references',
            gone
            USING ERRCODE = 'foreign_key_violation', TABLE = 'ports';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER ports_assert_unreferenced_on_delete
    AFTER DELETE ON public.ports
    REFERENCING OLD TABLE AS old_ports
    FOR EACH STATEMENT EXECUTE FUNCTION public.ports_assert_unreferenced();
CREATE TRIGGER ports_assert_unreferenced_on_update
    AFTER UPDATE ON public.ports
    REFERENCING OLD TABLE AS old_ports
    FOR EACH STATEMENT EXECUTE FUNCTION public.ports_assert_unreferenced();

-- TRUNCATE has no transition table: refuse it while any price exists (truncate prices first).
CREATE FUNCTION public.ports_refuse_truncate() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM public.prices) THEN
        RAISE EXCEPTION 'cannot truncate table "ports" while table "prices" has rows referencing it'
            USING ERRCODE = 'foreign_key_violation', TABLE = 'ports';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER ports_refuse_truncate
    BEFORE TRUNCATE ON public.ports
    FOR EACH STATEMENT EXECUTE FUNCTION public.ports_refuse_truncate();
