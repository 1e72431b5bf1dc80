"""rates.read_path.query_arguments: the query-string parser of the hot path."""

from urllib.parse import parse_qsl

import pytest

from rates.read_path import query_arguments


@pytest.mark.parametrize(
    "query",
    ["", "a=1", "a=1&b=2", "a=1&a=2", "a=%41%42&b=c+d", "a=&b", "&&a=1&", "date_from=2021-01-01&orig_code=CNGGZ",
     "x=%FF", "a=1=2", "%61=1"],
)
def test_same_first_values_as_the_standard_parser(query):
    expected: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        expected.setdefault(name, value)
    assert query_arguments(query) == expected
