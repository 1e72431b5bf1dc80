"""The rates HTTP API (WSGI, Flask)."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from rates import config, metrics
from rates.access_log import AccessLogWriter
from rates.batches.http import register as register_batches
from rates.db import Database, DatabaseUnavailable
from rates.middleware import ERROR_KEY, ROUTE_KEY, PathDispatcher, RequestObserver
from rates.read_path import ROUTE, RatesEndpoint
from rates.responses import JSON, json_response
from rates.validation import InvalidParameter

log = logging.getLogger(__name__)
READY_TIMEOUT_SECONDS = 1.0
OPENAPI_PATH = Path(__file__).with_name("openapi.json")


def error_response(status: int, message: str, kind: str) -> Response:
    request.environ[ERROR_KEY] = kind
    return json_response({"error": message}, status)


def create_app(settings: config.Settings | None = None, database: Database | None = None) -> Flask:
    """Build the WSGI application; the database pool opens on the first request."""
    settings = settings or config.get()
    db = database or Database(settings)
    app = Flask("rates")
    app.extensions["rates.db"] = db
    rates_endpoint = RatesEndpoint(db, settings)
    app.extensions["rates.service"] = rates_endpoint.service
    openapi = OPENAPI_PATH.read_bytes()

    @app.before_request
    def tag_route() -> None:
        if request.url_rule is not None:
            request.environ[ROUTE_KEY] = request.url_rule.rule

    @app.get("/healthz")
    def healthz() -> Response:
        """Liveness: the process answers; no database call."""
        return json_response({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        """Readiness: the database answers through the pool within a short timeout."""
        db.ping(READY_TIMEOUT_SECONDS)
        return json_response({"status": "ready"})

    @app.get("/metrics")
    def prometheus() -> Response:
        metrics.observe_pool(db.stats())
        body, content_type = metrics.render()
        return Response(body, content_type=content_type)

    @app.get("/openapi.json")
    def openapi_document() -> Response:
        return Response(openapi, mimetype=JSON)

    @app.errorhandler(InvalidParameter)
    def invalid_parameter(exc: InvalidParameter) -> Response:
        return error_response(400, str(exc), "invalid_parameter")

    @app.errorhandler(DatabaseUnavailable)
    def database_unavailable(exc: DatabaseUnavailable) -> Response:
        log.warning("503: %s (%s)", exc, exc.__cause__)
        response = error_response(503, f"service unavailable: {exc}", "database_unavailable")
        response.headers["Retry-After"] = "1"
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        kind = {404: "not_found", 405: "method_not_allowed"}.get(code, f"http_{code}")
        response = error_response(code, exc.description or exc.name, kind)
        if code == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return response

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal server error", "internal")

    # Routes of other modules register here.
    register_batches(app, db, settings)

    # GET /rates is plain WSGI (the hot path); the rest goes through Flask. Request id, access
    # log and metrics wrap everything, 404s and errors included.
    access_log = AccessLogWriter(2, settings.LOG_ACCESS_BUFFER, settings.LOG_ACCESS_FLUSH)
    app.wsgi_app = RequestObserver(  # type: ignore[method-assign]
        PathDispatcher({ROUTE: rates_endpoint}, app.wsgi_app), access_log)
    return app
