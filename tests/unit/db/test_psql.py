"""What rates.db.psql decides before and after psql runs: which files it accepts, the command
line and environment it gives psql, and the message of a failure. Loading itself is tested
against PostgreSQL in tests/integration/db/test_migrate.py."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from rates import config
from rates.db import psql

REPO_ROOT = Path(__file__).resolve().parents[3]
COMMITTED_DUMP = REPO_ROOT / "db" / "rates.sql"
CLOSING = "--\n-- PostgreSQL database dump complete\n--\n\n"
PASSWORD = "s3cret pass'word"


def settings(**values: str) -> config.Settings:
    return config.load({
        "RATES_ENV_FILE": "/dev/null", "RATES_SECRETS_DIR": "/nonexistent", "DB_HOST": "db.example.com",
        "DB_PORT": "6543", "DB_NAME": "rates_x", "DB_USER": "loader", "DB_PASSWORD": PASSWORD,
        "DB_SSLMODE": "verify-full", "DB_CONNECT_TIMEOUT": "7", **values,
    })  # fmt: skip


def dump_file(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "dump.sql"
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


# ---- which files are given to psql ----------------------------------------------------------


def test_the_committed_dump_is_accepted_with_its_checksum_and_line_count() -> None:
    dump = psql.read_dump(COMMITTED_DUMP)
    content = COMMITTED_DUMP.read_bytes()
    assert dump == psql.Dump(COMMITTED_DUMP, hashlib.sha256(content).hexdigest(), content.count(b"\n"))


@pytest.mark.parametrize(
    "ending",
    [
        CLOSING,
        CLOSING + "\\unrestrict 3fT0eQ1mKp9\n\n",  # what pg_dump 17.6, 16.10, 15.14 ... write
        CLOSING.replace("\n", "\r\n"),
        CLOSING.rstrip("\n"),
    ],
    ids=["pg_dump", "unrestrict", "crlf", "no-final-newline"],
)
def test_a_dump_ending_with_pg_dump_s_closing_line_is_accepted(tmp_path: Path, ending: str) -> None:
    text = "SET a = 1;\nCREATE TABLE public.t (a int);\n\n" + ending
    dump = psql.read_dump(dump_file(tmp_path, text))
    assert dump.lines == len(text.splitlines())


@pytest.mark.parametrize(
    ("content", "lines"),
    [
        ("CREATE TABLE public.t (a int);\nCOPY public.t (a) FROM stdin;\n1\n2\n", 4),  # cut in a COPY block
        ("CREATE TABLE public.t (a int);\nCREATE TABLE public.u (\n    a int", 3),  # cut in a statement
        ("CREATE TABLE public.t (a int);\n", 1),  # cut between statements: psql would load it all
        ("SELECT 1;\n-- PostgreSQL database dump complete\n--\nSELECT 2;\n", 4),  # the closing line is not last
        # pg_dumpall: one database's closing line, then the cluster's
        ("SELECT 1;\n" + CLOSING + "--\n-- PostgreSQL database cluster dump complete\n--\n\n", 9),
    ],
    ids=["in-copy", "in-statement", "between-statements", "not-last", "pg_dumpall"],
)
def test_a_dump_without_the_closing_line_is_refused_naming_its_last_line(
    tmp_path: Path, content: str, lines: int
) -> None:
    path = dump_file(tmp_path, content)
    with pytest.raises(psql.DumpError) as caught:
        psql.read_dump(path)
    assert str(caught.value).startswith(f"{path}:{lines}: the file ends here, without pg_dump's closing line")
    assert "truncated" in str(caught.value) and "nothing was loaded" in str(caught.value)
    assert caught.value.returncode is None


def test_the_committed_dump_cut_anywhere_is_refused(tmp_path: Path) -> None:
    lines = COMMITTED_DUMP.read_text(encoding="utf-8").splitlines(keepends=True)
    for cut in (1, len(lines) // 3, len(lines) - 4):
        path = dump_file(tmp_path, "".join(lines[:cut]))
        with pytest.raises(psql.DumpError, match=f"^{path}:{cut}: the file ends here"):
            psql.read_dump(path)


def test_a_custom_format_archive_is_refused(tmp_path: Path) -> None:
    path = dump_file(tmp_path, b"PGDMP\x01\x0e\x00\x04\x08\x01\x01\x00\x00" + CLOSING.encode())
    with pytest.raises(psql.DumpError, match=r"pg_dump archive \(custom format\).*--format=plain"):
        psql.read_dump(path)


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = dump_file(tmp_path, b"")
    with pytest.raises(psql.DumpError, match=f"^{path} is empty"):
        psql.read_dump(path)


def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(psql.DumpError, match=f"cannot read the dump {tmp_path}"):
        psql.read_dump(tmp_path)  # a directory


# ---- how psql is run ---------------------------------------------------------------------------


def test_psql_connects_with_the_service_s_settings_and_the_password_in_its_environment() -> None:
    dsn, env = psql.connection(settings(), {"PATH": "/usr/bin", "PGPASSWORD": "stale"})
    assert conninfo_to_dict(dsn) == {
        "host": "db.example.com", "port": "6543", "dbname": "rates_x", "user": "loader",
        "sslmode": "verify-full", "connect_timeout": "7", "application_name": "rates",
    }  # fmt: skip
    assert env == {"PATH": "/usr/bin", "PGPASSWORD": PASSWORD}


def test_without_a_password_setting_libpq_s_own_sources_stay() -> None:
    environ = {"PGPASSFILE": "/home/me/.pgpass", "PGSSLROOTCERT": "/etc/ca.pem"}
    dsn, env = psql.connection(settings(DB_PASSWORD=""), environ)
    assert "password" not in conninfo_to_dict(dsn)
    assert env == environ


def test_the_command_line_holds_no_password_and_one_transaction(tmp_path: Path) -> None:
    dsn, _env = psql.connection(settings(), {})
    dump = psql.Dump(tmp_path / "rates.sql", "abc", 10)
    argv = psql.command("/usr/bin/psql", dsn, dump, {"version": "0000", "name": "dump rates.sql"})
    assert not any(PASSWORD in arg for arg in argv)
    assert "password" not in conninfo_to_dict(next(a for a in argv if a.startswith("--dbname="))[len("--dbname="):])
    assert {"--single-transaction", "--set=ON_ERROR_STOP=1", "--set=AUTOCOMMIT=off", "--no-psqlrc",
            "--no-password", "--set=version=0000", "--set=name=dump rates.sql"} <= set(argv)
    # The marker, the dump, then the caller's SQL from standard input, in that order.
    assert argv[-3:] == [f"--command={psql.OPEN_MARKER}", f"--file={dump.path}", "--file=-"]


def test_a_missing_psql_is_named_with_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(psql.DumpError, match="psql not found on PATH.*apt-get install .*postgresql-client"):
        psql.load(settings(), psql.Dump(COMMITTED_DUMP, "x", 1), "", {})


# ---- the message of a failure --------------------------------------------------------------------


def test_the_report_starts_at_psql_s_error_line(tmp_path: Path) -> None:
    dump = psql.Dump(tmp_path / "rates.sql", "x", 300)
    stderr = (
        "psql:/x/rates.sql:12: WARNING:  something harmless\n"
        f"psql:{dump.path}:205: ERROR:  function public.no_such_function() does not exist\n"
        "LINE 1: SELECT public.no_such_function();\n"
        "               ^\n"
        "HINT:  No function matches the given name and argument types.\n"
    )
    message = psql.failure(dump, stderr, 3)
    assert message.splitlines() == [
        f"psql exited 3 loading {dump.path}; nothing was committed:",
        f"psql:{dump.path}:205: ERROR:  function public.no_such_function() does not exist",
        "LINE 1: SELECT public.no_such_function();",
        "               ^",
        "HINT:  No function matches the given name and argument types.",
    ]


def test_a_connection_failure_is_reported_whole() -> None:
    stderr = 'psql: error: connection to server at "db" (10.0.0.2), port 5432 failed: Connection refused\n'
    message = psql.failure(psql.Dump(Path("/dump/rates.sql"), "x", 1), stderr, 2)
    assert message.endswith(stderr.strip())


def test_the_report_is_bounded() -> None:
    stderr = "psql:/d.sql:1: ERROR:  boom\n" + "".join(f"CONTEXT:  {'x' * 1000} {n}\n" for n in range(100))
    message = psql.failure(psql.Dump(Path("/d.sql"), "x", 1), stderr, 3)
    assert len(message.splitlines()) == 1 + psql.REPORT_LINES
    assert max(len(line) for line in message.splitlines()) <= psql.REPORT_WIDTH + 100


def test_a_refused_copy_row_is_named_by_its_dump_line(tmp_path: Path) -> None:
    path = dump_file(tmp_path, (
        "CREATE TABLE public.t (a int);\n"           # 1
        "COPY public.t (a) FROM stdin;\n"             # 2
        "1\n2\n\\.\n"                                 # 3-5
        "COPY public.u (a, b) FROM stdin;\n"          # 6
        "1\tx\n2\ty\n3\tz\n4\tw\n\\.\n"               # 7-11
        "SELECT 1;\n" + CLOSING
    ))  # fmt: skip
    dump = psql.read_dump(path)
    stderr = (f'psql:{path}:11: ERROR:  invalid input syntax for type integer: "w"\n'
              'CONTEXT:  COPY u, line 3, column a: "w"\n')
    assert psql.failure(dump, stderr, 3).splitlines()[-1] == f"{path}:9: the COPY row refused"
    other = stderr.replace(f"psql:{path}:", "psql:<stdin>:")  # not about the dump: no line added
    assert psql.failure(dump, other, 3).splitlines()[-1] == 'CONTEXT:  COPY u, line 3, column a: "w"'
