"""WSGI middleware around the app: request id, one JSON log line and metrics per request."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from rates.api.responses import ERROR_KEY
from rates.observability import metrics
from rates.observability.access_log import AccessLogWriter

ACCESS_LOGGER = "rates.access"
# An incoming X-Request-ID is honoured when it is a sane token; otherwise a new one is made.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
ROUTE_KEY = "rates.route"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

StartResponse = Callable[..., Any]


def now_iso() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


class RequestObserver:
    """Wraps a WSGI app; the app may put its matched route and error kind in the environ.

    Access lines have the format of rates.observability.logs.JsonFormatter but skip the logging module's
    per-record work on the hot path; ``access_log`` gathers them into few writes.
    """

    def __init__(self, app: Callable[[dict, StartResponse], Iterable[bytes]], access_log: AccessLogWriter) -> None:
        self.app = app
        self.access_log = access_log
        # Access lines are INFO: quiet when the log level is WARNING or above.
        self.log_requests = logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO)

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if REQUEST_ID.fullmatch(incoming) else os.urandom(16).hex()
        environ["rates.request_id"] = request_id
        status_line = "500"

        def observed_start_response(status: str, headers: list, exc_info: Any = None) -> Any:
            nonlocal status_line
            status_line = status
            headers.append(("X-Request-ID", request_id))
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, observed_start_response)
        finally:
            elapsed = time.perf_counter() - started
            status = status_line.split(" ", 1)[0]
            method = environ.get("REQUEST_METHOD", "")
            route = environ.get(ROUTE_KEY, "unmatched")
            label = method if method in KNOWN_METHODS else "OTHER"  # bounded label values
            metrics.child(metrics.REQUESTS, label, route, status).inc()
            metrics.child(metrics.LATENCY, label, route).observe(elapsed)
            kind = environ.get(ERROR_KEY)
            if kind:
                metrics.child(metrics.ERRORS, kind).inc()
            if self.log_requests:
                path = environ.get("PATH_INFO", "")
                query = environ.get("QUERY_STRING")
                self.access_log.write(orjson.dumps({
                    "ts": now_iso(),
                    "level": "info",
                    "logger": ACCESS_LOGGER,
                    "msg": f"{method} {path} {status}",
                    "request_id": request_id,
                    "method": method,
                    "path": f"{path}?{query}" if query else path,
                    "route": route,
                    "status": int(status) if status.isdigit() else status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "remote": environ.get("REMOTE_ADDR"),
                }, default=str) + b"\n")


class PathDispatcher:
    """Sends requests for the given exact paths to their own WSGI apps, the rest to ``default``."""

    def __init__(self, routes: dict[str, Callable[[dict, StartResponse], Iterable[bytes]]],
                 default: Callable[[dict, StartResponse], Iterable[bytes]]) -> None:
        self.routes = routes
        self.default = default

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        return self.routes.get(environ.get("PATH_INFO", ""), self.default)(environ, start_response)
