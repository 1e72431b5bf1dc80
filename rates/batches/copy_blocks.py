"""The one consumer of a parser's items: validates each row, counts the rows, collects the errors
and turns the valid rows into blocks of COPY text.

    batch = CopyBlocks(parser(fmt)(body.chunks()), Validator(ports), fmt)
    for text in batch.blocks():   # one per BLOCK_ROWS rows; batch.rows, batch.errors so far
        copy.write(text)

``blocks()`` is one iterator: after leaving it early (an error, a limit), going on with it parses
the rest of the body, so that every error is counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

from rates.batches.items import Item, Items, Problem
from rates.batches.rows import Errors, Validator

BLOCK_ROWS = 8192  # rows per block of COPY text


class CopyBlocks:
    def __init__(self, items: Items, validator: Validator, fmt: str, errors: Errors | None = None) -> None:
        self.errors = errors if errors is not None else Errors()
        self.rows = 0  # data rows seen so far, valid or not (for the row limit and the summary)
        self._check = validator.check(fmt)
        self._not_rows = 0  # problems that are not rows (text that is not UTF-8)
        self._blocks = self._run(map(validator.lookups(fmt, self._checked), items))

    def blocks(self) -> Iterator[str]:
        return self._blocks

    def _run(self, texts: Iterator[str]) -> Iterator[str]:
        """A block of COPY text per BLOCK_ROWS rows (fewer lines, or none, for invalid rows).

        ``texts`` holds one COPY line per item, empty for an invalid row or a problem: ``map`` and
        ``islice`` drive the loop in C, leaving one Python call per row.
        """
        rows = 0
        while block := list(islice(texts, BLOCK_ROWS)):
            rows += len(block)
            self.rows = rows - self._not_rows
            yield "".join(block)

    def _checked(self, item: Item) -> str:
        """The COPY line of a row the lookups could not place, or "" after recording its errors."""
        line, row = item
        if type(row) is Problem:
            self.errors.add(line, None, row.message)
            self._not_rows += not row.row
            return ""
        result = self._check(row)
        if isinstance(result, str):
            return result
        for field, message in result:
            self.errors.add(line, field, message)
        return ""
