"""The migration runner against the test stack's PostgreSQL: the dump loaded by psql, once, in
one transaction with its ledger row; clear failures that name the dump's line and leave nothing
behind; pre-existing tables adopted; migrations checked and ordered.

Each test works in a scratch database of its own (created by the runner or the test, dropped
afterwards). The runner runs here, on the host, so psql must be installed (scripts/bootstrap).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from rates import config
from rates.db import migrate, psql
from tests.stack import ROOT, dotenv_password
from tools import dumpgen

COMMITTED_DUMP = ROOT / "db" / "rates.sql"
MIGRATIONS = sorted(p.name[:4] for p in (ROOT / "db" / "migrations").glob("*.sql"))
NEXT, AFTER = (f"{int(MIGRATIONS[-1]) + n:04d}" for n in (1, 2))  # versions of test migrations
TABLES = ("ports", "regions", "prices")
HEADER = ("--\n-- PostgreSQL database dump\n--\n\nSET client_encoding = 'UTF8';\n"
          "SET standard_conforming_strings = on;\nSELECT pg_catalog.set_config('search_path', '', false);\n\n")
SCHEMA = ("CREATE TABLE public.ports (code text, name text, parent_slug text);\n"
          "CREATE TABLE public.regions (slug text, name text, parent_slug text);\n"
          "CREATE TABLE public.prices (orig_code text, dest_code text, day date, price integer);\n")
CLOSING = "\n--\n-- PostgreSQL database dump complete\n--\n\n"

Settings = Callable[..., config.Settings]


@pytest.fixture
def scratch(stack, pg_conninfo) -> Iterator[Settings]:
    """Settings for a scratch database (not created: the runner creates it), dropped afterwards."""
    dbname = f"migrate_{uuid.uuid4().hex[:12]}"

    def make(**values: str) -> config.Settings:
        return config.load({
            "RATES_ENV_FILE": "/dev/null", "DB_HOST": "127.0.0.1", "DB_PORT": str(stack.db_port),
            "DB_NAME": dbname, "DB_PASSWORD": dotenv_password(), "MIGRATE_DUMP_PATH": str(COMMITTED_DUMP),
            **values,
        })  # fmt: skip

    yield make
    with psycopg.connect(pg_conninfo, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


@pytest.fixture
def created(scratch: Settings, pg_conninfo) -> Settings:
    """The scratch database created empty, with the runner's ledger."""
    with psycopg.connect(pg_conninfo, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{scratch().DB_NAME}"')
    with psycopg.connect(scratch().conninfo(), autocommit=True) as conn:
        conn.execute(migrate.CREATE_LEDGER)
    return scratch


@pytest.fixture(scope="module")
def expected() -> dumpgen.DumpStats:
    return dumpgen.write_dump(io.StringIO())


def counts(settings: config.Settings) -> dict[str, int]:
    with psycopg.connect(settings.conninfo()) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM public.{t}").fetchone()[0] for t in TABLES}


def leftovers(settings: config.Settings) -> list[str]:
    """Tables of the public schema, and ledger rows: what a failed load must not leave."""
    with psycopg.connect(settings.conninfo()) as conn:
        tables = [t for (t,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                             "AND tablename <> 'schema_migrations' ORDER BY 1")]
        rows = conn.execute("SELECT version FROM public.schema_migrations").fetchall()
    return tables + [f"ledger {v}" for (v,) in rows]


def ledger(settings: config.Settings) -> list[tuple]:
    with psycopg.connect(settings.conninfo()) as conn:
        return conn.execute("SELECT version, name, checksum, applied_at FROM public.schema_migrations "
                            "ORDER BY version").fetchall()


def committed_dump_with(tmp_path: Path, after: Callable[[str], bool], inserted: str) -> tuple[Path, int]:
    """db/rates.sql with ``inserted`` placed after the first line ``after`` accepts; the path and
    the line number of the inserted text."""
    lines = COMMITTED_DUMP.read_text(encoding="utf-8").splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if after(line)) + 1
    lines.insert(index, inserted)
    path = tmp_path / "dump.sql"
    path.write_text("".join(lines), encoding="utf-8")
    return path, index + 1


def small_dump(tmp_path: Path, body: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "small.sql"
    path.write_bytes((HEADER + body + CLOSING).encode(encoding))
    return path


def no_migrations(tmp_path: Path) -> str:
    """MIGRATE_DIR for a dump of a schema the repository's migrations do not fit."""
    folder = tmp_path / "no-migrations"
    folder.mkdir()
    return str(folder)


def psql_by_hand(settings: config.Settings, path: Path) -> subprocess.CompletedProcess[str]:
    """psql as a person would run it on a dump: no check of its end, no bookkeeping."""
    dsn, env = psql.connection(settings, os.environ)
    return subprocess.run(["psql", "--no-psqlrc", "--quiet", "--single-transaction", "--set=ON_ERROR_STOP=1",
                           f"--dbname={dsn}", f"--file={path}"], env=env, capture_output=True, text=True, check=False)


def failure(settings: config.Settings) -> migrate.MigrationError:
    with pytest.raises(migrate.MigrationError) as caught:
        migrate.run(settings)
    return caught.value


# ---- loaded once, in one transaction with its record ---------------------------------------------


def test_the_dump_is_loaded_once_with_its_record_in_the_same_transaction(
    scratch: Settings, expected: dumpgen.DumpStats, caplog: pytest.LogCaptureFixture
) -> None:
    settings = scratch()
    migrate.run(settings)  # creates the database, loads the dump, applies the migrations
    assert counts(settings) == {"ports": expected.ports, "regions": expected.regions, "prices": expected.prices}
    first = ledger(settings)
    assert [row[:3] for row in first[:1]] == [
        ("0000", "dump rates.sql", hashlib.sha256(COMMITTED_DUMP.read_bytes()).hexdigest())]
    assert [row[0] for row in first] == ["0000", *MIGRATIONS]
    with psycopg.connect(settings.conninfo()) as conn:
        # Every loaded row and the ledger row carry the id of the transaction that wrote them.
        writers = conn.execute(
            "SELECT DISTINCT xmin::text FROM (SELECT xmin FROM public.ports UNION ALL SELECT xmin FROM public.regions "
            "UNION ALL SELECT xmin FROM public.prices UNION ALL "
            "SELECT xmin FROM public.schema_migrations WHERE version = '0000') AS loaded"
        ).fetchall()
        assert len(writers) == 1
        constraints = conn.execute(
            "SELECT count(*) FILTER (WHERE contype = 'p'), count(*) FILTER (WHERE contype = 'f') "
            "FROM pg_constraint WHERE conrelid IN ('public.ports'::regclass, 'public.regions'::regclass)"
        ).fetchone()
        assert constraints == (2, 2)  # primary keys and the foreign keys between them, after the data
        days = conn.execute("SELECT count(DISTINCT day) FROM public.prices "
                            "WHERE orig_code = 'CNGGZ' AND dest_code = 'EETLL'").fetchone()[0]
        assert days == 31

    caplog.set_level(logging.INFO, logger="rates.migrate")
    migrate.run(settings)  # again: nothing to do
    assert "dump already loaded (dump rates.sql), skipping" in caplog.messages
    assert ledger(settings) == first
    assert counts(settings)["prices"] == expected.prices


def test_concurrent_runs_load_the_dump_once(scratch: Settings, expected: dumpgen.DumpStats) -> None:
    settings = scratch()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            migrate.run(settings)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert counts(settings)["prices"] == expected.prices  # prices has no key: a second load would double it
    assert [row[0] for row in ledger(settings)] == ["0000", *MIGRATIONS]


def test_a_failing_record_takes_the_dump_back(created: Settings) -> None:
    """The ledger row is written after the dump in psql's transaction: if it fails, the dump goes."""
    settings = created()
    with psycopg.connect(settings.conninfo(), autocommit=True) as conn:
        conn.execute("INSERT INTO public.schema_migrations VALUES ('0000', 'written meanwhile', '-')")
        with pytest.raises(migrate.MigrationError, match="duplicate key value") as caught:
            migrate.load_dump(conn, settings, {})  # as if the row were not there
    assert caught.value.__cause__.returncode == 3
    assert leftovers(settings) == ["ledger 0000"]


# ---- failures name the dump's line and leave nothing ----------------------------------------------


def test_a_failing_statement_is_named_by_its_line_and_leaves_nothing(scratch: Settings, tmp_path: Path) -> None:
    path, line = committed_dump_with(tmp_path, lambda s: s == "\\.\n", "SELECT public.no_such_function();\n")
    settings = scratch(MIGRATE_DUMP_PATH=str(path))
    error = failure(settings)
    assert f"psql:{path}:{line}: ERROR:  function public.no_such_function() does not exist" in str(error)
    assert error.__cause__.returncode == 3
    assert leftovers(settings) == []


def test_a_bad_copy_row_is_named_by_its_line_and_leaves_nothing(scratch: Settings, tmp_path: Path) -> None:
    path, line = committed_dump_with(
        tmp_path, lambda s: s.startswith("COPY public.prices "), "CNGGZ\tEETLL\t2021-01-01\tnot-a-number\n")
    settings = scratch(MIGRATE_DUMP_PATH=str(path))
    error = failure(settings)
    assert 'ERROR:  invalid input syntax for type integer: "not-a-number"' in str(error)
    assert str(error).endswith(f"{path}:{line}: the COPY row refused")
    assert leftovers(settings) == []


def test_a_truncated_dump_is_refused_before_anything_runs(scratch: Settings, tmp_path: Path) -> None:
    lines = COMMITTED_DUMP.read_text(encoding="utf-8").splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if line.startswith("COPY public.prices ")) + 100
    path = tmp_path / "truncated.sql"
    path.write_text("".join(lines[:cut]), encoding="utf-8")
    settings = scratch(MIGRATE_DUMP_PATH=str(path))
    error = failure(settings)
    assert str(error).startswith(f"{path}:{cut}: the file ends here")
    assert leftovers(settings) == []
    # psql alone commits the rows before the cut: what the check of the end is for.
    by_hand = psql_by_hand(settings, path)
    assert by_hand.returncode == 0, by_hand.stderr
    assert counts(settings)["prices"] == 99


def test_a_dump_leaving_its_transaction_leaves_nothing(scratch: Settings, tmp_path: Path) -> None:
    """A \\connect (as in dumps made with --create) would run the rest outside the transaction."""
    settings = scratch()
    path, _line = committed_dump_with(
        tmp_path, lambda s: s.startswith("SET row_security"), f"\\connect {settings.DB_NAME}\n")
    settings = scratch(MIGRATE_DUMP_PATH=str(path))
    error = failure(settings)
    assert "the dump left the transaction it was loaded in" in str(error)
    assert leftovers(settings) == []


def test_a_dump_without_the_service_s_tables_is_refused(scratch: Settings, tmp_path: Path) -> None:
    path = small_dump(tmp_path, "CREATE TABLE public.unrelated (a int);\n")
    settings = scratch(MIGRATE_DUMP_PATH=str(path))
    error = failure(settings)
    assert "psql:<stdin>:" in str(error)
    assert "the dump did not create public.ports, public.regions and public.prices" in str(error)
    assert leftovers(settings) == []


def test_invalid_utf8_is_named_by_its_line(scratch: Settings, tmp_path: Path) -> None:
    path = tmp_path / "latin.sql"
    path.write_bytes((HEADER + SCHEMA).encode() + b"INSERT INTO public.ports VALUES ('ESLEI', 'Le\xf3n', 'x');\n"
                     + CLOSING.encode())
    line = (HEADER + SCHEMA).count("\n") + 1
    settings = scratch(MIGRATE_DUMP_PATH=str(path), MIGRATE_DIR=no_migrations(tmp_path))
    error = failure(settings)
    assert f'psql:{path}:{line}: ERROR:  invalid byte sequence for encoding "UTF8"' in str(error)
    assert leftovers(settings) == []


def test_a_dump_in_another_client_encoding_is_converted(scratch: Settings, tmp_path: Path) -> None:
    body = "SET client_encoding = 'LATIN1';\n" + SCHEMA + "INSERT INTO public.ports VALUES ('ESLEI', 'León', 'x');\n"
    path = small_dump(tmp_path, body, "latin-1")
    settings = scratch(MIGRATE_DUMP_PATH=str(path), MIGRATE_DIR=no_migrations(tmp_path))
    migrate.run(settings)
    with psycopg.connect(settings.conninfo()) as conn:
        assert conn.execute("SELECT name FROM public.ports").fetchone()[0] == "León"


def test_the_cli_logs_psql_s_report(scratch: Settings, tmp_path: Path) -> None:
    path, line = committed_dump_with(tmp_path, lambda s: s == "\\.\n", "SELECT public.no_such_function();\n")
    settings = scratch()
    env = {**os.environ, "RATES_ENV_FILE": "/dev/null", "DB_HOST": settings.DB_HOST, "DB_PORT": str(settings.DB_PORT),
           "DB_NAME": settings.DB_NAME, "DB_PASSWORD": settings.DB_PASSWORD, "MIGRATE_DUMP_PATH": str(path)}
    proc = subprocess.run([sys.executable, "-m", "rates", "migrate"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 1
    entry = json.loads(proc.stderr.strip().splitlines()[-1])
    assert entry["level"] == "error" and entry["psql_exit_code"] == 3
    assert entry["msg"].startswith(f"migration failed: psql exited 3 loading {path}; nothing was committed:\n"
                                   f"psql:{path}:{line}: ERROR:  function public.no_such_function()")


# ---- the connection ------------------------------------------------------------------------------


def test_psql_connects_as_the_settings_say(scratch: Settings, tmp_path: Path) -> None:
    body = SCHEMA + ("CREATE TABLE public.loaded_by AS SELECT current_user AS who, current_database() AS db, "
                     "current_setting('application_name') AS app, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid();\n")
    settings = scratch(MIGRATE_DUMP_PATH=str(small_dump(tmp_path, body)), MIGRATE_DIR=no_migrations(tmp_path),
                       DB_SSLMODE="disable")
    migrate.run(settings)
    with psycopg.connect(settings.conninfo()) as conn:
        assert conn.execute("SELECT who, db, app, ssl FROM public.loaded_by").fetchone() == (
            "postgres", settings.DB_NAME, "rates", False)


def test_psql_gets_sslmode_from_the_settings(created: Settings) -> None:
    settings = created(DB_SSLMODE="require")  # the test server has no TLS: psql must refuse
    with psycopg.connect(created().conninfo(), autocommit=True) as conn:
        with pytest.raises(migrate.MigrationError, match="server does not support SSL") as caught:
            migrate.load_dump(conn, settings, {})
    assert caught.value.__cause__.returncode == 2
    assert leftovers(created()) == []


def test_a_wrong_password_is_refused_without_showing_it(created: Settings) -> None:
    settings = created(DB_PASSWORD="not-the-password")
    with psycopg.connect(created().conninfo(), autocommit=True) as conn:
        with pytest.raises(migrate.MigrationError, match="password authentication failed") as caught:
            migrate.load_dump(conn, settings, {})
    assert "not-the-password" not in str(caught.value)


# ---- adoption, missing dump, migrations ----------------------------------------------------------


def test_pre_existing_tables_are_adopted_as_the_baseline(created: Settings, tmp_path: Path) -> None:
    settings = created()
    by_hand = psql_by_hand(settings, COMMITTED_DUMP)
    assert by_hand.returncode == 0, by_hand.stderr
    adopted = created(MIGRATE_DUMP_PATH=str(tmp_path / "absent.sql"))
    migrate.run(adopted)
    rows = ledger(adopted)
    assert [row[:3] for row in rows[:1]] == [("0000", "pre-existing schema", "-")]
    assert [row[0] for row in rows] == ["0000", *MIGRATIONS]


def test_a_missing_dump_names_the_setting(scratch: Settings, tmp_path: Path) -> None:
    absent = tmp_path / "absent.sql"
    settings = scratch(MIGRATE_DUMP_PATH=str(absent))
    error = failure(settings)
    assert str(error) == f"MIGRATE_DUMP_PATH: dump file not found: {absent} (set RATES_DUMP for make up)"
    assert leftovers(settings) == []


def test_migrations_run_in_order_once_and_a_changed_one_is_refused(scratch: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(ROOT / "db" / "migrations", folder)
    settings = scratch(MIGRATE_DIR=str(folder))
    migrate.run(settings)
    (folder / f"{AFTER}_second.sql").write_text("INSERT INTO public.notes VALUES ('second');\n")
    (folder / f"{NEXT}_first.sql").write_text("CREATE TABLE public.notes (note text);\n"
                                              "INSERT INTO public.notes VALUES ('first');\n")
    migrate.run(settings)
    migrate.run(settings)
    assert [row[0] for row in ledger(settings)] == ["0000", *MIGRATIONS, NEXT, AFTER]
    with psycopg.connect(settings.conninfo()) as conn:
        assert conn.execute("SELECT note FROM public.notes ORDER BY ctid").fetchall() == [("first",), ("second",)]

    (folder / f"{NEXT}_first.sql").write_text("CREATE TABLE public.notes (note text, extra int);\n")
    with pytest.raises(migrate.MigrationError, match=f"{NEXT}_first.sql was changed after it was applied"):
        migrate.run(settings)


def test_a_failing_migration_is_named_and_not_recorded(scratch: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(ROOT / "db" / "migrations", folder)
    (folder / f"{NEXT}_broken.sql").write_text("CREATE TABLE public.half (a int);\nSELECT nope FROM public.half;\n")
    settings = scratch(MIGRATE_DIR=str(folder))
    with pytest.raises(migrate.MigrationError, match=f'{NEXT}_broken.sql failed: column "nope" does not exist'):
        migrate.run(settings)
    assert [row[0] for row in ledger(settings)] == ["0000", *MIGRATIONS]
    with psycopg.connect(settings.conninfo()) as conn:
        assert conn.execute("SELECT to_regclass('public.half')").fetchone()[0] is None
