"""rates.sqldump.load against a real PostgreSQL server.

Each test gets a fresh scratch database on the server named by the ``pg_conninfo``
fixture (superuser conninfo) and drops it afterwards.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from tools import dumpgen
from rates.sqldump import DumpError, LoadStats, load

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMITTED_DUMP = REPO_ROOT / "db" / "rates.sql"
TABLES = ("regions", "ports", "prices")


@pytest.fixture
def scratch_conninfo(pg_conninfo: str) -> Iterator[str]:
    """Conninfo of a new, empty database, dropped after the test."""
    dbname = f"sqldump_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_conninfo, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{dbname}"')
    try:
        yield make_conninfo(pg_conninfo, dbname=dbname)
    finally:
        with psycopg.connect(pg_conninfo, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


@pytest.fixture
def conn(scratch_conninfo: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(scratch_conninfo) as connection:
        yield connection


@pytest.fixture(scope="module")
def expected_stats() -> dumpgen.DumpStats:
    return dumpgen.write_dump(io.StringIO())


def counts(conn: psycopg.Connection) -> dict[str, int]:
    return {table: conn.execute(f"SELECT count(*) FROM public.{table}").fetchone()[0] for table in TABLES}


def table_exists(conn: psycopg.Connection, table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{table}",)).fetchone()[0]


def committed_dump_with(tmp_path: Path, after: str, inserted: str) -> tuple[Path, int]:
    """A copy of db/rates.sql with ``inserted`` placed after the first line equal to ``after``.

    Returns the path and the line number of the inserted text.
    """
    lines = COMMITTED_DUMP.read_text(encoding="utf-8").splitlines(keepends=True)
    index = lines.index(after) + 1
    lines.insert(index, inserted)
    path = tmp_path / "dump.sql"
    path.write_text("".join(lines), encoding="utf-8")
    return path, index + 1


def test_load_committed_dump(
    conn: psycopg.Connection, scratch_conninfo: str, expected_stats: dumpgen.DumpStats
) -> None:
    with conn.transaction():
        stats = load(conn, COMMITTED_DUMP)
    assert stats == LoadStats(
        statements=22, copies=3, rows=expected_stats.regions + expected_stats.ports + expected_stats.prices
    )
    assert counts(conn) == {
        "regions": expected_stats.regions,
        "ports": expected_stats.ports,
        "prices": expected_stats.prices,
    }
    days = conn.execute(
        "SELECT count(DISTINCT day) FROM public.prices WHERE orig_code = 'CNGGZ' AND dest_code = 'EETLL'"
    ).fetchone()[0]
    assert days == 31
    constraints = conn.execute(
        "SELECT count(*) FILTER (WHERE contype = 'p'), count(*) FILTER (WHERE contype = 'f') "
        "FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
    ).fetchone()
    assert constraints == (2, 4)
    # The data is committed: another connection sees it.
    with psycopg.connect(scratch_conninfo) as other:  # info.dsn omits the password
        assert counts(other)["prices"] == expected_stats.prices


def test_session_settings_are_restored(conn: psycopg.Connection) -> None:
    conn.execute("SET search_path = custom_schema, public")
    conn.execute("SET statement_timeout = '42s'")
    conn.commit()
    with conn.transaction():
        load(conn, COMMITTED_DUMP)
    assert conn.execute("SHOW search_path").fetchone()[0] == "custom_schema, public"
    assert conn.execute("SHOW statement_timeout").fetchone()[0] == "42s"
    # Unqualified names resolve through the caller's search_path again.
    assert conn.execute("SELECT count(*) FROM regions").fetchone()[0] > 0


def test_failing_statement_leaves_nothing_behind(conn: psycopg.Connection, tmp_path: Path) -> None:
    path, line = committed_dump_with(tmp_path, "\\.\n", "SELECT public.no_such_function();\n")
    conn.execute("SET search_path = before_load")
    conn.commit()
    with pytest.raises(DumpError) as caught:
        with conn.transaction():
            load(conn, path)
    error = caught.value
    assert error.line == line
    assert f"line {line}:" in str(error)
    assert "no_such_function" in str(error)
    assert isinstance(error.__cause__, psycopg.errors.UndefinedFunction)
    assert not any(table_exists(conn, table) for table in TABLES)
    assert conn.execute("SHOW search_path").fetchone()[0] == "before_load"


def test_bad_copy_row_is_reported_with_its_line(conn: psycopg.Connection, tmp_path: Path) -> None:
    path, line = committed_dump_with(
        tmp_path,
        "COPY public.prices (orig_code, dest_code, day, price) FROM stdin;\n",
        "CNGGZ\tEETLL\t2021-01-01\tnot-a-number\n",
    )
    with pytest.raises(DumpError, match="COPY failed") as caught:
        with conn.transaction():
            load(conn, path)
    assert caught.value.line == line
    assert isinstance(caught.value.__cause__, psycopg.errors.InvalidTextRepresentation)
    assert not table_exists(conn, "prices")


def test_truncated_dump_leaves_nothing_behind(conn: psycopg.Connection, tmp_path: Path) -> None:
    text = COMMITTED_DUMP.read_text(encoding="utf-8")
    cut = text.index("\\.\n", text.index("COPY public.prices"))
    path = tmp_path / "truncated.sql"
    path.write_text(text[:cut], encoding="utf-8")
    with pytest.raises(DumpError, match="truncated"):
        with conn.transaction():
            load(conn, path)
    assert not any(table_exists(conn, table) for table in TABLES)


def test_settings_restored_after_error_without_transaction(scratch_conninfo: str, tmp_path: Path) -> None:
    path, _line = committed_dump_with(tmp_path, "\\.\n", "SELECT public.no_such_function();\n")
    with psycopg.connect(scratch_conninfo, autocommit=True) as conn:
        conn.execute("SET search_path = before_load")
        conn.execute("SET client_min_messages = notice")
        with pytest.raises(DumpError, match="no_such_function"):
            load(conn, path)
        assert conn.execute("SHOW search_path").fetchone()[0] == "before_load"
        assert conn.execute("SHOW client_min_messages").fetchone()[0] == "notice"
