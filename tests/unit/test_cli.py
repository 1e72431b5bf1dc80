"""python -m rates: the command line's own logic."""

import pytest

from rates.__main__ import infer_type


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("prices.csv", ("text/csv", None)),
        ("data/Prices.CSV.gz", ("text/csv", "gzip")),
        ("p.ndjson", ("application/x-ndjson", None)),
        ("p.jsonl.gz", ("application/x-ndjson", "gzip")),
        ("p.json", ("application/json", None)),
        ("p.txt", (None, None)),
        ("", (None, None)),
    ],
)
def test_cli_infers_the_type_from_the_file_name(name, expected):
    assert infer_type(name) == expected
