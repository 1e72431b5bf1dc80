"""Validation of /rates query parameters: clear 400 messages before anything reaches SQL."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# A UN/LOCODE-style port code (CNGGZ) or a region slug (china_main).
PORT_CODE = re.compile(r"[A-Z]{2}[A-Z0-9]{3}")
REGION_SLUG = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_PARAM_LENGTH = 64


class InvalidParameter(ValueError):
    """A query parameter is missing or malformed; ``param`` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


@dataclass(frozen=True)
class RatesQuery:
    date_from: date
    date_to: date
    orig: str
    dest: str

    @property
    def orig_is_region(self) -> bool:
        return is_region_slug(self.orig)

    @property
    def dest_is_region(self) -> bool:
        return is_region_slug(self.dest)


def is_region_slug(location: str) -> bool:
    """Port codes are upper case (CNGGZ), region slugs lower case (china_main)."""
    return REGION_SLUG.fullmatch(location) is not None


def _required(args: Mapping[str, str], name: str) -> str:
    value = args.get(name)
    if value is None or value == "":
        raise InvalidParameter(name, "is required")
    if len(value) > MAX_PARAM_LENGTH:
        raise InvalidParameter(name, f"is longer than {MAX_PARAM_LENGTH} characters")
    return value


def parse_date(args: Mapping[str, str], name: str) -> date:
    value = _required(args, name)
    if not ISO_DATE.fullmatch(value):
        raise InvalidParameter(name, f"expected an ISO date YYYY-MM-DD, got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidParameter(name, f"not a valid date: {value!r}") from None


def parse_location(args: Mapping[str, str], name: str) -> str:
    value = _required(args, name)
    if not (PORT_CODE.fullmatch(value) or REGION_SLUG.fullmatch(value)):
        raise InvalidParameter(
            name, f"expected a port code like CNGGZ or a region slug like china_main, got {value!r}"
        )
    return value


def parse_rates_query(args: Mapping[str, str], max_range_days: int) -> RatesQuery:
    """Validate the parameters of GET /rates; raise InvalidParameter naming the first problem."""
    query = RatesQuery(
        date_from=parse_date(args, "date_from"),
        date_to=parse_date(args, "date_to"),
        orig=parse_location(args, "orig_code"),
        dest=parse_location(args, "dest_code"),
    )
    days = (query.date_to - query.date_from).days + 1
    if days > max_range_days:
        raise InvalidParameter("date_to", f"range of {days} days exceeds the maximum of {max_range_days}")
    return query
