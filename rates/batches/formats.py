"""Incremental parsers: decoded body chunks in, blocks of COPY text lines out.

Each parser reads the chunks of a ``Body`` as they arrive, numbers lines from 1, hands every
row to the ``Validator`` and yields, per input chunk, the list of COPY lines of its valid rows.
Nothing but the current chunk (and one unfinished line or JSON value) is held in memory.

- CSV (``text/csv``): a header naming the four fields (any order), then one row per line.
- NDJSON (``application/x-ndjson``): one JSON object per line; blank lines are skipped.
- JSON (``application/json``): one array of objects, parsed value by value with
  ``JSONDecoder.raw_decode``, never as a whole; an error's line is where its value starts.

A syntax error that loses the thread (an unterminated CSV quote at the end, malformed JSON in an
array) stops parsing; CSV and NDJSON otherwise go on after a bad line, to count every error.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Callable, Iterable, Iterator

from rates.batches.rows import FIELDS, Validator
from rates.errors import UnsupportedMedia

MAX_LINE = 1024 * 1024  # a line (CSV, NDJSON) or an array element (JSON) longer than this is an error
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

Blocks = Iterator[list[str]]
BLOCK_ROWS = 8192  # COPY lines handed over at once


class Tally:
    """Data rows seen so far, valid or not (for the row limit)."""

    rows = 0


class Stop(Exception):
    """A syntax error after which the rest of the body cannot be parsed."""


def parse_media_type(header: str | None) -> str:
    """The format named by a Content-Type header: csv, ndjson or json (415 otherwise)."""
    if not header:
        raise UnsupportedMedia(f"Content-Type is required: {SUPPORTED}")
    media, _, params = header.partition(";")
    fmt = MEDIA_TYPES.get(media.strip().lower())
    if fmt is None:
        raise UnsupportedMedia(f"Content-Type {media.strip()!r} is not supported: send {SUPPORTED}")
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise UnsupportedMedia(f"charset {value.strip()!r} is not supported: send UTF-8")
    return fmt


def parser(fmt: str) -> Callable[[Iterable[bytes], Validator, Tally], Blocks]:
    return {"csv": parse_csv, "ndjson": parse_ndjson, "json": parse_json}[fmt]


def _texts(chunks: Iterable[bytes], validator: Validator, lines_seen: list[int]) -> Iterator[str]:
    """Per chunk, the decoded text of the complete lines it ends (the last ``\\n`` dropped).

    ``lines_seen[0]`` must hold the number of lines before each text (callers update it), for
    the line number of a UTF-8 error, reported there and decoded with replacement characters.
    """
    carry = b""
    first = True
    for chunk in chunks:
        data = carry + chunk if carry else chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            if len(data) > MAX_LINE:
                validator.errors.add(lines_seen[0] + 1, None, f"line longer than {MAX_LINE} bytes")
                raise Stop
            carry = data
            continue
        complete, carry = data[:cut], data[cut + 1 :]
        if first:
            complete = complete.removeprefix(codecs.BOM_UTF8)
            first = False
        yield _decode(complete, validator, lines_seen[0])
    if carry:
        if first:
            carry = carry.removeprefix(codecs.BOM_UTF8)
        yield _decode(carry, validator, lines_seen[0])


def _decode(data: bytes, validator: Validator, lines_before: int) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = lines_before + data.count(b"\n", 0, exc.start) + 1
        validator.errors.add(line, None, "not valid UTF-8")
        return data.decode("utf-8", errors="replace")


def parse_csv(chunks: Iterable[bytes], validator: Validator, tally: Tally) -> Blocks:
    """CSV with a header line naming the four fields."""
    lines_seen = [0]  # csv.reader numbers the lines itself

    def line_source() -> Iterator[str]:
        for text in _texts(chunks, validator, lines_seen):
            lines = text.split("\n")
            yield from lines
            lines_seen[0] += len(lines)

    reader = csv.reader(line_source(), strict=True)
    add_error = validator.errors.add
    try:
        header = next(reader, None)
        if header is None:
            return
        order = _csv_header(header, validator)
        strings = validator.strings
        canonical = order == (0, 1, 2, 3)
        io, idest, iday, iprice = order
        out: list[str] = []
        last = reader.line_num
        while True:
            try:
                for row in reader:
                    line = reader.line_num
                    if line - last != 1:
                        # A quoted value ran over several lines (the line breaks are not kept, the
                        # lines being split beforehand); no valid value contains one anyway.
                        tally.rows += 1
                        add_error(last + 1, None, "a quoted value spans several lines")
                        last = line
                        continue
                    last = line
                    if not row:  # a blank line
                        continue
                    tally.rows += 1
                    if len(row) == 4:
                        if canonical:
                            copy_line = strings(line, *row)
                        else:
                            copy_line = strings(line, row[io], row[idest], row[iday], row[iprice])
                        if copy_line is not None:
                            out.append(copy_line)
                            if len(out) >= BLOCK_ROWS:
                                yield out
                                out = []
                    else:
                        add_error(line, None, f"expected 4 values ({','.join(FIELDS)}), got {len(row)}")
                break
            except csv.Error as exc:  # the reader goes on with the next line
                tally.rows += 1
                add_error(reader.line_num, None, f"invalid CSV: {exc}")
                last = reader.line_num
        if out:
            yield out
    except csv.Error as exc:  # in the header
        add_error(reader.line_num or 1, None, f"invalid CSV: {exc}")
    except Stop:
        return


def _csv_header(header: list[str], validator: Validator) -> tuple[int, int, int, int]:
    names = [name.strip() for name in header]
    problems = [f"missing field {name!r}" for name in FIELDS if name not in names]
    problems += [f"unexpected field {name!r}" for name in names if name not in FIELDS]
    if len(set(names)) != len(names):
        problems.append("a field appears twice")
    if problems:
        validator.errors.add(1, None, f"the header must name {','.join(FIELDS)}: {'; '.join(problems)}")
        raise Stop
    return tuple(names.index(name) for name in FIELDS)  # type: ignore[return-value]


def parse_ndjson(chunks: Iterable[bytes], validator: Validator, tally: Tally) -> Blocks:
    """One JSON object per line; blank lines are skipped."""
    lines_seen = [0]
    try:
        for text in _texts(chunks, validator, lines_seen):
            out = _ndjson_fast(text, validator)
            if out is None:
                out = _ndjson_lines(text, validator, lines_seen[0])
            count = text.count("\n") + 1
            tally.rows += len(out) if len(out) == count else count - _blank_lines(text)
            lines_seen[0] += count
            yield out
    except Stop:
        return


def _ndjson_fast(text: str, validator: Validator) -> list[str] | None:
    """All the lines of ``text`` as COPY lines in one pass, or None if any line needs a closer look.

    Every line must be one object (each line boundary is ``}\\n{``), so the lines joined by commas
    are a JSON array with one element per line, decoded by one C call. Only when every element is
    a valid row is the block accepted; otherwise it is parsed again line by line for the errors.
    """
    if not (text.startswith("{") and text.endswith("}")) or text.count("\n") != text.count("}\n{"):
        return None
    try:
        objs = json.loads("[" + text.replace("\n", ",") + "]")
    except ValueError:
        return None
    if len(objs) != text.count("\n") + 1:
        return None
    fast = validator.mapping_fast
    out = [fast(obj) for obj in objs]
    if None in out:
        return None
    return out  # type: ignore[return-value]


def _ndjson_lines(text: str, validator: Validator, number: int) -> list[str]:
    decode = json.JSONDecoder().decode
    mapping = validator.mapping
    out: list[str] = []
    for line in text.split("\n"):
        number += 1
        if not line or line.isspace():
            continue
        try:
            obj = decode(line)
        except ValueError as exc:
            validator.errors.add(number, None, f"invalid JSON: {_json_message(exc)}")
            continue
        copy_line = mapping(number, obj)
        if copy_line is not None:
            out.append(copy_line)
    return out


def _blank_lines(text: str) -> int:
    return sum(1 for line in text.split("\n") if not line or line.isspace())


_WS = re.compile(r"[ \t\n\r]*")


def parse_json(chunks: Iterable[bytes], validator: Validator, tally: Tally) -> Blocks:
    """A JSON array of objects, decoded one element at a time."""
    raw_decode = json.JSONDecoder().raw_decode
    decoder = codecs.getincrementaldecoder("utf-8")()
    mapping = validator.mapping
    add_error = validator.errors.add
    source = iter(chunks)
    buf = ""
    pos = 0
    line = 1  # line of buf[counted]
    counted = 0
    eof = False
    first = True
    slow_until = 0  # where the last failed fast attempt ended: one value at a time until there

    def more() -> bool:
        """Append the next chunk to the buffer, dropping what was consumed; False at the end."""
        nonlocal buf, pos, counted, eof, first, line, slow_until
        if eof:
            return False
        chunk = next(source, None)
        try:
            text = decoder.decode(chunk or b"", final=chunk is None)
        except UnicodeDecodeError:
            add_error(line + buf.count("\n", counted), None, "not valid UTF-8")
            raise Stop from None
        if first and text:
            text = text.removeprefix("\ufeff")
            first = False
        if chunk is None:
            eof = True
        line += buf.count("\n", counted, pos)  # lines of the part dropped now
        buf = buf[pos:] + text
        slow_until = max(0, slow_until - pos)
        counted = pos = 0
        return not eof or bool(text)

    def line_at(index: int) -> int:
        nonlocal line, counted
        line += buf.count("\n", counted, index)
        counted = index
        return line

    def skip_ws() -> str | None:
        """The next significant character (buffer refilled as needed), None at the end."""
        nonlocal pos
        while True:
            pos = _WS.match(buf, pos).end()  # type: ignore[union-attr]
            if pos < len(buf):
                return buf[pos]
            if not more():
                return None

    def fail(message: str) -> None:
        add_error(line_at(min(pos, len(buf))), None, message)
        raise Stop

    try:
        if skip_ws() != "[":
            fail("expected a JSON array of objects ('[' first)")
        pos += 1
        out: list[str] = []
        empty = True
        expect_value = True
        closed = False
        while True:
            c = skip_ws()
            if c is None:
                fail("unexpected end of the body: the JSON array is not closed")
            if c == "]" and (not expect_value or empty):
                pos += 1
                closed = True
                break
            if not expect_value:
                if c != ",":
                    fail(f"expected ',' or ']' after an array element, got {c!r}")
                pos += 1
                expect_value = True
                continue
            # Have at least a few KB buffered so a value rarely straddles two chunks.
            while len(buf) - pos < 65536 and more():
                pass
            if pos >= slow_until and c == "{":
                fast = _json_fast(buf, pos, validator)
                if fast is None:
                    slow_until = buf.rfind("}") + 1
                else:
                    lines, pos = fast
                    tally.rows += len(lines)
                    out.extend(lines)
                    empty = expect_value = False
                    if len(out) >= BLOCK_ROWS:
                        yield out
                        out = []
                    continue
            while True:
                try:
                    obj, end = raw_decode(buf, pos)
                    break
                except ValueError as exc:
                    # Incomplete (the value goes on in the next chunk) or wrong: read on, up to a bound.
                    if len(buf) - pos > MAX_LINE or not more():
                        fail(f"invalid JSON: {_json_message(exc)}")
            number = line_at(pos)
            pos = end
            tally.rows += 1
            empty = expect_value = False
            copy_line = mapping(number, obj)
            if copy_line is not None:
                out.append(copy_line)
                if len(out) >= BLOCK_ROWS:
                    yield out
                    out = []
        if out:
            yield out
        if closed and skip_ws() is not None:
            fail("unexpected data after the end of the JSON array")
    except Stop:
        return


def _json_fast(buf: str, pos: int, validator: Validator) -> tuple[list[str], int] | None:
    """The COPY lines of every complete array element from ``pos`` on, with the position after them.

    Valid rows hold no brace but their own, so if the text up to the last ``}`` decodes as a
    sequence of objects that are all valid rows, each ``}`` ended an element and the sequence is
    exactly the elements there. Otherwise None: the caller goes one value at a time (and gives
    every error its line).
    """
    end = buf.rfind("}") + 1
    if end <= pos:
        return None
    try:
        objs = json.loads("[" + buf[pos:end] + "]")
    except ValueError:
        return None
    fast = validator.mapping_fast
    lines = [fast(obj) for obj in objs]
    if None in lines:
        return None
    return lines, end  # type: ignore[return-value]


def _json_message(exc: ValueError) -> str:
    return exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
