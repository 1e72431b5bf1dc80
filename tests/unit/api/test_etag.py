"""rates.api.rates_route.newest_version: which If-None-Match values name a data version."""

import pytest

from rates.api.rates_route import newest_version


@pytest.mark.parametrize(("header", "version"), [
    (None, None),
    ("", None),
    ('"42"', 42),
    ('W/"42"', 42),
    ('"3", W/"12" , "7"', 12),
    ("*", None),
    ('"v42"', None),
    ("42", None),  # not a quoted tag
    ('"1234567890123456789"', None),  # longer than any version this route issues
    ('"x", "5"', 5),
])
def test_only_quoted_versions_count_and_the_newest_wins(header, version):
    assert newest_version(header) == version
