"""rates.api.auth: bearer tokens, several for rotation, compared without echoing them."""

import pytest

from rates.api.auth import BearerAuth, parse_tokens
from rates.errors import Forbidden, Unauthorized

TOKEN = "a" * 32
OTHER = "b" * 40


def test_tokens_list_and_rotation():
    assert parse_tokens(f" {TOKEN}, {OTHER} ") == (TOKEN, OTHER)
    assert parse_tokens("") == ()
    auth = BearerAuth(parse_tokens(f"{TOKEN},{OTHER}"))
    auth.check(f"Bearer {TOKEN}")
    auth.check(f"bearer   {OTHER}")


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer  ", f"Basic {TOKEN}", TOKEN])
def test_missing_credentials_are_401(header):
    with pytest.raises(Unauthorized):
        BearerAuth((TOKEN,)).check(header)


@pytest.mark.parametrize("header", [f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", "Bearer " + "a" * 31 + "é"])
def test_wrong_tokens_are_403_and_the_message_does_not_echo_them(header):
    with pytest.raises(Forbidden) as err:
        BearerAuth((TOKEN,)).check(header)
    assert TOKEN[:8] not in err.value.message


def test_no_configured_token_disables_ingestion():
    with pytest.raises(Forbidden, match="disabled"):
        BearerAuth(()).check(f"Bearer {TOKEN}")
