"""rates.observability.batch_metrics and the scrape-time parts of rates.observability.metrics:
each batch counted once by its outcome, the batches in progress, the age of the oldest, and the
live gauges of a dead worker forgotten."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from rates.errors import BadRequest, Conflict, Invalid, ServiceError, TimedOut, TooLarge, Unavailable, UnsupportedMedia
from rates.observability import batch_metrics, metrics
from rates.observability.batch_metrics import BatchObservation, outcome_of


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def rendered(sampled=()) -> dict[str, float]:
    text = metrics.render(sampled)[0].decode()
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples
            if not s.labels}


@pytest.mark.parametrize(("exc", "status", "outcome"), [
    (None, 201, "committed"),
    (None, 200, "replayed"),
    (Conflict("x"), 0, "conflict"),
    (Invalid("x", [], 1), 0, "rejected"),
    (BadRequest("x"), 0, "rejected"),
    (UnsupportedMedia("x"), 0, "rejected"),
    (TooLarge("x"), 0, "too_large"),
    (TimedOut("x"), 0, "timed_out"),
    (Unavailable("x"), 0, "unavailable"),
    (ServiceError(), 0, "error"),
    (RuntimeError("x"), 0, "error"),
])
def test_each_ending_has_its_outcome(exc, status, outcome):
    assert outcome_of(exc, status) == outcome


def test_a_timed_out_batch_is_still_a_503_of_kind_unavailable():
    assert (TimedOut.status, TimedOut.kind) == (503, "unavailable")


def test_every_outcome_is_a_series_before_any_batch():
    for outcome in batch_metrics.OUTCOMES:
        assert REGISTRY.get_sample_value("rates_batches_total", {"outcome": outcome}) is not None


def test_a_committed_batch_counts_once_with_its_rows_and_bytes():
    before = (sample("rates_batches_total", outcome="committed"), sample("rates_batch_rows_total"),
              sample("rates_batch_bytes_total"), sample("rates_batch_duration_seconds_count", outcome="committed"))
    with BatchObservation() as seen:
        seen.answered(201, 7, 300)
    after = (sample("rates_batches_total", outcome="committed"), sample("rates_batch_rows_total"),
             sample("rates_batch_bytes_total"), sample("rates_batch_duration_seconds_count", outcome="committed"))
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 7, 300, 1]


def test_a_failed_batch_counts_by_outcome_and_adds_no_rows():
    before = sample("rates_batches_total", outcome="too_large"), sample("rates_batch_rows_total")
    with pytest.raises(TooLarge), BatchObservation():
        raise TooLarge("too many rows")
    assert (sample("rates_batches_total", outcome="too_large"), sample("rates_batch_rows_total")) == (
        before[0] + 1, before[1])


def test_batches_in_progress_and_the_age_of_the_oldest():
    assert rendered()[batch_metrics.OLDEST_AGE] == 0
    idle = sample("rates_batches_in_progress")
    with BatchObservation(), BatchObservation():
        time.sleep(0.2)
        with BatchObservation():
            assert sample("rates_batches_in_progress") == idle + 3
            assert 0.2 <= rendered()[batch_metrics.OLDEST_AGE] < 5
    assert sample("rates_batches_in_progress") == idle
    assert math.isinf(sample(batch_metrics.OLDEST_START_NAME))
    assert rendered()[batch_metrics.OLDEST_AGE] == 0


def test_samples_taken_at_the_scrape_are_rendered():
    values = rendered([("rates_ready", "ready", 1.0), ("rates_data_version", "version", 42.0)])
    assert (values["rates_ready"], values["rates_data_version"]) == (1.0, 42.0)


def test_the_live_gauges_of_a_dead_worker_are_forgotten(tmp_path, monkeypatch):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    alive = str(subprocess.os.getpid())
    for pid in (dead, alive):
        for kind in ("gauge_livesum", "gauge_livemin", "counter"):
            (tmp_path / f"{kind}_{pid}.db").write_bytes(b"")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    metrics.forget_dead_workers()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"counter_{dead}.db", f"counter_{alive}.db", f"gauge_livemin_{alive}.db", f"gauge_livesum_{alive}.db"])
