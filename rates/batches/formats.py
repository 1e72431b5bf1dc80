"""Incremental parsers: decoded body chunks in, ``(line, row)`` items out (items.py).

Each parser reads the chunks of a ``Body`` as they arrive, numbers lines from 1 and yields every
row with its line, and every syntax problem as a ``Problem``. Nothing but the current chunk (and
one unfinished line or JSON value) is held in memory. They validate nothing and count nothing:
copy_blocks.py does, for all three.

- CSV (``text/csv``): a header naming the four fields (any order), then one row per line; a row
  is the list of its values in the order orig_code, dest_code, day, price.
- NDJSON (``application/x-ndjson``): one JSON value per line; blank lines are skipped.
- JSON (``application/json``): one array, parsed element by element (json_array.py).

A syntax error that loses the thread (a line longer than ``MAX_LINE``, more than
``MAX_BLANK_LINES`` blank lines in a row, a bad CSV header, malformed JSON in an array) is a
final problem; CSV and NDJSON otherwise go on after a bad line.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, count
from operator import itemgetter

from rates.batches.items import MAX_BLANK_LINES, MAX_LINE, Item, Items, Problem, Stop, final, json_problem
from rates.batches.json_array import parse_json
from rates.batches.rows import FIELDS
from rates.errors import UnsupportedMedia
from rates.rules import shown

MEDIA_TYPES = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "application/x-jsonlines": "ndjson",
    "application/json": "json",
}
SUPPORTED = "text/csv, application/x-ndjson or application/json"
_JSON = json.JSONDecoder()
TOO_MANY_BLANK_LINES = f"more than {MAX_BLANK_LINES} blank lines in a row: refused (a flood of blank lines?)"
MAX_NAMED = 8  # unexpected CSV header fields named in the error (a header may have thousands)
# csv's own words for a carriage return inside a line, which is all a body with CR-only line ends shows.
CSV_CR = "new-line character seen in unquoted field"


def parse_media_type(header: str | None) -> str:
    """The format named by a Content-Type header: csv, ndjson or json (415 otherwise)."""
    if not header:
        raise UnsupportedMedia(f"Content-Type is required: {SUPPORTED}")
    media, _, params = header.partition(";")
    fmt = MEDIA_TYPES.get(media.strip().lower())
    if fmt is None:
        raise UnsupportedMedia(f"Content-Type {shown(media.strip())} is not supported: send {SUPPORTED}")
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise UnsupportedMedia(f"charset {shown(value.strip())} is not supported: send UTF-8")
    return fmt


def parser(fmt: str) -> Callable[[Iterable[bytes]], Items]:
    return {"csv": parse_csv, "ndjson": parse_ndjson, "json": parse_json}[fmt]


class _Text:
    """The decoded text of the complete lines of each chunk; ``lines_before`` counts the lines
    before the text being read, ``problems`` collects the UTF-8 errors for the parser to yield."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = chunks
        self.lines_before = 0
        self.problems: list[tuple[int, Problem]] = []
        self.blank_lines = 0  # in a row, before the text being read (NDJSON)
        self.stopped = False  # a final problem was yielded (NDJSON)

    def texts(self) -> Iterator[str]:
        """Per chunk, the text of the lines it completes (the last ``\\n`` dropped, a BOM too)."""
        carry = b""
        for chunk in self.chunks:
            data = carry + chunk if carry else chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                if len(data) > MAX_LINE:
                    raise Stop(self.lines_before + 1, f"line longer than {MAX_LINE} bytes")
                carry = data
                continue
            complete, carry = data[:cut], data[cut + 1 :]
            yield from self._decoded(complete)
        if carry:
            yield from self._decoded(carry)

    def _decoded(self, data: bytes) -> Iterator[str]:
        if self.lines_before == 0:
            data = data.removeprefix(codecs.BOM_UTF8)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = self.lines_before + data.count(b"\n", 0, exc.start) + 1
            self.problems.append((line, Problem("not valid UTF-8", row=False)))
            text = data.decode("utf-8", errors="replace")
        yield text
        self.lines_before += text.count("\n") + 1

    def pending(self) -> list[tuple[int, Problem]]:
        """The problems collected so far, handed over once."""
        problems, self.problems = self.problems, []
        return problems


def parse_csv(chunks: Iterable[bytes]) -> Items:
    """CSV with a header line naming the four fields."""
    text = _Text(chunks)
    reader = csv.reader((line for block in text.texts() for line in block.split("\n")), strict=True)
    try:
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise Stop(reader.line_num or 1, _csv_problem(exc)) from None
        yield from text.pending()
        if header is not None:
            yield from _csv_rows(reader, _csv_order(header), text)
    except Stop as stop:
        yield from text.pending()
        yield stop.item


def _csv_problem(exc: csv.Error) -> str:
    if CSV_CR in str(exc):
        return "invalid CSV: a carriage return (CR) inside a line; lines must end with LF or CR LF"
    return f"invalid CSV: {exc}"


def _csv_order(header: list[str]) -> Callable[[list[str]], list[str]] | None:
    """What puts a row's values in FIELDS order (None: they are already); Stop for a bad header."""
    names = [name.strip() for name in header]
    problems = [f"missing field {name!r}" for name in FIELDS if name not in names]
    unexpected = [shown(name) for name in names if name not in FIELDS]
    problems += [f"unexpected field {name}" for name in unexpected[:MAX_NAMED]]
    if len(unexpected) > MAX_NAMED:
        problems.append(f"{len(unexpected)} unexpected fields in all")
    if len(set(names)) != len(names):
        problems.append("a field appears twice")
    if problems:
        raise Stop(1, f"the header must name {','.join(FIELDS)}: {'; '.join(problems)}")
    order = [names.index(name) for name in FIELDS]
    if order == list(range(len(FIELDS))):
        return None
    pick = itemgetter(*order)
    return lambda row: list(pick(row)) if len(row) == len(FIELDS) else row


def _csv_rows(reader: Iterator[list[str]], reorder: Callable[[list[str]], list[str]] | None, text: _Text) -> Items:
    last = reader.line_num  # type: ignore[attr-defined]
    blank = 0
    while True:
        try:
            for row in reader:
                if text.problems:
                    yield from text.pending()
                line = reader.line_num  # type: ignore[attr-defined]
                if line - last != 1:
                    # A quoted value ran over several lines (the line breaks are not kept, the
                    # lines being split beforehand); no valid value contains one anyway.
                    yield last + 1, Problem("a quoted value spans several lines")
                elif row:  # not a blank line
                    blank = 0
                    yield line, row if reorder is None else reorder(row)
                else:
                    blank += 1
                    if blank > MAX_BLANK_LINES:
                        raise Stop(line, TOO_MANY_BLANK_LINES)
                last = line
            break
        except csv.Error as exc:  # the reader goes on with the next line
            yield from text.pending()
            last = reader.line_num  # type: ignore[attr-defined]
            yield last, Problem(_csv_problem(exc))
    yield from text.pending()


def parse_ndjson(chunks: Iterable[bytes]) -> Items:
    """One JSON value per line; blank lines are skipped."""
    return chain.from_iterable(_ndjson_runs(_Text(chunks)))


def _ndjson_runs(text: _Text) -> Iterator[Iterable[Item]]:
    """The items of each chunk's lines, a chunk at a time."""
    try:
        for block in text.texts():
            yield text.pending()
            first = text.lines_before + 1
            values = _ndjson_at_once(block)
            if values is not None:
                text.blank_lines = 0
            yield _ndjson_lines(block, first, text) if values is None else zip(count(first), values)
            if text.stopped:  # the lines were read up to a final problem
                return
    except Stop as stop:
        yield text.pending()
        yield (stop.item,)


def _ndjson_at_once(text: str) -> list[object] | None:
    """The values of all the lines of ``text`` decoded by one C call, or None if that is unsure.

    When every line is one flat object (each line boundary is ``}\\n{``, and there are as many
    ``{`` as lines), the lines joined by commas are a JSON array of one object per line. If the
    array decodes into as many objects as lines, each of them holding one ``{``, no object can
    span two lines: they are the lines' values, in order. Otherwise, line by line.
    """
    lines = text.count("\n") + 1
    if not (text.startswith("{") and text.endswith("}")) or text.count("}\n{") != lines - 1:
        return None
    if text.count("{") != lines:
        return None
    try:
        values = json.loads("[" + text.replace("\n", ",") + "]")
    except (ValueError, RecursionError):
        return None
    if len(values) != lines or set(map(type, values)) != {dict}:
        return None
    return values  # type: ignore[no-any-return]


def _ndjson_lines(text: str, number: int, state: _Text) -> Items:
    decode = _JSON.decode
    blank = state.blank_lines
    for line in text.split("\n"):
        if line and not line.isspace():
            blank = 0
            try:
                yield number, decode(line)
            except (ValueError, RecursionError) as exc:
                yield number, Problem(json_problem(exc))
        else:
            blank += 1
            if blank > MAX_BLANK_LINES:
                state.stopped = True
                yield number, final(TOO_MANY_BLANK_LINES)
                return
        number += 1
    state.blank_lines = blank
