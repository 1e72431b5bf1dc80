"""The ways a batch can fail, each carrying its HTTP status and a message for the client."""

from __future__ import annotations

from typing import Any


class BatchError(Exception):
    """A batch request that cannot succeed; ``status`` is its HTTP status."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": self.message}


class BadRequest(BatchError):
    status = 400


class Unauthorized(BatchError):
    """No bearer token was sent (401, with ``WWW-Authenticate: Bearer``)."""

    status = 401


class Forbidden(BatchError):
    """A token was sent but is not accepted, or ingestion is disabled (403)."""

    status = 403


class NotFound(BatchError):
    status = 404


class Conflict(BatchError):
    """The idempotency key names a committed batch with different content (409)."""

    status = 409


class TooLarge(BatchError):
    """More rows or bytes than the configured limits (413)."""

    status = 413


class UnsupportedMedia(BatchError):
    """A Content-Type or Content-Encoding the service does not read (415)."""

    status = 415


class Unavailable(BatchError):
    """The database cannot take the batch right now (503); retrying with the same key is safe."""

    status = 503


class Invalid(BatchError):
    """At least one invalid row (422): the first errors with their line, plus the total."""

    status = 422

    def __init__(self, message: str, errors: list[dict[str, Any]], total: int) -> None:
        super().__init__(message)
        self.errors = errors
        self.total = total

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "errors": self.errors, "total": self.total}
