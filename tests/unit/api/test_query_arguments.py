"""rates.api.params.query_arguments: the query-string parser of the hot path."""

from urllib.parse import parse_qs

import pytest

from rates.api.params import query_arguments


@pytest.mark.parametrize(
    "query",
    ["", "a=1", "a=1&b=2", "a=1&a=2", "a=%41%42&b=c+d", "a=&b", "&&a=1&", "date_from=2021-01-01&orig_code=CNGGZ",
     "x=%FF", "a=1=2", "%61=1"],
)
def test_same_values_as_the_standard_parser(query):
    assert query_arguments(query) == parse_qs(query, keep_blank_values=True)
