"""The errors the service answers with. Each carries its HTTP status, a ``kind`` (the label of
``rates_errors_total``) and a message for the client; ``rates.api.responses`` turns any of them
into the one JSON error shape, ``{"error": message}`` (plus ``errors`` and ``total`` for 422).
The command line prints the same body."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A request that cannot succeed; each subclass names its ``status`` and ``kind``."""

    status = 500
    kind = "internal"
    headers: tuple[tuple[str, str], ...] = ()

    def __init_subclass__(cls, status: int = 0, kind: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.status = status or cls.status
        cls.kind = kind or cls.kind

    def __init__(self, message: str = "internal server error") -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": self.message}


class BadRequest(ServiceError, status=400, kind="bad_request"):
    """The request itself is malformed."""


class InvalidParameter(BadRequest, kind="invalid_parameter"):
    """A query parameter is missing or malformed; the message starts with its name."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


class Unauthorized(ServiceError, status=401, kind="unauthorized"):
    """No bearer token was sent."""

    headers = (("WWW-Authenticate", 'Bearer realm="rates"'),)


class Forbidden(ServiceError, status=403, kind="forbidden"):
    """A token was sent but is not accepted, or ingestion is disabled."""


class NotFound(ServiceError, status=404, kind="not_found"):
    """No such route or record."""


class MethodNotAllowed(ServiceError, status=405, kind="method_not_allowed"):
    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.headers = (("Allow", ", ".join(allowed)),)


class Conflict(ServiceError, status=409, kind="conflict"):
    """The idempotency key names a committed batch with different content."""


class TooLarge(ServiceError, status=413, kind="too_large"):
    """More rows or bytes than the configured limits."""


class UnsupportedMedia(ServiceError, status=415, kind="unsupported_media"):
    """A Content-Type or Content-Encoding the service does not read."""


class Invalid(ServiceError, status=422, kind="invalid_rows"):
    """At least one invalid row: the first errors with their line, plus the total."""

    def __init__(self, message: str, errors: list[dict[str, Any]], total: int) -> None:
        super().__init__(message)
        self.errors = errors
        self.total = total

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "errors": self.errors, "total": self.total}


class Unavailable(ServiceError, status=503, kind="unavailable"):
    """The database cannot serve this right now; retrying (with the same key) is safe."""

    headers = (("Retry-After", "1"),)


class TimedOut(Unavailable):
    """A batch that did not finish within BATCH_STATEMENT_TIMEOUT_MS (its own outcome in the metrics)."""


class DatabaseUnavailable(Unavailable, kind="database_unavailable"):
    """No connection, a lost connection or a timed-out query on the read path."""

    def __init__(self, message: str) -> None:
        super().__init__(f"service unavailable: {message}")
