"""Metrics of batch ingestion: every batch counted once by its outcome, with its duration; rows
and bytes of the committed ones; the batches in progress and the start of the oldest of them.

Outcomes: committed (201), replayed (200, same key and content), conflict (409), rejected
(invalid rows or a malformed request: 4xx), too_large (413), timed_out (503 after
BATCH_STATEMENT_TIMEOUT_MS), unavailable (503, the database), error (an unexpected failure).

Several worker processes: the counters and the histogram are summed over them
(rates.observability.metrics); ``rates_batches_in_progress`` is the sum over live workers and
the start of the oldest open batch their minimum, +Inf while none is open, from which /metrics
derives ``rates_batch_oldest_open_seconds``.
"""

from __future__ import annotations

import math
import threading
import time
from types import TracebackType

from prometheus_client import Counter, Gauge, Histogram

from rates.errors import Conflict, ServiceError, TimedOut, TooLarge, Unavailable

OUTCOMES = ("committed", "replayed", "conflict", "rejected", "too_large", "timed_out", "unavailable", "error")

BATCHES = Counter("rates_batches_total", "Batches by outcome", ["outcome"])
ROWS = Counter("rates_batch_rows_total", "Rows of the committed batches")
BYTES = Counter("rates_batch_bytes_total", "Bytes of the committed batches' content (after gzip decoding)")
DURATION = Histogram(
    "rates_batch_duration_seconds", "Time from a batch's arrival to its answer, by outcome", ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0),
)
IN_PROGRESS = Gauge("rates_batches_in_progress", "Batches being received or committed", multiprocess_mode="livesum")
OLDEST_START_NAME = "rates_batch_oldest_open_start_timestamp_seconds"
OLDEST_START = Gauge(OLDEST_START_NAME,
                     "Arrival time of the oldest batch in progress (+Inf: none)", multiprocess_mode="livemin")
OLDEST_AGE = "rates_batch_oldest_open_seconds"  # derived at the scrape (rates.observability.metrics)

for _outcome in OUTCOMES:  # every outcome is a series from the start, at 0
    BATCHES.labels(_outcome)
    DURATION.labels(_outcome)
OLDEST_START.set(math.inf)

_open: dict[int, float] = {}  # id of the observation -> its arrival time, in this process
_lock = threading.Lock()


def outcome_of(exc: BaseException | None, status: int) -> str:
    """The outcome of a batch answered ``status``, or ended by ``exc``."""
    if exc is None:
        return "committed" if status == 201 else "replayed"
    for kind, outcome in ((TooLarge, "too_large"), (Conflict, "conflict"), (TimedOut, "timed_out"),
                          (Unavailable, "unavailable")):
        if isinstance(exc, kind):
            return outcome
    if isinstance(exc, ServiceError) and exc.status < 500:
        return "rejected"
    return "error"


def _set_oldest() -> None:
    OLDEST_START.set(min(_open.values(), default=math.inf))


class BatchObservation:
    """``with BatchObservation() as seen:`` around one batch; ``seen.answered(...)`` once it is."""

    def __init__(self) -> None:
        self.status = 0
        self.rows = 0
        self.bytes = 0

    def __enter__(self) -> BatchObservation:
        self._started = time.perf_counter()
        with _lock:
            _open[id(self)] = time.time()
            _set_oldest()
        IN_PROGRESS.inc()
        return self

    def answered(self, status: int, rows: int, size: int) -> None:
        self.status, self.rows, self.bytes = status, rows, size

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        outcome = outcome_of(exc, self.status)
        BATCHES.labels(outcome).inc()
        DURATION.labels(outcome).observe(time.perf_counter() - self._started)
        if outcome == "committed":
            ROWS.inc(self.rows)
            BYTES.inc(self.bytes)
        IN_PROGRESS.dec()
        with _lock:
            _open.pop(id(self), None)
            _set_oldest()
