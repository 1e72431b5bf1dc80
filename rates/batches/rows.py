"""Validation of one price row, and the list of errors a batch reports.

A row is valid when it has exactly the fields orig_code, dest_code, day and price; both codes
are ports (the set of port codes is read once at the start of the batch's transaction); day is
an ISO date YYYY-MM-DD; price is a positive integer that fits PostgreSQL's ``integer``. A valid
row becomes one line of COPY text format. The common case (a valid row) takes a few dict
lookups; the detailed checks that word an error message only run for invalid rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from typing import Any

FIELDS = ("orig_code", "dest_code", "day", "price")
MAX_ERRORS = 100  # errors listed in a 422; the total is always counted
MAX_PRICE = 2**31 - 1  # PostgreSQL integer
PORT_CODE = re.compile(r"[A-Z]{2}[A-Z0-9]{3}")
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DAY_CACHE_SIZE = 100_000
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(value: str) -> str:
    """``value`` escaped for COPY's text format."""
    return value.translate(_COPY_ESCAPES)


def _shown(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    """Turns rows into COPY text lines, recording why any row is invalid."""

    def __init__(self, port_codes: Iterable[str], errors: Errors | None = None) -> None:
        # code -> its COPY text form (escaping is a no-op for real codes, kept for safety).
        self.ports = {code: copy_text(code) for code in port_codes}
        self.errors = errors if errors is not None else Errors()
        self.days: dict[str, str] = {}  # day strings already checked -> COPY text form

    # ---- rows whose values are strings (CSV) ----

    def strings(self, line: int, orig: str, dest: str, day: str, price: str) -> str | None:
        """COPY line for a row of four strings, or None after recording its errors."""
        po = self.ports.get(orig)
        pd = self.ports.get(dest)
        pday = self.days.get(day)
        # Fast path: up to 9 ASCII digits without a leading zero is always within 1..MAX_PRICE.
        if (
            po is not None
            and pd is not None
            and pday is not None
            and price.isdigit()
            and price.isascii()
            and len(price) < 10
            and price[0] != "0"
        ):
            return f"{po}\t{pd}\t{pday}\t{price}\n"
        ok = self._port(line, "orig_code", orig) & self._port(line, "dest_code", dest)
        ok = self._day(line, day) & ok
        number = self._price_string(line, price)
        if not ok or number is None:
            return None
        return f"{self.ports[orig]}\t{self.ports[dest]}\t{self.days[day]}\t{number}\n"

    def _price_string(self, line: int, price: str) -> int | None:
        if not (price.isascii() and price.isdigit()):
            self.errors.add(line, "price", f"expected a positive integer, got {_shown(price)}")
            return None
        return self._price_range(line, int(price))

    # ---- rows parsed from JSON ----

    def mapping(self, line: int, obj: Any) -> str | None:
        """COPY line for a JSON object, or None after recording its errors."""
        return self.mapping_fast(obj) or self._mapping_slow(line, obj)

    def mapping_fast(self, obj: Any) -> str | None:
        """COPY line for a JSON object that is valid with known days, else None (nothing recorded)."""
        if type(obj) is dict and len(obj) == 4:
            try:
                po = self.ports.get(obj["orig_code"])
                pd = self.ports.get(obj["dest_code"])
                pday = self.days.get(obj["day"])
                price = obj["price"]
            except (KeyError, TypeError):  # a field missing, or an unhashable value
                return None
            if po is not None and pd is not None and pday is not None and type(price) is int \
                    and 0 < price <= MAX_PRICE:
                return f"{po}\t{pd}\t{pday}\t{price}\n"
        return None

    def _mapping_slow(self, line: int, obj: Any) -> str | None:
        if type(obj) is not dict:
            self.errors.add(line, None, f"expected an object with the fields {', '.join(FIELDS)}")
            return None
        before = self.errors.total
        for name in FIELDS:
            if name not in obj:
                self.errors.add(line, name, "missing field")
        for name in obj:
            if name not in FIELDS:
                self.errors.add(line, str(name)[:64], "unexpected field")
        if "orig_code" in obj:
            self._port(line, "orig_code", obj["orig_code"])
        if "dest_code" in obj:
            self._port(line, "dest_code", obj["dest_code"])
        if "day" in obj:
            self._day(line, obj["day"])
        if "price" in obj:
            price = obj["price"]
            if type(price) is not int:
                self.errors.add(line, "price", f"expected a positive integer, got {_shown(price)}")
            else:
                self._price_range(line, price)
        if self.errors.total != before:
            return None
        ports = self.ports
        return f"{ports[obj['orig_code']]}\t{ports[obj['dest_code']]}\t{self.days[obj['day']]}\t{obj['price']}\n"

    # ---- detailed checks (invalid rows, and the first sight of each day) ----

    def _port(self, line: int, field: str, value: Any) -> bool:
        if isinstance(value, str) and value in self.ports:
            return True
        if not isinstance(value, str):
            self.errors.add(line, field, f"expected a port code string, got {_shown(value)}")
        elif not PORT_CODE.fullmatch(value):
            self.errors.add(line, field, f"expected a port code like CNGGZ, got {_shown(value)}")
        else:
            self.errors.add(line, field, f"unknown port code {value!r}: not in ports")
        return False

    def _day(self, line: int, value: Any) -> bool:
        if isinstance(value, str) and value in self.days:
            return True
        if not isinstance(value, str) or not ISO_DATE.fullmatch(value):
            self.errors.add(line, "day", f"expected an ISO date YYYY-MM-DD, got {_shown(value)}")
            return False
        try:
            date.fromisoformat(value)
        except ValueError:
            self.errors.add(line, "day", f"not a valid date: {value!r}")
            return False
        if len(self.days) >= DAY_CACHE_SIZE:  # bounded: start again (only slower)
            self.days = {}
        self.days[value] = value
        return True

    def _price_range(self, line: int, price: int) -> int | None:
        if price <= 0:
            self.errors.add(line, "price", f"must be a positive integer, got {price}")
            return None
        if price > MAX_PRICE:
            self.errors.add(line, "price", f"must be at most {MAX_PRICE}, got {price}")
            return None
        return price
