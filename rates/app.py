"""The rates HTTP API (WSGI, Flask)."""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from rates import config, queries
from rates.db import Database, DatabaseUnavailable
from rates.validation import InvalidParameter, parse_rates_query

log = logging.getLogger(__name__)
READY_TIMEOUT_SECONDS = 1.0


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json")


def error_response(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


def create_app(settings: config.Settings | None = None, database: Database | None = None) -> Flask:
    """Build the WSGI application; the database pool opens on the first request."""
    settings = settings or config.get()
    db = database or Database(settings)
    app = Flask("rates")
    app.extensions["rates.db"] = db

    @app.get("/rates")
    def rates() -> Response:
        """Average price per day between two ports or regions, newest day first."""
        q = parse_rates_query(request.args, settings.RATES_MAX_RANGE_DAYS)
        rows = db.fetch_all(
            queries.daily_average(q.orig_is_region, q.dest_is_region),
            {"orig": q.orig, "dest": q.dest, "date_from": q.date_from, "date_to": q.date_to},
        )
        return json_response({"rates": [{"count": n, "day": day, "price": price} for day, n, price in rows]})

    @app.get("/healthz")
    def healthz() -> Response:
        """Liveness: the process answers; no database call."""
        return json_response({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        """Readiness: the database answers through the pool within a short timeout."""
        db.ping(READY_TIMEOUT_SECONDS)
        return json_response({"status": "ready"})

    @app.errorhandler(InvalidParameter)
    def invalid_parameter(exc: InvalidParameter) -> Response:
        return error_response(400, str(exc))

    @app.errorhandler(DatabaseUnavailable)
    def database_unavailable(exc: DatabaseUnavailable) -> Response:
        log.warning("503: %s (%s)", exc, exc.__cause__)
        response = error_response(503, f"service unavailable: {exc}")
        response.headers["Retry-After"] = "1"
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        response = error_response(exc.code or 500, exc.description or exc.name)
        if exc.code == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            response.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return response

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal server error")

    return app
