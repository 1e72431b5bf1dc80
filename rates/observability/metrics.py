"""Prometheus metrics, correct across several worker processes.

With PROMETHEUS_MULTIPROC_DIR set (the container sets it; `python -m rates serve` empties it
at start), every worker writes its samples to memory-mapped files there and /metrics sums
them, so a scrape that lands on any worker sees the whole server. Without it (a single
process, tests) the default in-process registry is used.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

REQUESTS = Counter("rates_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "rates_http_request_duration_seconds",
    "HTTP request latency, from the call of the application to its return",
    ["method", "route"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
ERRORS = Counter("rates_errors_total", "Requests answered with an error, by kind", ["kind"])
CACHE = Counter("rates_cache_requests_total", "Response cache look-ups", ["result"])
# Gauges: the sum over live worker processes ("livesum") is the server's figure.
POOL_IN_USE = Gauge("rates_db_pool_connections_in_use", "Database connections lent to requests",
                    multiprocess_mode="livesum")
POOL_SIZE = Gauge("rates_db_pool_connections", "Database connections open", multiprocess_mode="livesum")
POOL_WAITING = Gauge("rates_db_pool_requests_waiting", "Requests waiting for a connection",
                     multiprocess_mode="livesum")


def child(metric, *labels: str):  # noqa: ANN001, ANN201 - any labelled metric
    """``metric.labels(*labels)``, memoised: the hot path skips prometheus-client's lock."""
    key = (metric, labels)
    found = _CHILDREN.get(key)
    if found is None:
        found = _CHILDREN[key] = metric.labels(*labels)
    return found


_CHILDREN: dict[tuple, object] = {}


def observe_pool(stats: dict[str, int]) -> None:
    """Record a psycopg_pool ``get_stats()`` snapshot of this worker."""
    size = stats.get("pool_size", 0)
    POOL_SIZE.set(size)
    POOL_IN_USE.set(size - stats.get("pool_available", 0))
    POOL_WAITING.set(stats.get("requests_waiting", 0))


def render() -> tuple[bytes, str]:
    """The exposition text of every worker's metrics, and its content type."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (called when a worker exits)."""
    if MULTIPROCESS:
        multiprocess.mark_process_dead(pid)
