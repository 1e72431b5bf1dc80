"""GET /rates: the hot path, served as plain WSGI (no framework work per request).

validated query -> exact versioned cache (rates.cache) -> database. Errors are JSON like the
rest of the API: 400 naming the parameter, 503 when the database is unreachable.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from urllib.parse import unquote_plus

import orjson

from rates import config, metrics, queries
from rates.cache import VersionedCache
from rates.db import Database, DatabaseUnavailable
from rates.middleware import ERROR_KEY, ROUTE_KEY
from rates.validation import InvalidParameter, RatesQuery, parse_rates_query

log = logging.getLogger(__name__)
ROUTE = "/rates"
# The pool gauges are sampled at most this often by the hot path (and at every /metrics scrape).
POOL_SAMPLE_SECONDS = 0.25
STATUS = {200: "200 OK", 400: "400 BAD REQUEST", 405: "405 METHOD NOT ALLOWED",
          500: "500 INTERNAL SERVER ERROR", 503: "503 SERVICE UNAVAILABLE"}


def render_rates(rows: list[tuple]) -> bytes:
    """The response body: rows are (data version, day, count, average)."""
    return orjson.dumps({"rates": [{"count": n, "day": day, "price": price} for _, day, n, price in rows]})


def query_arguments(query_string: str) -> dict[str, str]:
    """Parameters of a query string; the first value of a repeated name wins, as in Flask."""
    args: dict[str, str] = {}
    for part in query_string.split("&"):
        name, _, value = part.partition("=")
        if "%" in part or "+" in part:
            name, value = unquote_plus(name), unquote_plus(value)
        if name and name not in args:
            args[name] = value
    return args


class RatesService:
    """Answers a validated query, from the cache when the data has not changed since."""

    def __init__(self, db: Database, settings: config.Settings) -> None:
        self.db = db
        self.cache = VersionedCache(settings.RATES_CACHE_SIZE)

    def answer(self, q: RatesQuery) -> bytes:
        key = (q.orig, q.dest, q.date_from, q.date_to)
        if self.cache.enabled:
            if self.cache.has(key):
                body = self.cache.get(key, self.db.data_version())
                if body is not None:
                    metrics.child(metrics.CACHE, "hit").inc()
                    return body
                metrics.child(metrics.CACHE, "stale").inc()
            else:
                metrics.child(metrics.CACHE, "miss").inc()
        rows = self.db.fetch_all(
            queries.daily_average(q.orig_is_region, q.dest_is_region),
            {"orig": q.orig, "dest": q.dest, "date_from": q.date_from, "date_to": q.date_to},
        )
        body = render_rates(rows)
        if rows:  # an empty range has no row to carry the version: not cached
            self.cache.put(key, rows[0][0], body)
        return body


class RatesEndpoint:
    """The WSGI application of GET /rates."""

    def __init__(self, db: Database, settings: config.Settings) -> None:
        self.db = db
        self.service = RatesService(db, settings)
        self.max_range_days = settings.RATES_MAX_RANGE_DAYS
        self._next_pool_sample = 0.0

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        environ[ROUTE_KEY] = ROUTE
        headers = [("Content-Type", "application/json")]
        method = environ.get("REQUEST_METHOD")
        if method not in ("GET", "HEAD"):
            code, body = 405, self._error(environ, "method_not_allowed", f"method {method} not allowed on {ROUTE}")
            headers.append(("Allow", "GET, HEAD"))
        else:
            code, body = self._get(environ, headers)
        headers.append(("Content-Length", str(len(body))))
        start_response(STATUS[code], headers)
        return [body] if method != "HEAD" else []

    def _get(self, environ: dict, headers: list[tuple[str, str]]) -> tuple[int, bytes]:
        args = query_arguments(environ.get("QUERY_STRING", ""))
        try:
            return 200, self.service.answer(parse_rates_query(args, self.max_range_days))
        except InvalidParameter as exc:
            return 400, self._error(environ, "invalid_parameter", str(exc))
        except DatabaseUnavailable as exc:
            log.warning("503: %s (%s)", exc, exc.__cause__)
            headers.append(("Retry-After", "1"))
            return 503, self._error(environ, "database_unavailable", f"service unavailable: {exc}")
        except Exception:
            log.exception("unhandled error on GET %s", ROUTE)
            return 500, self._error(environ, "internal", "internal server error")
        finally:
            now = time.monotonic()
            if now >= self._next_pool_sample:  # pool gauges: a sample per interval is enough
                self._next_pool_sample = now + POOL_SAMPLE_SECONDS
                metrics.observe_pool(self.db.stats())

    @staticmethod
    def _error(environ: dict, kind: str, message: str) -> bytes:
        environ[ERROR_KEY] = kind
        return orjson.dumps({"error": message})
