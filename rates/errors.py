"""The errors the service answers with. Each carries its HTTP status, a ``kind`` (the label of
``rates_errors_total``) and a message for the client; ``rates.api.responses`` turns any of them
into the one JSON error shape, ``{"error": message}`` (plus ``errors`` and ``total`` for 422).
The command line prints the same body."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A request that cannot succeed; subclasses set ``status`` and ``kind``."""

    status = 500
    kind = "internal"
    headers: tuple[tuple[str, str], ...] = ()

    def __init__(self, message: str = "internal server error") -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": self.message}


class BadRequest(ServiceError):
    status, kind = 400, "bad_request"


class InvalidParameter(BadRequest):
    """A query parameter is missing or malformed; the message starts with its name."""

    kind = "invalid_parameter"

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


class Unauthorized(ServiceError):
    """No bearer token was sent."""

    status, kind = 401, "unauthorized"
    headers = (("WWW-Authenticate", 'Bearer realm="rates"'),)


class Forbidden(ServiceError):
    """A token was sent but is not accepted, or ingestion is disabled."""

    status, kind = 403, "forbidden"


class NotFound(ServiceError):
    status, kind = 404, "not_found"


class MethodNotAllowed(ServiceError):
    status, kind = 405, "method_not_allowed"

    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.headers = (("Allow", ", ".join(allowed)),)


class Conflict(ServiceError):
    """The idempotency key names a committed batch with different content."""

    status, kind = 409, "conflict"


class TooLarge(ServiceError):
    """More rows or bytes than the configured limits."""

    status, kind = 413, "too_large"


class UnsupportedMedia(ServiceError):
    """A Content-Type or Content-Encoding the service does not read."""

    status, kind = 415, "unsupported_media"


class Invalid(ServiceError):
    """At least one invalid row: the first errors with their line, plus the total."""

    status, kind = 422, "invalid_rows"

    def __init__(self, message: str, errors: list[dict[str, Any]], total: int) -> None:
        super().__init__(message)
        self.errors = errors
        self.total = total

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "errors": self.errors, "total": self.total}


class Unavailable(ServiceError):
    """The database cannot serve this right now; retrying (with the same key) is safe."""

    status, kind = 503, "unavailable"
    headers = (("Retry-After", "1"),)


class DatabaseUnavailable(Unavailable):
    """No connection, a lost connection or a timed-out query on the read path."""

    kind = "database_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(f"service unavailable: {message}")
