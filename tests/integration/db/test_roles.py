"""Least privilege (migration 0005): the roles the service connects as can do their job and
nothing else. Every check connects as the role itself to the test stack's database, with the
password `make env` wrote and the migrate job set, and expects PostgreSQL's own refusal."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests
from psycopg import errors, sql

from rates import config
from rates.db import migrate
from tests.stack import DOCUMENTED_QUERY, ROOT, dotenv_password, dotenv_value

COLUMN = {"prices": "price", "ports": "name", "regions": "name", "data_version": "version", "batches": "key",
          "schema_migrations": "name"}  # a column of each table of the schema
ROW = "('CNGGZ', 'EETLL', '2021-01-31', 1000)"
NOT_ALLOWED = (errors.InsufficientPrivilege, errors.InvalidAuthorizationSpecification)


def connect_as(stack, role: str, password: str, dbname: str = "rates") -> psycopg.Connection:
    return psycopg.connect(host="127.0.0.1", port=stack.db_port, dbname=dbname, user=role, password=password,
                           connect_timeout=5, autocommit=True)


@pytest.fixture(scope="module")
def reader(stack) -> Iterator[psycopg.Connection]:
    with connect_as(stack, "rates_read", dotenv_value("READ_ROLE_PASSWORD")) as conn:
        yield conn


@pytest.fixture(scope="module")
def loader(stack) -> Iterator[psycopg.Connection]:
    with connect_as(stack, "rates_ingest", dotenv_value("INGEST_ROLE_PASSWORD")) as conn:
        yield conn


def refused(conn: psycopg.Connection, statement: str) -> str:
    """Run ``statement`` in a transaction rolled back afterwards; PostgreSQL's refusal, or fail."""
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(statement)
    except NOT_ALLOWED as exc:
        return str(exc)
    raise AssertionError(f"{conn.info.user} was allowed to run: {statement}")


def allowed(conn: psycopg.Connection, statement: str) -> None:
    with conn.transaction(force_rollback=True):
        conn.execute(statement)


# ---- what each role may do -----------------------------------------------------------------------


def test_the_service_connects_as_the_read_and_ingest_roles(stack):
    assert requests.get(f"{stack.api_url}/rates?{DOCUMENTED_QUERY}", timeout=10).status_code == 200
    with stack.connect(autocommit=True) as conn:
        users = {user for (user,) in conn.execute(
            "SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name = 'rates'")}
    assert "rates_read" in users
    assert users <= {"rates_read", "rates_ingest"}, users  # never the superuser


def test_the_read_role_reads_what_the_api_reads(reader):
    for table in ("prices", "ports", "regions", "data_version", "batches"):
        allowed(reader, f"SELECT * FROM public.{table} LIMIT 1")


def test_the_ingest_role_loads_a_batch_record_and_its_rows(loader):
    with loader.transaction(force_rollback=True):
        (batch_id,) = loader.execute("INSERT INTO public.batches (key) VALUES ('roles-test') RETURNING batch_id"
                                     ).fetchone()
        loader.execute(f"INSERT INTO public.prices VALUES {ROW}")  # the integrity trigger and the bump run
        loader.execute("UPDATE public.batches SET rows = 1, committed_at = now() WHERE batch_id = %s", (batch_id,))
        assert loader.execute("SELECT count(*) FROM public.ports").fetchone()[0] > 0


# ---- what they may not ---------------------------------------------------------------------------


@pytest.mark.parametrize("table", COLUMN)
def test_the_read_role_cannot_write_anything(reader, table):
    refused(reader, f"INSERT INTO public.{table} DEFAULT VALUES")
    refused(reader, f"UPDATE public.{table} SET {COLUMN[table]} = {COLUMN[table]}")
    refused(reader, f"DELETE FROM public.{table}")
    refused(reader, f"TRUNCATE public.{table}")
    refused(reader, f"SELECT 1 FROM public.{table} FOR UPDATE")


@pytest.mark.parametrize("table", ["prices", "ports"])
def test_the_ingest_role_cannot_change_or_remove_prices_or_ports(loader, table):
    refused(loader, f"UPDATE public.{table} SET {COLUMN[table]} = {COLUMN[table]}")
    refused(loader, f"DELETE FROM public.{table}")
    refused(loader, f"TRUNCATE public.{table}")
    refused(loader, f"DROP TABLE public.{table}")
    refused(loader, f"ALTER TABLE public.{table} DISABLE TRIGGER USER")


def test_the_ingest_role_cannot_touch_the_rest(loader):
    refused(loader, "INSERT INTO public.ports VALUES ('XQZZZ', 'x', 'china_main')")
    refused(loader, "UPDATE public.data_version SET version = version + 1")
    refused(loader, "SELECT * FROM public.regions")
    refused(loader, "UPDATE public.batches SET key = 'another'")
    refused(loader, "DELETE FROM public.batches")
    refused(loader, "SELECT public.bump_data_version()")


@pytest.mark.parametrize("role", ["reader", "loader"])
def test_neither_role_creates_objects_reads_passwords_or_runs_programs(role, request):
    conn = request.getfixturevalue(role)
    refused(conn, "CREATE TABLE public.mine (a int)")
    refused(conn, "CREATE TEMPORARY TABLE mine (a int)")
    refused(conn, "CREATE FUNCTION public.mine() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    refused(conn, "SELECT rolpassword FROM pg_catalog.pg_authid")
    refused(conn, "COPY (SELECT 1) TO PROGRAM 'id'")
    refused(conn, "COPY public.prices FROM PROGRAM 'id'")
    refused(conn, "SELECT pg_catalog.pg_read_file('/etc/passwd')")
    refused(conn, "SET ROLE rates_owner")
    refused(conn, "ALTER ROLE CURRENT_USER SUPERUSER")
    attributes = conn.execute("SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls "
                              "FROM pg_catalog.pg_roles WHERE rolname = current_user").fetchone()
    assert attributes == (False, False, False, False, False)


def test_nobody_logs_in_as_the_owner(stack):
    with stack.connect(autocommit=True) as conn:
        assert conn.execute("SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = 'rates_owner'"
                            ).fetchone() == (False, False)


def test_the_owner_owns_every_object_and_the_triggers_run_as_it(stack):
    with stack.connect(autocommit=True) as conn:
        owners = conn.execute("SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class "
                              "WHERE relnamespace = 'public'::regnamespace").fetchall()
        assert owners == [("rates_owner",)]
        functions = conn.execute("SELECT proname, pg_get_userbyid(proowner), prosecdef, proconfig FROM pg_proc "
                                 "WHERE pronamespace = 'public'::regnamespace ORDER BY 1").fetchall()
    assert [name for name, *_ in functions] == ["bump_data_version", "ports_assert_unreferenced",
                                                "ports_refuse_truncate", "prices_assert_ports_exist"]
    for name, owner, definer, settings in functions:
        assert (owner, definer) == ("rates_owner", True), name
        assert "search_path=pg_catalog, pg_temp" in settings, name


def test_the_roles_migration_runs_again_without_effect(stack):
    text = (ROOT / "db" / "migrations" / "0005_roles.sql").read_text()
    with stack.connect() as conn:
        before = conn.execute("SELECT relname, relacl::text FROM pg_class WHERE relnamespace = 'public'::regnamespace "
                              "ORDER BY 1").fetchall()
        conn.execute(text)
        after = conn.execute("SELECT relname, relacl::text FROM pg_class WHERE relnamespace = 'public'::regnamespace "
                             "ORDER BY 1").fetchall()
        conn.rollback()
    assert after == before


# ---- the migrate job: passwords, and later migrations as the owner ---------------------------------


@pytest.fixture
def scratch_role(stack) -> Iterator[str]:
    role = f"scratch_{uuid.uuid4().hex[:10]}"
    with stack.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    yield role
    with stack.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def admin_settings(stack, dbname: str = "rates", **values: str) -> config.Settings:
    return config.load({"RATES_ENV_FILE": "/dev/null", "DB_HOST": "127.0.0.1", "DB_PORT": str(stack.db_port),
                        "DB_NAME": dbname, "DB_PASSWORD": dotenv_password(), **values})


def test_migrate_sets_each_role_s_password_hashed_and_a_changed_one_applies(stack, scratch_role):
    for password in ("first-secret", "changed-secret"):
        settings = admin_settings(stack, DB_INGEST_USER=scratch_role, DB_INGEST_PASSWORD=password)
        with stack.connect(autocommit=True) as conn:
            migrate.set_role_passwords(conn, settings)
            stored = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (scratch_role,)).fetchone()
        assert stored[0].startswith("SCRAM-SHA-256$") and password not in stored[0]
        connect_as(stack, scratch_role, password, "postgres").close()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect_as(stack, scratch_role, "first-secret", "postgres")


def test_migrate_names_the_setting_of_a_missing_role(stack):
    settings = admin_settings(stack, DB_READ_USER="no_such_role_here", DB_READ_PASSWORD="x")
    with stack.connect(autocommit=True) as conn, pytest.raises(migrate.MigrationError,
                                                                match="^DB_READ_USER: role 'no_such_role_here'"):
        migrate.set_role_passwords(conn, settings)


def test_migrations_after_the_roles_run_as_the_owner(stack, pg_conninfo, tmp_path: Path):
    folder = tmp_path / "migrations"
    shutil.copytree(ROOT / "db" / "migrations", folder)
    (folder / "0999_later.sql").write_text("CREATE TABLE public.later (who text DEFAULT current_user);\n"
                                           "INSERT INTO public.later DEFAULT VALUES;\n")
    dbname = f"roles_{uuid.uuid4().hex[:12]}"
    settings = admin_settings(stack, dbname, MIGRATE_DIR=str(folder), MIGRATE_DUMP_PATH=str(ROOT / "db" / "rates.sql"))
    try:
        migrate.run(settings)
        with psycopg.connect(settings.conninfo()) as conn:
            row = conn.execute("SELECT who, pg_get_userbyid(c.relowner) FROM public.later, pg_class c "
                               "WHERE c.oid = 'public.later'::regclass").fetchone()
        assert row == ("rates_owner", "rates_owner")
    finally:
        with psycopg.connect(pg_conninfo, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
