"""The JSON array parser: body chunks in, one ``(line, element)`` item per array element out.

The array is never decoded whole. ``_JsonArray`` keeps a text buffer of the decoded chunks and a
position in it, and reads the array's punctuation itself. Elements are decoded by the standard
library's C scanner, in two ways:

- many at once: the text up to the last ``}`` in the buffer, wrapped in ``[...]``, decoded by one
  ``json.loads``. When it decodes, it is exactly a run of complete elements. Each element's line
  is the line of the run's start if the run has no line break; otherwise the run must be objects
  holding one ``{`` each (their own), so the n-th ``{`` starts the n-th element;
- one at a time with ``raw_decode`` (which gives where each value ends), for a run that is not
  such, up to its last ``}``: the line of every element, valid or not, stays exact.

The measured reason for the standard library rather than a streaming parser such as ijson is
in docs/batch-ingestion.md.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator
from itertools import accumulate, chain, islice, repeat
from typing import NoReturn

from rates.batches.items import MAX_BLANK, MAX_LINE, NESTED_TOO_DEEPLY, Item, Items, Stop, json_problem

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_NOT_MARKS = bytes(c for c in range(256) if c not in b"{\n")  # deleted to count line breaks per element
READ_AHEAD = 65536  # characters buffered before decoding, so an element rarely straddles two chunks


def parse_json(chunks: Iterable[bytes]) -> Items:
    """A JSON array of objects, decoded a run of elements at a time (``chain`` hands out the
    items of each run without a Python frame per item)."""
    return chain.from_iterable(_JsonArray(chunks).runs())


class _JsonArray:
    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.source: Iterator[bytes] = iter(chunks)
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.buf = ""
        self.pos = 0  # where parsing is in buf
        self.line = 1  # the line of buf[counted]
        self.counted = 0
        self.eof = False
        self.started = False  # some text was read (a BOM is dropped before it)
        self.slow_until = 0  # where the last run that could not be decoded at once ends

    def runs(self) -> Iterator[Iterable[Item]]:
        """The items, a run of elements (or a single one) at a time."""
        try:
            if self._skip_ws() != "[":
                self._fail("expected a JSON array of objects ('[' first)")
            self.pos += 1
            empty = expect_value = True
            while True:
                c = self._skip_ws()
                if c is None:
                    self._fail("unexpected end of the body: the JSON array is not closed")
                if c == "]" and (not expect_value or empty):
                    self.pos += 1
                    break
                if not expect_value:
                    if c != ",":
                        self._fail(f"expected ',' or ']' after an array element, got {c!r}")
                    self.pos += 1
                    expect_value = True
                    continue
                while len(self.buf) - self.pos < READ_AHEAD and self._more():
                    pass
                run = self._run() if c == "{" and self.pos >= self.slow_until else None
                yield (self._element(),) if run is None else run
                empty = expect_value = False
            if self._skip_ws() is not None:
                self._fail("unexpected data after the end of the JSON array")
        except Stop as stop:
            yield (stop.item,)

    def _run(self) -> Iterator[Item] | None:
        """The elements from ``pos`` to the last ``}`` in the buffer, if they decode at once
        and each one's line is known; else None (and one at a time up to there)."""
        end = self.buf.rfind("}") + 1
        buf, pos = self.buf, self.pos
        try:
            values = json.loads("[" + buf[pos:end] + "]") if end > pos else None
        except (ValueError, RecursionError):
            values = None
        first = self.line_at(pos)
        if not values:
            lines = None
        elif buf.count("\n", pos, end) == 0:
            lines = repeat(first)
        elif buf.count("{", pos, end) == len(values) and set(map(type, values)) == {dict}:
            # Keep only the "{" and line breaks of the run (as UTF-8, where both are one byte): the
            # breaks between the n-th "{" and the next are those before the next element.
            marks = buf[pos:end].encode().translate(None, _NOT_MARKS).split(b"{")
            lines = accumulate(map(len, islice(marks, 1, len(values))), initial=first)
        else:
            lines = None
        if lines is None:
            self.slow_until = end
            return None
        self.pos = end
        return zip(lines, values, strict=False)  # type: ignore[arg-type]

    def _element(self) -> Item:
        """One element, decoded alone (the buffer grows while it is incomplete, up to MAX_LINE)."""
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
                break
            except RecursionError:
                self._fail(NESTED_TOO_DEEPLY)
            except ValueError as exc:
                if len(self.buf) - self.pos > MAX_LINE or not self._more():
                    self._fail(json_problem(exc))
        item = (self.line_at(self.pos), value)
        self.pos = end
        return item

    def _more(self) -> bool:
        """Append the next chunk to the buffer, dropping what was consumed; False at the end."""
        if self.eof:
            return False
        chunk = next(self.source, None)
        try:
            text = self.decoder.decode(chunk or b"", final=chunk is None)
        except UnicodeDecodeError:
            raise Stop(self.line + self.buf.count("\n", self.counted), "not valid UTF-8") from None
        if not self.started and text:
            text = text.removeprefix("\ufeff")
            self.started = True
        self.eof = chunk is None
        self.line += self.buf.count("\n", self.counted, self.pos)  # lines of the part dropped now
        self.buf = self.buf[self.pos :] + text
        self.slow_until = max(0, self.slow_until - self.pos)
        self.counted = self.pos = 0
        return not self.eof or bool(text)

    def line_at(self, index: int) -> int:
        """The line of ``buf[index]`` (``index`` never goes back)."""
        self.line += self.buf.count("\n", self.counted, index)
        self.counted = index
        return self.line

    def _skip_ws(self) -> str | None:
        """The next significant character (the buffer refilled as needed), None at the end; no
        more than MAX_BLANK characters of whitespace in a row."""
        skipped = 0
        while True:
            start = self.pos
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            skipped += self.pos - start
            if skipped > MAX_BLANK:
                self._fail(f"more than {MAX_BLANK} characters of whitespace in a row: refused")
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return None

    def _fail(self, message: str) -> NoReturn:
        raise Stop(self.line_at(min(self.pos, len(self.buf))), message)
