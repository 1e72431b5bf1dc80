"""Streaming loader for plain-format ``pg_dump`` files, without ``psql``.

A plain dump is a sequence of SQL statements, some of which are
``COPY ... FROM stdin;`` followed by data lines up to a ``\\.`` line.
:func:`iter_items` turns the lines of such a file into a stream of
:class:`Statement` and :class:`Copy` items; :func:`load` executes them on a
psycopg 3 connection.

Statements are split on top-level ``;``, ignoring semicolons inside
single-quoted strings (including ``E''`` strings), double-quoted identifiers,
dollar-quoted bodies (``$$ ... $$``, ``$tag$ ... $tag$``), ``--`` comments and
(nested) ``/* */`` comments.  The psql meta-commands ``\\restrict`` and
``\\unrestrict`` (emitted by recent pg_dump versions) are ignored; any other
meta-command (``\\connect``, ``\\set``, ...) is rejected with a
:class:`DumpError`.

Everything is streamed: neither the file nor a COPY block is held in memory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "Copy",
    "DumpError",
    "LoadStats",
    "Statement",
    "iter_items",
    "load",
]

#: Maximum size, in characters, of a COPY data chunk.
DEFAULT_CHUNK_SIZE = 1 << 20

_IGNORED_META_COMMANDS = frozenset({"restrict", "unrestrict"})


class DumpError(Exception):
    """The dump cannot be parsed or loaded.

    ``line`` is the 1-based line number in the dump the error refers to and
    ``path`` the dump file, when known; both are part of the message.
    """

    def __init__(self, message: str, line: int | None = None, path: str | None = None) -> None:
        where = ", ".join(part for part in (path, f"line {line}" if line is not None else None) if part is not None)
        super().__init__(f"{where}: {message}" if where else message)
        self.message = message
        self.line = line
        self.path = path


@dataclass(frozen=True)
class Statement:
    """One SQL statement, without its terminating semicolon.

    ``line`` is the line on which the statement starts.
    """

    sql: str
    line: int


class Copy:
    """A ``COPY ... FROM stdin`` statement and its data.

    ``sql`` is the COPY statement (without semicolon), ``line`` the line it
    starts on.  ``chunks`` yields the data lines (line terminators included,
    without the final ``\\.`` line) joined into strings of at most the chunk
    size given to :func:`iter_items`.  ``rows`` counts the data lines read so
    far; it is the total once ``chunks`` is exhausted.
    """

    __slots__ = ("sql", "line", "_reader")

    def __init__(self, sql: str, line: int, reader: _CopyReader) -> None:
        self.sql = sql
        self.line = line
        self._reader = reader

    @property
    def chunks(self) -> Iterator[str]:
        return self._reader

    @property
    def rows(self) -> int:
        return self._reader.rows

    def __repr__(self) -> str:
        return f"Copy(sql={self.sql!r}, line={self.line})"


@dataclass
class LoadStats:
    """What :func:`load` executed.

    ``statements`` counts the statements other than COPY, ``copies`` the COPY
    blocks and ``rows`` the data rows sent by those COPY blocks.
    """

    statements: int = 0
    copies: int = 0
    rows: int = 0


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------

_NORMAL, _SQUOTE, _ESTRING, _DQUOTE, _DOLLAR, _BLOCK = range(6)

# Characters that can change the lexical state outside quotes.
_SPECIAL = re.compile(r"""[';"$\\]|--|/\*""")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*)?\$")
_ESTRING_BODY = re.compile(r"\\.|''|'", re.DOTALL)
_BLOCK_BODY = re.compile(r"/\*|\*/")
_META_COMMAND = re.compile(r"\\([A-Za-z]+|.?)")
_COPY_FROM_STDIN = re.compile(r"COPY\s.*\sFROM\s+STDIN\b", re.IGNORECASE | re.DOTALL)
_SCS = re.compile(
    r"SET\s+(?:SESSION\s+)?standard_conforming_strings\s*(?:=|\bTO\b)\s*'?(\w+)'?\s*\Z",
    re.IGNORECASE,
)


def _is_ident_char(char: str) -> bool:
    return char.isalnum() or char in "_$" or char >= "\x80"


class _Lines:
    """Line iterator that keeps track of the current line number."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self.number = 0

    def next(self) -> str | None:
        line = next(self._lines, None)
        if line is not None:
            self.number += 1
        return line


class _CopyReader(Iterator[str]):
    """Reads the data lines of one COPY block, in bounded chunks."""

    def __init__(self, lines: _Lines, copy_line: int, chunk_size: int) -> None:
        self._lines = lines
        self._copy_line = copy_line
        self._chunk_size = chunk_size
        self._pending = ""  # rest of a line longer than the chunk size
        self.rows = 0
        self.done = False

    def read_chunk(self) -> str | None:
        """Next chunk of data, or None after the ``\\.`` line."""
        parts: list[str] = []
        size = 0
        while not self.done:
            if self._pending:
                line, self._pending = self._pending, ""
            else:
                next_line = self._lines.next()
                if next_line is None:
                    raise DumpError(
                        f"COPY data not terminated by a \\. line before the end of the file "
                        f"(line {self._lines.number}); the dump looks truncated",
                        self._copy_line,
                    )
                line = next_line
                if line.rstrip("\r\n") == "\\.":
                    self.done = True
                    break
                self.rows += 1
            room = self._chunk_size - size
            if len(line) > room:
                if parts:  # flush what we have, keep the line for the next chunk
                    self._pending = line
                    break
                parts.append(line[:room])
                self._pending = line[room:]
                break
            parts.append(line)
            size += len(line)
            if size >= self._chunk_size:
                break
        return "".join(parts) if parts else None

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        chunk = self.read_chunk()
        if chunk is None:
            raise StopIteration
        return chunk

    def drain(self) -> None:
        while self.read_chunk() is not None:
            pass


class _Splitter:
    """Incremental SQL lexer splitting lines into statements."""

    def __init__(self) -> None:
        self.state = _NORMAL
        self.state_line = 0  # where the current quote or comment started
        self.dollar_tag = ""
        self.block_depth = 0
        self.standard_strings = True
        self.parts: list[str] = []
        self.start_line: int | None = None  # None: no statement started

    def feed(self, line: str, number: int) -> list[Statement]:
        """Consume one line; return the statements it completes."""
        done: list[Statement] = []
        pos = 0  # scan position
        seg = 0  # start of the text to append to the current statement
        end = len(line)
        while pos < end:
            if self.state == _NORMAL:
                if self.start_line is None:
                    while pos < end and line[pos].isspace():
                        pos += 1
                    if pos >= end:
                        break
                    if line.startswith("--", pos):
                        pos = end
                        break
                    if line.startswith("/*", pos):
                        self._enter(_BLOCK, number)
                        self.block_depth = 1
                        pos += 2
                        continue
                    if line[pos] == ";":
                        pos += 1
                        continue
                    if line[pos] != "\\":
                        self.start_line = number
                    seg = pos
                match = _SPECIAL.search(line, pos)
                if match is None:
                    pos = end
                    break
                special, at = match.group(), match.start()
                pos = match.end()
                if special == ";":
                    self.parts.append(line[seg:at])
                    done.append(self._finish())
                    seg = pos
                elif special == "'":
                    escape = not self.standard_strings or (
                        at > 0 and line[at - 1] in "Ee" and (at < 2 or not _is_ident_char(line[at - 2]))
                    )
                    self._enter(_ESTRING if escape else _SQUOTE, number)
                elif special == '"':
                    self._enter(_DQUOTE, number)
                elif special == "--":
                    pos = end
                elif special == "/*":
                    self._enter(_BLOCK, number)
                    self.block_depth = 1
                elif special == "$":
                    tag = _DOLLAR_TAG.match(line, at)
                    if tag and not (at > 0 and _is_ident_char(line[at - 1])):
                        self._enter(_DOLLAR, number)
                        self.dollar_tag = tag.group()
                        pos = tag.end()
                else:  # backslash: a psql meta-command
                    meta = _META_COMMAND.match(line, at)
                    command = meta.group(1) if meta else ""
                    if command not in _IGNORED_META_COMMANDS:
                        raise DumpError(_meta_command_message(command), number)
                    if self.start_line is not None:
                        self.parts.append(line[seg:at])
                    pos = seg = end
            elif self.state == _SQUOTE:
                pos = self._close(line.find("'", pos), 1, end)
            elif self.state == _DQUOTE:
                pos = self._close(line.find('"', pos), 1, end)
            elif self.state == _DOLLAR:
                pos = self._close(line.find(self.dollar_tag, pos), len(self.dollar_tag), end)
            elif self.state == _ESTRING:
                match = _ESTRING_BODY.search(line, pos)
                if match is None:
                    pos = end
                elif match.group() == "'":
                    pos = self._close(match.start(), 1, end)
                else:  # backslash escape or doubled quote
                    pos = match.end()
            else:  # block comment, possibly nested
                match = _BLOCK_BODY.search(line, pos)
                if match is None:
                    pos = end
                else:
                    pos = match.end()
                    self.block_depth += 1 if match.group() == "/*" else -1
                    if self.block_depth == 0:
                        self.state = _NORMAL
        if self.start_line is not None and seg < end:
            self.parts.append(line[seg:])
        return done

    def _enter(self, state: int, number: int) -> None:
        self.state = state
        self.state_line = number

    def _close(self, found: int, length: int, end: int) -> int:
        if found < 0:
            return end
        self.state = _NORMAL
        return found + length

    def _finish(self) -> Statement:
        sql = "".join(self.parts).strip()
        line = self.start_line if self.start_line is not None else 0
        self.parts = []
        self.start_line = None
        scs = _SCS.match(sql)
        if scs:
            self.standard_strings = scs.group(1).lower() in ("on", "true", "yes", "1")
        return Statement(sql, line)

    def check_end(self) -> None:
        """Raise if the input ended inside a quote, comment or statement."""
        if self.state != _NORMAL:
            what = {
                _SQUOTE: "quoted string",
                _ESTRING: "quoted string",
                _DQUOTE: "quoted identifier",
                _DOLLAR: f"dollar-quoted string {self.dollar_tag}",
                _BLOCK: "/* comment",
            }[self.state]
            raise DumpError(f"unterminated {what} at the end of the file", self.state_line)
        if self.start_line is not None:
            raise DumpError(
                "statement not terminated by a semicolon at the end of the file; the dump looks truncated",
                self.start_line,
            )


def _meta_command_message(command: str) -> str:
    if command == ".":
        return "unexpected end-of-data marker \\. outside a COPY block"
    hint = ""
    if command in ("connect", "c"):
        hint = " (dumps made with --create or by pg_dumpall are not supported)"
    return (
        f"unsupported psql meta-command \\{command}{hint}; only plain SQL dumps without "
        f"meta-commands other than \\restrict and \\unrestrict can be loaded"
    )


def iter_items(lines: Iterable[str], chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[Statement | Copy]:
    """Parse the lines of a plain SQL dump into statements and COPY blocks.

    ``lines`` must keep their line terminators (as file iteration does).
    Empty statements and comments between statements are skipped.

    The ``chunks`` of a yielded :class:`Copy` read from the same input, so
    they must be consumed before the next item is requested; whatever is left
    unread at that point is read and discarded.

    Raises :class:`DumpError` for unsupported meta-commands, a COPY block
    without its ``\\.`` line, or input ending inside a statement.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    source = _Lines(lines)
    splitter = _Splitter()
    while (line := source.next()) is not None:
        statements = splitter.feed(line, source.number)
        for index, statement in enumerate(statements):
            if not _COPY_FROM_STDIN.match(statement.sql):
                yield statement
                continue
            if index != len(statements) - 1 or splitter.start_line is not None:
                raise DumpError("COPY ... FROM stdin must be the last statement on its line", source.number)
            reader = _CopyReader(source, statement.line, chunk_size)
            yield Copy(statement.sql, statement.line, reader)
            reader.drain()
    splitter.check_end()


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------

_CREATE_TABLE = re.compile(r"CREATE\s+(?:UNLOGGED\s+)?TABLE\b", re.IGNORECASE)
_SET_SESSION = re.compile(r"SET\s+(?:SESSION\s+)?([A-Za-z_][\w.]*)\s*(?:=|\bTO\b)", re.IGNORECASE)
_SET_CONFIG = re.compile(
    r"SELECT\s+(?:pg_catalog\s*\.\s*)?set_config\s*\(\s*'([^']+)'\s*,.*,\s*false\s*\)\s*\Z",
    re.IGNORECASE | re.DOTALL,
)
_CLIENT_ENCODING = re.compile(r"SET\s+(?:SESSION\s+)?client_encoding\s*(?:=|\bTO\b)\s*'?([\w-]+)'?\s*\Z", re.IGNORECASE)
_COPY_CONTEXT_LINE = re.compile(r"\bCOPY \S+, line (\d+)")


def load(conn: psycopg.Connection[Any], path: str | os.PathLike[str]) -> LoadStats:
    """Execute a plain SQL dump on ``conn`` (a psycopg 3 connection).

    The caller owns the transaction: ``load`` neither commits nor opens one,
    so wrapping the call in ``with conn.transaction():`` makes the load
    all-or-nothing.  Statements run with ``conn.execute``; COPY data is
    streamed with ``cursor.copy``.

    Session settings changed by the dump with ``SET`` or
    ``set_config(..., false)`` (``search_path`` in particular, which pg_dump
    empties) are put back to their previous values afterwards, also after an
    error unless the transaction is aborted (rolling it back reverts them).

    Raises :class:`DumpError` if the file is missing, does not look like a
    plain pg_dump file, cannot be parsed, or a statement fails on the server
    (the original exception is chained and the message names the dump line).
    """
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise DumpError(f"dump file not found: {name}")
    _check_plain_dump(name)

    import psycopg  # only needed once there is something to execute

    saved: dict[str, str | None] = {}
    _remember_setting(conn, saved, "search_path", name)
    stats = LoadStats()
    completed = False
    try:
        for item in iter_items(_read_lines(name)):
            if isinstance(item, Copy):
                _copy(conn, item, name, psycopg.Error)
                stats.copies += 1
                stats.rows += item.rows
                continue
            encoding = _CLIENT_ENCODING.match(item.sql)
            if encoding and encoding.group(1).upper().replace("-", "") != "UTF8":
                raise DumpError(
                    f"unsupported client_encoding {encoding.group(1)!r}; only UTF8 dumps can be loaded",
                    item.line,
                    name,
                )
            setting = _SET_SESSION.match(item.sql) or _SET_CONFIG.match(item.sql)
            if setting:
                _remember_setting(conn, saved, setting.group(1), name)
            try:
                conn.execute(item.sql)
            except psycopg.Error as exc:
                raise DumpError(
                    f"statement failed: {_server_message(exc)} (in: {_excerpt(item.sql)})",
                    item.line,
                    name,
                ) from exc
            stats.statements += 1
        completed = True
    finally:
        _restore_settings(conn, saved, name, raise_errors=completed)
    return stats


def _read_lines(path: str) -> Iterator[str]:
    """Lines of a UTF-8 file, terminators kept, decoded one at a time."""
    with open(path, "rb") as file:
        for number, raw in enumerate(file, 1):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DumpError(f"invalid UTF-8: {exc.reason}", number, path) from exc


def _check_plain_dump(path: str) -> None:
    """Reject files that are not plain SQL dumps, before executing anything."""
    not_a_dump = "does not look like a pg_dump plain SQL dump"
    with open(path, "rb") as file:
        head = file.read(5)
    if head == b"PGDMP":
        raise DumpError(
            f"{not_a_dump}: it is a pg_dump archive (custom format), use pg_restore or dump with --format=plain",
            path=path,
        )
    found_statement = False
    try:
        for item in iter_items(_read_lines(path)):
            found_statement = True
            if isinstance(item, Statement) and _CREATE_TABLE.match(item.sql):
                return
    except DumpError as exc:
        raise DumpError(f"{not_a_dump}: {exc.message}", exc.line, path) from exc
    reason = "no CREATE TABLE statement" if found_statement else "no SQL statement"
    raise DumpError(f"{not_a_dump} ({reason})", path=path)


def _copy(conn: psycopg.Connection[Any], item: Copy, path: str, error: type[Exception]) -> None:
    """Stream one COPY block to the server."""
    try:
        with conn.cursor() as cursor, cursor.copy(item.sql) as copy:
            for chunk in item.chunks:
                copy.write(chunk)
    except error as exc:
        line = item.line
        context = _COPY_CONTEXT_LINE.search(_server_context(exc))
        if context:  # the server names the failing data row
            line += int(context.group(1))
        raise DumpError(f"COPY failed: {_server_message(exc)} (in: {_excerpt(item.sql)})", line, path) from exc


def _remember_setting(conn: psycopg.Connection[Any], saved: dict[str, str | None], setting: str, path: str) -> None:
    """Record a session setting's current value, once, before the dump changes it."""
    import psycopg

    if setting in saved:
        return
    try:
        row = conn.execute("SELECT pg_catalog.current_setting(%s, true)", (setting,)).fetchone()
    except psycopg.Error as exc:
        raise DumpError(f"could not read setting {setting}: {exc}", path=path) from exc
    saved[setting] = row[0] if row else None


def _restore_settings(
    conn: psycopg.Connection[Any],
    saved: dict[str, str | None],
    path: str,
    raise_errors: bool,
) -> None:
    """Put the recorded session settings back (skipped in an aborted transaction)."""
    import psycopg
    from psycopg.pq import TransactionStatus

    if conn.closed or conn.info.transaction_status == TransactionStatus.INERROR:
        return
    for setting, value in saved.items():
        if value is None:
            continue
        try:
            conn.execute("SELECT pg_catalog.set_config(%s, %s, false)", (setting, value))
        except psycopg.Error as exc:
            if raise_errors:
                raise DumpError(f"could not restore setting {setting}: {exc}", path=path) from exc
            return


def _server_message(exc: BaseException) -> str:
    """The server's primary error message, or the first line of the exception."""
    diag = getattr(exc, "diag", None)
    message = getattr(diag, "message_primary", None)
    if message:
        return str(message)
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _server_context(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    return str(getattr(diag, "context", None) or "")


def _excerpt(sql: str, limit: int = 80) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
