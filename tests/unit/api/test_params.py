"""rates.api.params: what /rates and the /batches paging accept, and the 400 messages for the rest."""

from datetime import date
from urllib.parse import urlencode

import pytest

from rates.api.params import bounded_int, query_arguments, rates_query
from rates.errors import InvalidParameter

GOOD = {"date_from": "2021-01-01", "date_to": "2021-01-31", "orig_code": "CNGGZ", "dest_code": "EETLL"}


def parsed(params: dict, max_days: int = 366):
    return rates_query(query_arguments(urlencode(params)), max_days)


def test_valid_query_is_parsed():
    q = parsed(GOOD)
    assert (q.date_from, q.date_to, q.orig, q.dest) == (date(2021, 1, 1), date(2021, 1, 31), "CNGGZ", "EETLL")


def test_region_slugs_are_accepted():
    q = parsed({**GOOD, "orig_code": "china_main", "dest_code": "north_europe_main"})
    assert (q.orig, q.dest) == ("china_main", "north_europe_main")


def test_reversed_range_is_valid():
    parsed({**GOOD, "date_from": "2021-02-01"})


def test_the_first_of_a_repeated_parameter_wins():
    q = rates_query(query_arguments(urlencode(GOOD) + "&orig_code=EETLL"), 366)
    assert q.orig == "CNGGZ"


@pytest.mark.parametrize(
    ("param", "value", "fragment"),
    [
        ("date_from", None, "is required"),
        ("date_to", "", "is required"),
        ("date_from", "2021/01/01", "ISO date"),
        ("date_from", "20210101", "ISO date"),
        ("date_from", "２０２１-01-01", "ISO date"),
        ("date_to", "2021-02-30", "not a valid date"),
        ("orig_code", None, "is required"),
        ("orig_code", "cnggz'; drop table prices;--", "port code"),
        ("dest_code", "EE TLL", "port code"),
        ("dest_code", "x" * 65, "longer than 64"),
    ],
)
def test_bad_parameter_is_named(param, value, fragment):
    params = dict(GOOD)
    if value is None:
        del params[param]
    else:
        params[param] = value
    with pytest.raises(InvalidParameter) as err:
        parsed(params)
    assert err.value.param == param
    assert str(err.value).startswith(f"{param}: ")
    assert fragment in str(err.value)


def test_range_longer_than_the_maximum_is_rejected():
    with pytest.raises(InvalidParameter, match="range of 32 days exceeds the maximum of 31"):
        parsed({**GOOD, "date_to": "2021-02-01"}, 31)
    parsed(GOOD, 31)  # exactly the maximum is fine


@pytest.mark.parametrize(("query", "expected"), [("", 100), ("limit=1", 1), ("limit=1000", 1000)])
def test_bounded_integers(query, expected):
    assert bounded_int(query_arguments(query), "limit", 100, 1, 1000) == expected


@pytest.mark.parametrize(
    ("query", "fragment"),
    [("limit=0", "between 1 and 1000"), ("limit=1001", "between 1 and 1000"), ("limit=x", "expected an integer"),
     ("limit=-1", "expected an integer"), ("limit=1&limit=2", "given 2 times"), ("limit=" + "9" * 20, "integer")],
)
def test_bad_integers_are_named(query, fragment):
    with pytest.raises(InvalidParameter, match=fragment) as err:
        bounded_int(query_arguments(query), "limit", 100, 1, 1000)
    assert err.value.param == "limit"
