"""Bearer tokens for writes: INGEST_TOKEN (one token, or several separated by commas or spaces
to rotate them), compared in constant time. No token configured means ingestion is disabled.
Tokens never reach a log line or an error message."""

from __future__ import annotations

import hmac

from rates.errors import Forbidden, Unauthorized


def parse_tokens(value: str) -> tuple[str, ...]:
    return tuple(token for token in value.replace(",", " ").split() if token)


class BearerAuth:
    def __init__(self, tokens: tuple[str, ...]) -> None:
        self._tokens = tuple(token.encode("utf-8") for token in tokens)

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def check(self, authorization: str | None) -> None:
        """Return if the Authorization header carries an accepted token; raise 401/403 otherwise."""
        if not self._tokens:
            raise Forbidden("batch ingestion is disabled: no INGEST_TOKEN is configured on the server")
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise Unauthorized("a bearer token is required: Authorization: Bearer <INGEST_TOKEN>")
        given = credentials.strip().encode("utf-8")
        # Compare with every token, without stopping early, so timing says nothing about which.
        accepted = False
        for token in self._tokens:
            accepted |= hmac.compare_digest(given, token)
        if not accepted:
            raise Forbidden("the bearer token is not accepted")
