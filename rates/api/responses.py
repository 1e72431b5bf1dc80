"""JSON responses: the one error shape for every route, and the Flask response helper."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response

from rates.errors import ServiceError

JSON = "application/json"
ERROR_KEY = "rates.error_kind"  # the environ key rates.api.middleware reads for rates_errors_total


def error_parts(exc: ServiceError, environ: dict) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and JSON body of the answer to ``exc``; records its kind for the metrics."""
    environ[ERROR_KEY] = exc.kind
    return exc.status, [("Content-Type", JSON), *exc.headers], orjson.dumps(exc.body())


def error_response(exc: ServiceError, environ: dict) -> Response:
    status, headers, body = error_parts(exc, environ)
    return Response(body, status=status, headers=headers)


def json_response(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype=JSON)
