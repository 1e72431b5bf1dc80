"""Validation of one price row, and the list of errors a batch reports.

A row is valid when it has exactly the fields orig_code, dest_code, day and price; both codes
are ports (the set of port codes is read once at the start of the batch's transaction); day is
an ISO date YYYY-MM-DD; price is a positive integer that fits PostgreSQL's ``integer``
(rates/rules.py states these rules, for ``GET /rates`` too). A valid row becomes one line of
COPY text format.

Each code, day and CSV price text maps to its COPY text through a dict: the port codes, and the
days and price texts already seen valid. A row whose codes and day are found there (nearly every
row of a batch) costs dict lookups (``lookups``), and its price one more, or a range lookup in
``rules.PRICES`` for a JSON number; a CSV price text seen for the first time goes through its rule,
applied by the same method as in the full check (prices are too many to count on having seen
each). Any other row goes to ``csv_check`` / ``json_check``: the one place that applies every
rule, says what is wrong, and remembers a newly seen valid day.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rates import rules
from rates.batches.items import Item

FIELDS = ("orig_code", "dest_code", "day", "price")
MAX_ERRORS = 100  # errors listed in a 422; the total is always counted
MAX_PRICE = rules.MAX_PRICE
SEEN_SIZE = 100_000  # days or prices remembered; past it the memory starts again (only slower)
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})

Problems = list[tuple[str | None, str]]  # (field or None, message)
Resolved = tuple[str | None, str | None]  # (COPY text, None) or (None, problem)
Check = Callable[[Any], "str | Problems"]


def copy_text(value: str) -> str:
    """``value`` escaped for COPY's text format."""
    return value.translate(_COPY_ESCAPES)


class Errors:
    """Errors in line order: the first ``MAX_ERRORS`` kept, all of them counted."""

    def __init__(self, limit: int = MAX_ERRORS) -> None:
        self.limit = limit
        self.items: list[dict[str, Any]] = []
        self.total = 0

    def add(self, line: int | None, field: str | None, message: str) -> None:
        self.total += 1
        if len(self.items) < self.limit:
            self.items.append({"line": line, "field": field, "message": message})

    def __bool__(self) -> bool:
        return self.total > 0


class Validator:
    """Turns rows into COPY text lines, or says what is wrong with them."""

    def __init__(self, port_codes: Iterable[str]) -> None:
        # code -> its COPY text form (escaping is a no-op for real codes, kept for safety).
        self.ports = {code: copy_text(code) for code in port_codes}
        self.days: dict[str, str] = {}  # valid days seen -> COPY text
        self.prices: dict[str, str] = {}  # valid CSV price texts seen -> COPY text

    def check(self, fmt: str) -> Check:
        """The full check of the rows of format ``fmt`` (see ``lookups``)."""
        return self.csv_check if fmt == "csv" else self.json_check

    def lookups(self, fmt: str, miss: Callable[[Item], str]) -> Callable[[Item], str]:
        """For an item ``(line, row)`` of format ``fmt``: the COPY line of a row whose codes and day
        are known (dict lookups) and whose price is valid, else ``miss(item)``. A JSON price is
        looked up in ``rules.PRICES``; a CSV price text not seen yet is checked by its rule here,
        prices being too many to count on having seen each one."""
        ports, days, prices = self.ports, self.days, self.prices  # emptied in place, never replaced
        csv_price, valid_prices = self._csv_price, rules.PRICES

        def csv_line(item: Item) -> str:
            try:
                orig, dest, day, price = item[1]
                po, pd, pday = ports[orig], ports[dest], days[day]
            except (TypeError, ValueError, KeyError):  # a Problem, not four values, an unknown value
                return miss(item)
            pprice = prices.get(price) or csv_price(price)[0]
            return f"{po}\t{pd}\t{pday}\t{pprice}\n" if pprice else miss(item)

        def json_line(item: Item) -> str:
            obj = item[1]
            if type(obj) is dict and len(obj) == 4:
                try:
                    po, pd, pday = ports[obj["orig_code"]], ports[obj["dest_code"]], days[obj["day"]]
                    price = obj["price"]
                except (KeyError, TypeError):  # a field missing, an unknown or unhashable value
                    return miss(item)
                if type(price) is int and price in valid_prices:  # type: not True (== 1), nor 1.0
                    return f"{po}\t{pd}\t{pday}\t{price}\n"
            return miss(item)

        return csv_line if fmt == "csv" else json_line

    # ---- the rules, applied once per row that missed a lookup ----

    def csv_check(self, row: list[str]) -> str | Problems:
        """The COPY line of a row of CSV values, or its problems."""
        if len(row) != len(FIELDS):
            return [(None, f"expected {len(FIELDS)} values ({','.join(FIELDS)}), got {len(row)}")]
        return self._fields(dict(zip(FIELDS, row, strict=True)), self._csv_price)

    def json_check(self, obj: Any) -> str | Problems:
        """The COPY line of a decoded JSON value, or its problems."""
        if type(obj) is not dict:
            return [(None, f"expected an object with the fields {', '.join(FIELDS)}")]
        problems: Problems = [(name, "missing field") for name in FIELDS if name not in obj]
        problems += [(str(name)[:64], "unexpected field") for name in obj if name not in FIELDS]
        line = self._fields(obj, self._json_price)
        return line if not problems else problems + ([] if isinstance(line, str) else line)

    def _fields(self, values: dict[str, Any], price: Callable[[Any], Resolved]) -> str | Problems:
        """Check the four fields present in ``values``, in order; the COPY line if all are good."""
        texts: list[str] = []
        problems: Problems = []
        for name, resolve in (("orig_code", self._port), ("dest_code", self._port), ("day", self._day),
                              ("price", price)):
            if name in values:
                text, problem = resolve(values[name])
                if problem is None:
                    texts.append(text)  # type: ignore[arg-type]
                else:
                    problems.append((name, problem))
        if problems or len(texts) != len(FIELDS):
            return problems
        return "\t".join(texts) + "\n"

    # Each returns (COPY text, None) for a good value, or (None, what is wrong with it); a day or
    # price found good is remembered for the lookups.

    def _port(self, value: Any) -> Resolved:
        text = self.ports.get(value) if isinstance(value, str) else None
        if text is not None:
            return text, None
        return None, rules.port_code_problem(value) or f"unknown port code {value!r}: not in ports"

    def _day(self, value: Any) -> Resolved:
        return _remembered(self.days, value, rules.day_problem(value), value)

    def _csv_price(self, value: str) -> Resolved:
        problem = rules.price_text_problem(value)
        return _remembered(self.prices, value, problem, None if problem else value.lstrip("0"))

    @staticmethod
    def _json_price(value: Any) -> Resolved:
        if type(value) is not int:
            return None, f"expected a positive integer, got {rules.shown(value)}"
        problem = rules.price_problem(value)
        return (None, problem) if problem else (str(value), None)


def _remembered(seen: dict[Any, str], value: Any, problem: str | None, text: str | None) -> Resolved:
    """``(text, None)`` after remembering ``value`` as valid, or ``(None, problem)``."""
    if problem is not None:
        return None, problem
    if len(seen) >= SEEN_SIZE:  # bounded: start again (only slower)
        seen.clear()
    seen[value] = text  # type: ignore[assignment]
    return text, None
