"""Load a plain-format pg_dump file with psql, PostgreSQL's own client, in one transaction.

psql reads a dump exactly as pg_dump writes it (quoting, COPY blocks, meta-commands). This
module adds what psql alone does not guarantee:

- A dump cut short is refused before anything runs. psql ends a COPY block at the end of its
  file without an error, so a truncated download would load a prefix of the data. pg_dump ends
  every dump with the line ``-- PostgreSQL database dump complete``; a file that does not end
  with it is refused, and the error names its last line.
- The dump and the SQL run after it (the caller's bookkeeping) commit together or not at all:
  ``--single-transaction`` with ``ON_ERROR_STOP``. A dump that leaves that transaction (a
  ``\\connect``) is caught by a transaction-local marker checked after it, and ``AUTOCOMMIT=off``
  keeps what ran after the ``\\connect`` uncommitted, so the failed check rolls it back too.
  (A ``COMMIT`` written in the dump itself, which pg_dump never writes, is reported the same way
  but what it committed stays.)
- The connection is the service's own (``Settings.conninfo()``: host, port, user, dbname,
  sslmode, connect_timeout, application_name), so any PostgreSQL reachable over TCP works,
  managed ones included. The password reaches psql as PGPASSWORD in its environment (readable by
  the same user only), never on its command line.
- A failure raises :class:`DumpError` carrying psql's own report (``psql:FILE:LINE: ERROR: ...``)
  and its exit code; for a COPY row the server refused, the dump line of that row is added.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from rates.config import Settings

TRAILER = b"-- PostgreSQL database dump complete"
TAIL_BYTES = 4096
MARKER = "rates.dump_load"
OPEN_MARKER = f"SELECT pg_catalog.set_config('{MARKER}', 'open', true)"
CHECK_MARKER = f"""DO $$
BEGIN
    IF pg_catalog.current_setting('{MARKER}', true) IS DISTINCT FROM 'open' THEN
        RAISE EXCEPTION 'the dump left the transaction it was loaded in (a \\connect, COMMIT or ROLLBACK in it)';
    END IF;
END
$$;
"""
ERROR_LINE = re.compile(r"psql:.*:\d+: (?:ERROR|FATAL|PANIC):|psql: (?:error|fatal):")
COPY_CONTEXT = re.compile(r"^CONTEXT:\s+COPY [^,]+, line (\d+)", re.MULTILINE)
REPORT_LINES = 12
REPORT_WIDTH = 400
INSTALL_HINT = "Debian/Ubuntu: apt-get install --no-install-recommends postgresql-client"


class DumpError(RuntimeError):
    """The dump cannot be loaded and nothing of it was committed; ``returncode`` is psql's exit code."""

    def __init__(self, message: str, returncode: int | None = None) -> None:
        super().__init__(message)
        self.returncode = returncode


@dataclass(frozen=True)
class Dump:
    """A dump file found complete: its path, sha256 and number of lines."""

    path: Path
    checksum: str
    lines: int


def read_dump(path: Path) -> Dump:
    """Hash ``path`` and count its lines in one pass; refuse a file psql must not be given."""
    digest, lines, head, tail = hashlib.sha256(), 0, b"", b""
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
                lines += block.count(b"\n")
                head = head or block[:5]
                tail = (tail + block)[-TAIL_BYTES:]
    except OSError as exc:
        raise DumpError(f"cannot read the dump {path}: {exc.strerror}") from exc
    if tail and not tail.endswith(b"\n"):
        lines += 1  # a last line without its newline
    if head == b"PGDMP":
        raise DumpError(f"{path} is a pg_dump archive (custom format): make a plain dump (pg_dump --format=plain)")
    if not lines:
        raise DumpError(f"{path} is empty: not a pg_dump file")
    if last_statement_line(tail) != TRAILER:
        raise DumpError(
            f"{path}:{lines}: the file ends here, without pg_dump's closing line '{TRAILER.decode()}': "
            "the dump is truncated or not a plain pg_dump file; nothing was loaded"
        )
    return Dump(path, digest.hexdigest(), lines)


def last_statement_line(tail: bytes) -> bytes:
    """The last line of a dump that says something: blank lines, bare ``--`` and psql's
    ``\\unrestrict`` (written after the closing comment by recent pg_dump) are skipped."""
    for line in reversed(tail.splitlines()):
        line = line.strip()
        if line and line != b"--" and not line.startswith(b"\\unrestrict"):
            return line
    return b""


def connection(settings: Settings, environ: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """psql's ``--dbname`` (the service's conninfo without its password) and psql's environment."""
    params = conninfo_to_dict(settings.conninfo())
    password = params.pop("password", None)
    env = dict(environ)
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo("", **params), env


def command(executable: str, dsn: str, dump: Dump, variables: Mapping[str, str]) -> list[str]:
    """The psql command line: the marker, the dump, then the caller's SQL on standard input."""
    return [
        executable, "--no-psqlrc", "--quiet", "--no-password", "--single-transaction",
        "--set=ON_ERROR_STOP=1", "--set=AUTOCOMMIT=off", f"--dbname={dsn}",
        *(f"--set={name}={value}" for name, value in variables.items()),
        f"--command={OPEN_MARKER}", f"--file={dump.path}", "--file=-",
    ]  # fmt: skip


def load(settings: Settings, dump: Dump, then: str, variables: Mapping[str, str]) -> list[str]:
    """Run ``dump``, then the SQL ``then`` (psql variables ``:'name'`` from ``variables``), in one
    transaction; return psql's warnings. Raise DumpError when anything fails (nothing committed)."""
    executable = shutil.which("psql")
    if executable is None:
        raise DumpError(f"psql not found on PATH: the dump is loaded with PostgreSQL's client ({INSTALL_HINT})")
    dsn, env = connection(settings, os.environ)
    proc = subprocess.run(
        command(executable, dsn, dump, variables), input=CHECK_MARKER + then, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
        check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise DumpError(failure(dump, proc.stderr, proc.returncode), proc.returncode)
    return [line for line in proc.stderr.splitlines() if line.strip()]


def failure(dump: Dump, stderr: str, returncode: int) -> str:
    """The message of a failed load: psql's report from its first error line, bounded."""
    lines = [line.rstrip() for line in stderr.splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if ERROR_LINE.match(line)), max(len(lines) - REPORT_LINES, 0))
    report = "\n".join(line[:REPORT_WIDTH] for line in lines[start : start + REPORT_LINES])
    message = f"psql exited {returncode} loading {dump.path}; nothing was committed:\n{report or '(no output)'}"
    row = copy_row_line(dump, report)
    if row is not None:
        message += f"\n{dump.path}:{row}: the COPY row refused"
    return message


def copy_row_line(dump: Dump, report: str) -> int | None:
    """The dump line of the COPY row a report is about. psql reports the line ending the COPY
    block; the server counts rows from the COPY statement, found here by reading up to there."""
    prefix = f"psql:{dump.path}:"
    at = re.match(r"(\d+):", report[len(prefix) :]) if report.startswith(prefix) else None
    context = COPY_CONTEXT.search(report)
    if not (at and context):
        return None
    end = int(at.group(1))
    start = None
    with dump.path.open("rb") as fh:
        for number, line in enumerate(fh, 1):
            if number >= end:
                break
            if line.startswith(b"COPY ") and line.rstrip().upper().endswith(b"FROM STDIN;"):
                start = number
    return None if start is None else start + int(context.group(1))
