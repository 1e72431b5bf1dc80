"""Tests of the plain pg_dump parser and of load()'s checks that need no database."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest

from rates.sqldump import Copy, DumpError, Statement, iter_items, load

REPO_ROOT = Path(__file__).resolve().parents[2]
ORIGINAL_DUMP = REPO_ROOT.parent / "shared" / "data" / "rates.sql"


def lines(text: str) -> list[str]:
    return io.StringIO(text).readlines()


def items(text: str, **kwargs: Any) -> list[Statement | tuple[Copy, str]]:
    """Parse ``text``; COPY items come with their data (read in order)."""
    result: list[Statement | tuple[Copy, str]] = []
    for item in iter_items(lines(text), **kwargs):
        result.append((item, "".join(item.chunks)) if isinstance(item, Copy) else item)
    return result


def sqls(text: str) -> list[str]:
    return [item.sql for item in items(text) if isinstance(item, Statement)]


# --- splitting -------------------------------------------------------------------


def test_split_simple_statements_with_line_numbers() -> None:
    text = "SET a = 1;\n\nSELECT 1; SELECT 2;\nSELECT\n  3\n;\n"
    parsed = items(text)
    assert parsed == [
        Statement("SET a = 1", 1),
        Statement("SELECT 1", 3),
        Statement("SELECT 2", 3),
        Statement("SELECT\n  3", 4),
    ]


def test_comments_between_statements_are_dropped() -> None:
    text = "--\n-- Name: t; Type: TABLE\n--\n\n/* block\n ; still comment */\nCREATE TABLE t (a int);\n"
    assert items(text) == [Statement("CREATE TABLE t (a int)", 7)]


def test_semicolons_in_strings_and_identifiers() -> None:
    text = "SELECT 'a;b', 'it''s;' , \"we;ird\"\"id\" FROM t;\nSELECT 2;\n"
    assert sqls(text) == ["SELECT 'a;b', 'it''s;' , \"we;ird\"\"id\" FROM t", "SELECT 2"]


def test_multiline_string() -> None:
    text = "INSERT INTO t VALUES ('line 1;\n-- not a comment;\nline 3');\nSELECT 1;\n"
    assert sqls(text) == ["INSERT INTO t VALUES ('line 1;\n-- not a comment;\nline 3')", "SELECT 1"]


def test_escape_strings() -> None:
    text = "SELECT E'it\\'s; fine', e'\\\\';\nSELECT 'back\\';\nSELECT 3;\n"
    # In a standard string a backslash is an ordinary character.
    assert sqls(text) == ["SELECT E'it\\'s; fine', e'\\\\'", "SELECT 'back\\'", "SELECT 3"]


def test_doubled_quote_inside_escape_string() -> None:
    assert sqls("SELECT E'a''b\\';c';\nSELECT 2;\n") == ["SELECT E'a''b\\';c'", "SELECT 2"]


def test_identifier_ending_in_e_is_not_an_escape_string() -> None:
    assert sqls("SELECT some'x\\';\nSELECT 2;\n") == ["SELECT some'x\\'", "SELECT 2"]


def test_standard_conforming_strings_off() -> None:
    text = "SET standard_conforming_strings = off;\nSELECT 'a\\';b';\nSELECT 2;\n"
    assert sqls(text) == ["SET standard_conforming_strings = off", "SELECT 'a\\';b'", "SELECT 2"]


def test_dollar_quoting() -> None:
    text = (
        "CREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  RETURN 1; -- ;\nEND;\n$$ LANGUAGE plpgsql;\n"
        "CREATE FUNCTION g() RETURNS text AS $body$ SELECT $$;$$ || ';' $body$ LANGUAGE sql;\n"
        "SELECT $1, a$b$c FROM t;\n"
    )
    assert sqls(text) == [
        "CREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  RETURN 1; -- ;\nEND;\n$$ LANGUAGE plpgsql",
        "CREATE FUNCTION g() RETURNS text AS $body$ SELECT $$;$$ || ';' $body$ LANGUAGE sql",
        "SELECT $1, a$b$c FROM t",
    ]


def test_comments_inside_statements() -> None:
    text = "SELECT 1 -- one; two\n  + 2 /* ; /* nested ; */ ; */ ;\nSELECT 3;\n"
    assert sqls(text) == ["SELECT 1 -- one; two\n  + 2 /* ; /* nested ; */ ; */", "SELECT 3"]


def test_empty_statements_and_input() -> None:
    assert items("") == []
    assert items("\n\n-- only a comment\n;\n ; ;\n") == []


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("SELECT 1;\nSELECT 'open\n", 2, "unterminated quoted string"),
        ('SELECT "open\n', 1, "unterminated quoted identifier"),
        ("SELECT 1;\n\nSELECT $x$ open\n", 3, "unterminated dollar-quoted string $x$"),
        ("/* open\n", 1, "unterminated /* comment"),
        ("SELECT 1;\nCREATE TABLE t (\n  a int\n", 2, "not terminated by a semicolon"),
    ],
)
def test_truncated_input(text: str, line: int, what: str) -> None:
    with pytest.raises(DumpError, match=re.escape(what)) as caught:
        items(text)
    assert caught.value.line == line
    assert f"line {line}:" in str(caught.value)


# --- COPY blocks -------------------------------------------------------------------------


def test_copy_block() -> None:
    text = "COPY public.t (a, b) FROM stdin;\n1\tx;y\n2\t\\N\n\\.\n\nSELECT 'after';\ncopy t from STDIN;\n\\.\n"
    parsed = items(text)
    assert len(parsed) == 3
    copy, data = parsed[0]  # type: ignore[misc]
    assert (copy.sql, copy.line, copy.rows) == ("COPY public.t (a, b) FROM stdin", 1, 2)
    assert data == "1\tx;y\n2\t\\N\n"
    assert parsed[1] == Statement("SELECT 'after'", 6)
    empty, data = parsed[2]  # type: ignore[misc]
    assert (empty.line, empty.rows, data) == (7, 0, "")


def test_copy_with_crlf_terminator() -> None:
    parsed = items("COPY t FROM stdin;\r\n1\r\n\\.\r\nSELECT 1;\r\n")
    assert parsed[0][1] == "1\r\n"  # type: ignore[index]
    assert parsed[1] == Statement("SELECT 1", 4)


def test_copy_to_stdout_is_a_statement() -> None:
    assert items("COPY t TO stdout;\n") == [Statement("COPY t TO stdout", 1)]


def test_unread_copy_data_is_skipped() -> None:
    text = "COPY t FROM stdin;\n1\n2\n\\.\nSELECT 1;\n"
    parsed = list(iter_items(lines(text)))  # chunks never read
    assert [type(item) for item in parsed] == [Copy, Statement]
    assert parsed[0].rows == 2
    assert parsed[1] == Statement("SELECT 1", 5)


def test_truncated_copy_block() -> None:
    text = "SELECT 1;\nCOPY public.prices (a) FROM stdin;\n1\n2\n"
    with pytest.raises(DumpError, match=r"not terminated by a \\\. line.*\(line 4\).*truncated") as caught:
        items(text)
    assert caught.value.line == 2


def test_statement_after_copy_on_same_line_is_rejected() -> None:
    with pytest.raises(DumpError, match="last statement on its line") as caught:
        items("SELECT 0;\nCOPY t FROM stdin; SELECT 1;\n\\.\n")
    assert caught.value.line == 2


def test_copy_chunks_are_bounded() -> None:
    rows = [f"{n}\t{'x' * (n % 37)}\n" for n in range(5000)]
    huge = "h" * 1000 + "\n"
    data = "".join(rows[:2500]) + huge + "".join(rows[2500:])
    text = "COPY t (a, b) FROM stdin;\n" + data + "\\.\nSELECT 1;\n"
    parsed = iter_items(lines(text), chunk_size=256)
    copy = next(parsed)
    assert isinstance(copy, Copy)
    chunks = list(copy.chunks)
    rest = list(parsed)
    assert "".join(chunks) == data
    assert max(len(chunk) for chunk in chunks) <= 256
    assert len(chunks) > len(data) // 256
    assert copy.rows == 5001
    assert rest == [Statement("SELECT 1", 5004)]


def test_chunks_stream_lazily() -> None:
    """The parser does not read ahead of the consumer."""
    consumed: list[int] = []

    def source() -> Any:
        yield "COPY t FROM stdin;\n"
        for n in range(10):
            consumed.append(n)
            yield f"{n}\n"
        yield "\\.\n"

    copy = next(iter_items(source(), chunk_size=4))
    assert isinstance(copy, Copy)
    assert consumed == []
    assert next(copy.chunks) == "0\n1\n"
    assert consumed == [0, 1]


# --- psql meta-commands -------------------------------------------------------------------


def test_restrict_meta_commands_are_ignored() -> None:
    text = "\\restrict AbC123\nSET a = 1;\n  \\unrestrict AbC123\n"
    assert items(text) == [Statement("SET a = 1", 2)]


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("SELECT 1;\n\\connect rates\n", 2, r"unsupported psql meta-command \\connect \(dumps made with"),
        ("SELECT 1;\n\n\\set ON_ERROR_STOP on\n", 3, r"unsupported psql meta-command \\set"),
        ("SELECT 1 \\g\n", 1, r"\\g"),
        ("SELECT 1;\n\\.\n", 2, r"end-of-data marker \\\. outside a COPY block"),
    ],
)
def test_other_meta_commands_are_rejected(text: str, line: int, what: str) -> None:
    with pytest.raises(DumpError, match=what) as caught:
        items(text)
    assert caught.value.line == line


def test_backslash_inside_quotes_is_not_a_meta_command() -> None:
    assert sqls("SELECT '\\connect', \"\\x\", $$\\set$$;\n") == ["SELECT '\\connect', \"\\x\", $$\\set$$"]


# --- load() checks done before touching the connection ------------------------------------


def test_load_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.sql"
    with pytest.raises(DumpError) as caught:
        load(None, missing)  # type: ignore[arg-type]
    assert str(caught.value) == f"dump file not found: {missing}"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "no SQL statement"),
        (b"\n-- nothing here\n", "no SQL statement"),
        (b"SET a = 1;\nCOPY t FROM stdin;\n1\n\\.\n", "no CREATE TABLE"),
        (b"PGDMP\x01\x0e\x00", "custom format"),
        (b"hello world\n", "not terminated by a semicolon"),
    ],
)
def test_load_rejects_non_dumps(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "dump.sql"
    path.write_bytes(content)
    with pytest.raises(DumpError, match="does not look like a pg_dump plain SQL dump") as caught:
        load(None, path)  # type: ignore[arg-type]
    assert reason in str(caught.value)


def test_load_rejects_meta_command_before_any_table(tmp_path: Path) -> None:
    path = tmp_path / "dump.sql"
    path.write_text("SET a = 1;\n\\connect other\nCREATE TABLE t (a int);\n")
    with pytest.raises(DumpError, match=r"\\connect") as caught:
        load(None, path)  # type: ignore[arg-type]
    assert caught.value.line == 2


def test_load_rejects_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "dump.sql"
    path.write_bytes(b"SET a = 1;\nSELECT '\xff';\nCREATE TABLE t (a int);\n")
    with pytest.raises(DumpError, match="invalid UTF-8") as caught:
        load(None, path)  # type: ignore[arg-type]
    assert caught.value.line == 2


# --- the original dump ---------------------------------------------------------------------


@pytest.mark.skipif(not ORIGINAL_DUMP.is_file(), reason=f"{ORIGINAL_DUMP} not available")
def test_parse_original_dump() -> None:
    creates: list[str] = []
    copies: dict[str, int] = {}
    with ORIGINAL_DUMP.open(encoding="utf-8") as dump:
        for item in iter_items(dump):
            if isinstance(item, Copy):
                for _chunk in item.chunks:
                    pass
                copies[item.sql.split()[1]] = item.rows
            elif item.sql.startswith("CREATE TABLE"):
                creates.append(item.sql.split()[2])
    assert creates == ["public.ports", "public.prices", "public.regions"]
    assert copies == {"public.ports": 143, "public.prices": 56689, "public.regions": 20}
