"""GET /rates: the hot path, served as plain WSGI (no framework work per request).

query string -> validated query (rates.api.params) -> RatesService (exact cache, database).
Errors have the JSON shape of every other route (rates.api.responses).

The ETag of an answer is the data version it was computed at ("42"); If-None-Match with that
version, or a newer one, is answered 304 without running the query (rates.reads.service).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus

from rates.api.middleware import ROUTE_KEY
from rates.api.params import query_arguments, rates_query
from rates.api.responses import JSON, error_parts
from rates.db.pools import ReadPool
from rates.errors import MethodNotAllowed, ServiceError
from rates.observability import metrics
from rates.reads.service import RatesService

log = logging.getLogger(__name__)
ROUTE = "/rates"
# The pool gauges are sampled at most this often by the hot path (and at every /metrics scrape).
POOL_SAMPLE_SECONDS = 0.25
STATUS_LINES = {status.value: f"{status.value} {status.phrase.upper()}" for status in HTTPStatus}
# An entity tag this route issued: a data version, quoted, weak or not (If-None-Match compares weakly).
VERSION_TAG = re.compile(r'\s*(?:W/)?"([0-9]{1,18})"\s*')


def newest_version(if_none_match: str | None) -> int | None:
    """The newest data version among the entity tags of an If-None-Match header; tags this
    route did not issue (and "*") are ignored."""
    versions = [int(m.group(1)) for tag in (if_none_match or "").split(",") if (m := VERSION_TAG.fullmatch(tag))]
    return max(versions, default=None)


class RatesEndpoint:
    """The WSGI application of GET /rates."""

    def __init__(self, service: RatesService, reads: ReadPool, max_range_days: int) -> None:
        self.service = service
        self.reads = reads
        self.max_range_days = max_range_days
        self._next_pool_sample = 0.0

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        environ[ROUTE_KEY] = ROUTE
        method = environ.get("REQUEST_METHOD")
        try:
            if method not in ("GET", "HEAD"):
                raise MethodNotAllowed(f"method {method} not allowed on {ROUTE}", ["GET", "HEAD"])
            args = query_arguments(environ.get("QUERY_STRING", ""))
            answer = self.service.answer_versioned(rates_query(args, self.max_range_days),
                                                   newest_version(environ.get("HTTP_IF_NONE_MATCH")))
            tag = [("ETag", f'"{answer.version}"')] if answer.version is not None else []
            if answer.body is None:
                start_response(STATUS_LINES[304], tag)
                return []
            status, headers, body = 200, [("Content-Type", JSON), *tag], answer.body
        except ServiceError as exc:
            if exc.status >= 500:
                log.warning("%d: %s (%s)", exc.status, exc, exc.__cause__)
            status, headers, body = error_parts(exc, environ)
        except Exception:
            log.exception("unhandled error on GET %s", ROUTE)
            status, headers, body = error_parts(ServiceError(), environ)
        finally:
            self._sample_pool()
        headers.append(("Content-Length", str(len(body))))
        start_response(STATUS_LINES[status], headers)
        return [body] if method != "HEAD" else []

    def _sample_pool(self) -> None:
        now = time.monotonic()
        if now >= self._next_pool_sample:  # pool gauges: a sample per interval is enough
            self._next_pool_sample = now + POOL_SAMPLE_SECONDS
            metrics.observe_pool(self.reads.stats())
