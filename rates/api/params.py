"""Query-string parameters: parsed and checked before anything reaches SQL (400 naming the
parameter otherwise)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from urllib.parse import unquote_plus

from rates import rules
from rates.errors import InvalidParameter
from rates.reads.service import RatesQuery

MAX_PARAM_LENGTH = 64


def query_arguments(query_string: str) -> dict[str, list[str]]:
    """Every value of every parameter of a query string, in order (as ``parse_qs`` with blanks)."""
    args: dict[str, list[str]] = {}
    for part in query_string.split("&"):
        name, _, value = part.partition("=")
        if "%" in part or "+" in part:
            name, value = unquote_plus(name), unquote_plus(value)
        if name:
            args.setdefault(name, []).append(value)
    return args


def _required(args: Mapping[str, list[str]], name: str) -> str:
    values = args.get(name)
    if not values or values[0] == "":
        raise InvalidParameter(name, "is required")
    value = values[0]  # the first of a repeated parameter wins, as in Flask
    if len(value) > MAX_PARAM_LENGTH:
        raise InvalidParameter(name, f"is longer than {MAX_PARAM_LENGTH} characters")
    return value


def _date(args: Mapping[str, list[str]], name: str) -> date:
    value = _required(args, name)
    problem = rules.day_problem(value)
    if problem:
        raise InvalidParameter(name, problem)
    return date.fromisoformat(value)


def _location(args: Mapping[str, list[str]], name: str) -> str:
    value = _required(args, name)
    problem = rules.location_problem(value)
    if problem:
        raise InvalidParameter(name, problem)
    return value


def rates_query(args: Mapping[str, list[str]], max_range_days: int) -> RatesQuery:
    """The parameters of GET /rates; raise InvalidParameter naming the first problem."""
    query = RatesQuery(
        date_from=_date(args, "date_from"),
        date_to=_date(args, "date_to"),
        orig=_location(args, "orig_code"),
        dest=_location(args, "dest_code"),
    )
    days = (query.date_to - query.date_from).days + 1
    if days > max_range_days:
        raise InvalidParameter("date_to", f"range of {days} days exceeds the maximum of {max_range_days}")
    return query


def bounded_int(args: Mapping[str, list[str]], name: str, default: int | None, lo: int, hi: int) -> int | None:
    """An optional integer parameter between ``lo`` and ``hi``, given at most once."""
    values = args.get(name)
    if not values:
        return default
    if len(values) > 1:
        raise InvalidParameter(name, f"given {len(values)} times")
    raw = values[0]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        raise InvalidParameter(name, f"expected an integer, got {rules.shown(raw)}")
    value = int(raw)
    if not lo <= value <= hi:
        raise InvalidParameter(name, f"must be between {lo} and {hi}")
    return value
