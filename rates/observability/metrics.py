"""Prometheus metrics, correct across several worker processes.

With PROMETHEUS_MULTIPROC_DIR set (the container sets it; `python -m rates serve` empties it
at start), every worker writes its samples to memory-mapped files there and /metrics sums
them, so a scrape that lands on any worker sees the whole server; the live gauges of workers
that are gone are dropped first. Without it (a single process, tests) the default in-process
registry is used. Figures sampled at the scrape itself (rates.api.scrape) are added to the text.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from rates.observability import batch_metrics

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
for _result in ("hit", "miss", "stale"):  # each a series from the start: the hit ratio exists at once
    CACHE.labels(_result)
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


# A sample taken at the scrape: (name, help, value).
Sample = tuple[str, str, float]
LIVE_FILE = re.compile(r"gauge_live\w+_(\d+)\.db")


class _Samples:
    """A collector of figures sampled at the scrape (readiness, data version...)."""

    def __init__(self, samples: Iterable[Sample]) -> None:
        self.samples = list(samples)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        for name, documentation, value in self.samples:
            yield GaugeMetricFamily(name, documentation, value=value)


def render(sampled: Iterable[Sample] = ()) -> tuple[bytes, str]:
    """The exposition text of every worker's metrics plus ``sampled``, and its content type."""
    registry = REGISTRY
    if MULTIPROCESS:
        forget_dead_workers()
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    oldest = registry.get_sample_value(batch_metrics.OLDEST_START_NAME)
    age = time.time() - oldest if oldest and not math.isinf(oldest) else 0.0
    extra = CollectorRegistry()
    extra.register(_Samples([*sampled, (batch_metrics.OLDEST_AGE, "Age of the oldest batch in progress (0: none)",
                                        max(age, 0.0))]))
    return generate_latest(registry) + generate_latest(extra), CONTENT_TYPE_LATEST


def forget_dead_workers() -> None:
    """Drop the live gauges of worker processes that are gone: granian respawns a killed worker
    without telling anyone, and its last values (a batch in progress...) would stay summed."""
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for pid in {int(m.group(1)) for name in names if (m := LIVE_FILE.fullmatch(name))}:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, folder)
        except PermissionError:  # alive, another user's
            continue


def mark_process_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (called when a worker exits)."""
    if MULTIPROCESS:
        multiprocess.mark_process_dead(pid)
