"""The rules for port codes, region slugs and days, shared by ``GET /rates`` and batch rows.

Each ``*_problem`` function returns None for a good value, or the phrase a 400 or 422 message
uses to say what is wrong with it.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

# A UN/LOCODE-style port code (CNGGZ) and a region slug (china_main): upper case vs lower case.
PORT_CODE = re.compile(r"[A-Z]{2}[A-Z0-9]{3}")
REGION_SLUG = re.compile(r"[a-z][a-z0-9_]{0,63}")
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MAX_PRICE = 2**31 - 1  # PostgreSQL integer
PRICES = range(1, MAX_PRICE + 1)  # the valid prices: a positive integer that fits PostgreSQL's integer
MAX_PRICE_DIGITS = len(str(MAX_PRICE))  # int() never sees more digits than this


def shown(value: Any, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters for an error message."""
    try:
        text = repr(value)
    except RecursionError:  # a JSON value nested deeper than repr goes
        text = f"<{type(value).__name__} nested too deeply>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_region_slug(value: str) -> bool:
    return REGION_SLUG.fullmatch(value) is not None


def location_problem(value: str) -> str | None:
    """A /rates location: a port code or a region slug."""
    if PORT_CODE.fullmatch(value) or REGION_SLUG.fullmatch(value):
        return None
    return f"expected a port code like CNGGZ or a region slug like china_main, got {shown(value)}"


def port_code_problem(value: Any) -> str | None:
    """A batch row's port: a string shaped like a port code (whether it exists is checked apart)."""
    if not isinstance(value, str):
        return f"expected a port code string, got {shown(value)}"
    if not PORT_CODE.fullmatch(value):
        return f"expected a port code like CNGGZ, got {shown(value)}"
    return None


def day_problem(value: Any) -> str | None:
    """An ISO date YYYY-MM-DD (ASCII digits) that exists in the calendar."""
    if not isinstance(value, str) or not ISO_DATE.fullmatch(value):
        return f"expected an ISO date YYYY-MM-DD, got {shown(value)}"
    try:
        date.fromisoformat(value)
    except ValueError:
        return f"not a valid date: {shown(value)}"
    return None


def price_problem(value: int) -> str | None:
    """A price: a positive integer that fits PostgreSQL's integer (``value in PRICES``)."""
    if value in PRICES:
        return None
    if value <= 0:
        return f"must be a positive integer, got {value}"
    return f"must be at most {MAX_PRICE}, got {shown(value)}"


def price_text_problem(text: str) -> str | None:
    """A price written in text (CSV): ASCII digits, leading zeros allowed, whose value passes
    ``price_problem``. Past ``MAX_PRICE_DIGITS`` significant digits the value is too large
    without converting it (``int()`` refuses more than 4300 digits and is quadratic below)."""
    if not (text.isascii() and text.isdigit()):
        return f"expected a positive integer, got {shown(text)}"
    digits = text.lstrip("0") or "0"
    if len(digits) > MAX_PRICE_DIGITS:
        return f"must be at most {MAX_PRICE}, got {digits if len(digits) <= 40 else digits[:37] + '...'}"
    return price_problem(int(digits))
