"""The WSGI application: GET /rates as plain WSGI, every other route through Flask, all wrapped
by the request observer (request id, access log, metrics)."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from rates.api import batches_routes, scrape
from rates.api.middleware import ROUTE_KEY, PathDispatcher, RequestObserver
from rates.api.rates_route import ROUTE, RatesEndpoint
from rates.api.responses import JSON, error_response, json_response
from rates.components import Components
from rates.errors import MethodNotAllowed, NotFound, ServiceError
from rates.observability import metrics
from rates.observability.access_log import AccessLogWriter

log = logging.getLogger(__name__)
READY_TIMEOUT_SECONDS = 1.0
OPENAPI = Path(__file__).with_name("openapi.json")


def create_app(components: Components) -> Flask:
    """Build the WSGI application; the database pools open on the first request."""
    app = Flask("rates")
    reads = components.reads
    openapi = OPENAPI.read_bytes()

    @app.before_request
    def tag_route() -> None:
        if request.url_rule is not None:
            request.environ[ROUTE_KEY] = request.url_rule.rule

    @app.get("/")
    def root() -> Response:
        """The original service's greeting, kept as part of its contract."""
        return json_response({"message": "Hello world!"})

    @app.get("/healthz")
    def healthz() -> Response:
        """Liveness: the process answers; no database call."""
        return json_response({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        """Readiness: the database answers through the pool within a short timeout."""
        reads.ping(READY_TIMEOUT_SECONDS)
        return json_response({"status": "ready"})

    @app.get("/metrics")
    def prometheus() -> Response:
        metrics.observe_pool(reads.stats())
        body, content_type = metrics.render(scrape.sampled(components))
        return Response(body, content_type=content_type)

    @app.get("/openapi.json")
    def openapi_document() -> Response:
        return Response(openapi, mimetype=JSON)

    _register_error_handlers(app)
    app.register_blueprint(batches_routes.blueprint(components))
    rates = RatesEndpoint(components.rates, reads, components.settings.RATES_MAX_RANGE_DAYS)
    access_log = AccessLogWriter(2, components.settings.LOG_ACCESS_BUFFER, components.settings.LOG_ACCESS_FLUSH)
    app.wsgi_app = RequestObserver(PathDispatcher({ROUTE: rates}, app.wsgi_app), access_log)  # type: ignore[method-assign]
    return app


def _register_error_handlers(app: Flask) -> None:
    """Every error, whoever raises it, answers with the one JSON shape (rates.api.responses)."""

    @app.errorhandler(ServiceError)
    def service_error(exc: ServiceError) -> Response:
        if exc.status >= 500:
            log.warning("%d on %s %s: %s (%s)", exc.status, request.method, request.path, exc, exc.__cause__)
        response = error_response(exc, request.environ)
        if request.method == "POST" and exc.status in (413, 503):
            response.headers["Connection"] = "close"  # the rest of the body was not read
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        if exc.code == 404:
            return error_response(NotFound(exc.description or "not found"), request.environ)
        if exc.code == 405:
            allowed = list(getattr(exc, "valid_methods", None) or [])
            return error_response(MethodNotAllowed(exc.description or "method not allowed", allowed), request.environ)
        error = ServiceError(exc.description or exc.name)
        error.status, error.kind = exc.code or 500, f"http_{exc.code}"
        return error_response(error, request.environ)

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(ServiceError(), request.environ)
