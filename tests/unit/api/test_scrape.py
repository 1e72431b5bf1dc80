"""GET /metrics over a fake database: the figures sampled at the scrape (readiness, data version,
the batch bound) next to the counters of the workers."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rates.api.app import create_app
from rates.batches.ingest import Ingestor, Limits
from rates.components import Components
from rates.config import load
from rates.reads.service import RatesService
from tests.fakes import FakeReads


@pytest.fixture
def reads() -> FakeReads:
    return FakeReads(version=17)


@pytest.fixture
def client(reads, monkeypatch):
    monkeypatch.setenv("RATES_ENV_FILE", "/dev/null")
    settings = load({"RATES_ENV_FILE": "/dev/null", "RATES_SECRETS_DIR": "/nonexistent", "LOG_ACCESS_BUFFER": "0"})
    components = Components(settings=settings, reads=reads, batch_pools=None,  # type: ignore[arg-type]
                            rates=RatesService(reads, 16), ingestor=Ingestor(None, Limits(10, 1000, 90_000)))  # type: ignore[arg-type]
    return create_app(components).test_client()


def scraped(client) -> dict[str, float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {s.name: s.value for family in text_string_to_metric_families(response.data.decode())
            for s in family.samples if not s.labels}


def test_a_scrape_reports_readiness_the_data_version_and_the_batch_bound(client):
    values = scraped(client)
    assert (values["rates_ready"], values["rates_data_version"], values["rates_batch_timeout_seconds"]) == (1, 17, 90)
    assert values["rates_batch_oldest_open_seconds"] == 0
    assert values["rates_batches_in_progress"] == 0


def test_a_scrape_while_the_database_is_down_says_not_ready_and_still_answers(client, reads):
    reads.down = True
    values = scraped(client)
    assert values["rates_ready"] == 0
    assert "rates_data_version" not in values
    assert "rates_http_requests_total" in client.get("/metrics").data.decode()
