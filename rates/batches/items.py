"""What the parsers yield: ``(line, row)`` items, a row being a value or a ``Problem``.

A parser only parses: it numbers lines and yields each row as it reads it (the list of a CSV
line's values, put in the order orig_code, dest_code, day, price; or a decoded JSON value), and
each syntax problem as a ``Problem`` at its line. It keeps no count and no error list; the one
consumer (copy_blocks.py) does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

MAX_LINE = 1024 * 1024  # a line (CSV, NDJSON) or an array element (JSON) longer than this is an error
# Blank lines in a row (CSV, NDJSON), or characters of whitespace between two elements (JSON),
# beyond which a body is refused: a flood of blank lines would otherwise cost parsing time and
# keep the batch's transaction open while yielding no row.
MAX_BLANK_LINES = 1000
MAX_BLANK = MAX_LINE
NESTED_TOO_DEEPLY = "invalid JSON: nested too deeply"


class Problem:
    """A syntax problem at a line.

    ``row``: it stands for one data row (counted as such), e.g. a CSV line that is not valid CSV;
    False for a problem with the text around rows (bytes that are not UTF-8: the row still
    follows). ``final``: parsing cannot go on after it; the parser yields nothing more.
    """

    __slots__ = ("message", "row", "final")

    def __init__(self, message: str, *, row: bool = True, final: bool = False) -> None:
        self.message = message
        self.row = row and not final
        self.final = final

    def __repr__(self) -> str:
        return f"Problem({self.message!r}, row={self.row}, final={self.final})"


def final(message: str) -> Problem:
    """A problem after which the rest of the body cannot be parsed."""
    return Problem(message, final=True)


Item = tuple[int, Any]  # (line, row or Problem)
Items = Iterator[Item]


class Stop(Exception):
    """Raised inside a parser, caught by the parser itself: yield one final problem and end."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.item: Item = (line, final(message))


def json_problem(exc: ValueError | RecursionError) -> str:
    """The message for a value ``json`` could not decode."""
    if isinstance(exc, RecursionError):  # the C scanner recurses once per nesting level
        return NESTED_TOO_DEEPLY
    return f"invalid JSON: {exc.msg if isinstance(exc, json.JSONDecodeError) else exc}"
