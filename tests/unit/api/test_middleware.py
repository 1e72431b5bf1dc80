"""rates.api.middleware: one access line and the request metrics for every request, whatever
the app answers; the request id kept when it is sane, made up otherwise."""

from __future__ import annotations

import logging
import os
import select

import orjson
import pytest
from prometheus_client import REGISTRY

from rates.api.middleware import ROUTE_KEY, PathDispatcher, RequestObserver
from rates.api.responses import ERROR_KEY
from rates.observability.access_log import AccessLogWriter


def app(status: str, route: str | None = None, kind: str | None = None):
    def wsgi(environ, start_response):
        if route:
            environ[ROUTE_KEY] = route
        if kind:
            environ[ERROR_KEY] = kind
        start_response(status, [("Content-Type", "text/plain")])
        return [b"body"]
    return wsgi


@pytest.fixture
def log_pipe():
    logger = logging.getLogger("rates.access")
    level = logger.level
    logger.setLevel(logging.INFO)  # access lines are INFO
    read_end, write_end = os.pipe()
    yield read_end, AccessLogWriter(write_end, 0)  # unbuffered: each line is written at once
    os.close(read_end)
    os.close(write_end)
    logger.setLevel(level)


def call(observer, path="/x", request_id=None, method="GET"):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "a=1", "REMOTE_ADDR": "127.0.0.1"}
    if request_id is not None:
        environ["HTTP_X_REQUEST_ID"] = request_id
    seen = {}
    body = observer(environ, lambda status, headers, exc_info=None: seen.update(status=status, headers=dict(headers)))
    return seen, b"".join(body)


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_one_access_line_per_request_with_the_request_id(log_pipe):
    read_end, writer = log_pipe
    seen, body = call(RequestObserver(app("200 OK", route="/x"), writer), request_id="req-1")
    assert body == b"body" and seen["headers"]["X-Request-ID"] == "req-1"
    assert select.select([read_end], [], [], 5)[0], "no access line was written"
    line = orjson.loads(os.read(read_end, 65536))
    assert {k: line[k] for k in ("request_id", "method", "path", "route", "status", "logger")} == {
        "request_id": "req-1", "method": "GET", "path": "/x?a=1", "route": "/x", "status": 200,
        "logger": "rates.access"}
    assert line["duration_ms"] >= 0


@pytest.mark.parametrize("bad", ["has space", "x" * 129, "new\nline", ""])
def test_an_unusable_request_id_is_replaced(log_pipe, bad):
    seen, _ = call(RequestObserver(app("200 OK"), log_pipe[1]), request_id=bad)
    assert seen["headers"]["X-Request-ID"] != bad and len(seen["headers"]["X-Request-ID"]) == 32


def test_metrics_count_status_route_and_error_kind(log_pipe):
    labels = {"method": "GET", "route": "/m", "status": "418"}
    before = (sample("rates_http_requests_total", **labels), sample("rates_errors_total", kind="teapot"))
    observer = RequestObserver(app("418 I'M A TEAPOT", route="/m", kind="teapot"), log_pipe[1])
    call(observer)
    call(observer)
    after = (sample("rates_http_requests_total", **labels), sample("rates_errors_total", kind="teapot"))
    assert (after[0] - before[0], after[1] - before[1]) == (2, 2)


def test_unknown_methods_and_routes_get_bounded_labels(log_pipe):
    before = sample("rates_http_requests_total", method="OTHER", route="unmatched", status="200")
    call(RequestObserver(app("200 OK"), log_pipe[1]), method="BREW")
    assert sample("rates_http_requests_total", method="OTHER", route="unmatched", status="200") - before == 1


def test_the_dispatcher_sends_exact_paths_to_their_app():
    dispatcher = PathDispatcher({"/a": app("201 CREATED")}, app("200 OK"))
    assert call(dispatcher, "/a")[0]["status"] == "201 CREATED"
    assert call(dispatcher, "/a/b")[0]["status"] == "200 OK"
