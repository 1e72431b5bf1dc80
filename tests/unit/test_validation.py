"""rates.validation: what /rates accepts and the 400 messages for what it does not."""

from datetime import date

import pytest

from rates.validation import InvalidParameter, parse_rates_query

GOOD = {"date_from": "2021-01-01", "date_to": "2021-01-31", "orig_code": "CNGGZ", "dest_code": "EETLL"}


def test_valid_query_is_parsed():
    q = parse_rates_query(GOOD, 366)
    assert (q.date_from, q.date_to, q.orig, q.dest) == (date(2021, 1, 1), date(2021, 1, 31), "CNGGZ", "EETLL")


def test_region_slugs_are_accepted():
    q = parse_rates_query({**GOOD, "orig_code": "china_main", "dest_code": "north_europe_main"}, 366)
    assert (q.orig, q.dest) == ("china_main", "north_europe_main")


def test_reversed_range_is_valid():
    parse_rates_query({**GOOD, "date_from": "2021-02-01"}, 366)


@pytest.mark.parametrize(
    ("param", "value", "fragment"),
    [
        ("date_from", None, "is required"),
        ("date_to", "", "is required"),
        ("date_from", "2021/01/01", "ISO date"),
        ("date_from", "20210101", "ISO date"),
        ("date_to", "2021-02-30", "not a valid date"),
        ("orig_code", None, "is required"),
        ("orig_code", "cnggz'; drop table prices;--", "port code"),
        ("dest_code", "EE TLL", "port code"),
        ("dest_code", "x" * 65, "longer than 64"),
    ],
)
def test_bad_parameter_is_named(param, value, fragment):
    args = dict(GOOD)
    if value is None:
        del args[param]
    else:
        args[param] = value
    with pytest.raises(InvalidParameter) as err:
        parse_rates_query(args, 366)
    assert err.value.param == param
    assert str(err.value).startswith(f"{param}: ")
    assert fragment in str(err.value)


def test_range_longer_than_the_maximum_is_rejected():
    with pytest.raises(InvalidParameter, match="range of 32 days exceeds the maximum of 31"):
        parse_rates_query({**GOOD, "date_to": "2021-02-01"}, 31)
    parse_rates_query(GOOD, 31)  # exactly the maximum is fine
