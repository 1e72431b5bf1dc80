"""rates.api.app over a fake database: every route's answer and every error's JSON shape,
without PostgreSQL (the integration tier runs the same routes against the real one)."""

from __future__ import annotations

import pytest

from rates.api.app import create_app
from rates.batches.ingest import Ingestor, Limits
from rates.components import Components
from rates.config import load
from rates.reads.service import RatesService
from tests.fakes import FakeReads

TOKEN = "t" * 32
BEARER = {"Authorization": f"Bearer {TOKEN}"}
RATES = "/rates?date_from=2021-01-01&date_to=2021-01-31&orig_code=CNGGZ&dest_code=EETLL"


@pytest.fixture
def reads() -> FakeReads:
    return FakeReads()


@pytest.fixture
def client(reads, monkeypatch):
    monkeypatch.setenv("RATES_ENV_FILE", "/dev/null")
    settings = load({"RATES_ENV_FILE": "/dev/null", "RATES_SECRETS_DIR": "/nonexistent", "LOG_ACCESS_BUFFER": "0",
                     "INGEST_TOKEN": TOKEN})
    components = Components(settings=settings, reads=reads, batch_pools=None,  # type: ignore[arg-type]
                            rates=RatesService(reads, 16), ingestor=Ingestor(None, Limits(10, 1000, 0)))  # type: ignore[arg-type]
    return create_app(components).test_client()


def test_root_is_the_original_greeting(client):
    response = client.get("/")
    assert (response.status_code, response.json) == (200, {"message": "Hello world!"})


def test_rates_answer_and_request_id(client):
    response = client.get(RATES, headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 200
    assert response.json == {"rates": [{"count": 3, "day": "2021-01-31", "price": 1154.5}]}
    assert response.headers["X-Request-ID"] == "abc-123"
    assert len(client.get(RATES).headers["X-Request-ID"]) == 32  # made up when none is sent


def test_head_has_no_body(client):
    response = client.head(RATES)
    assert (response.status_code, response.data) == (200, b"")


@pytest.mark.parametrize(
    ("path", "method", "status", "message"),
    [
        ("/rates?date_from=x", "GET", 400, "date_from: expected an ISO date YYYY-MM-DD, got 'x'"),
        ("/rates", "PUT", 405, "method PUT not allowed on /rates"),
        ("/nope", "GET", 404, None),
        ("/healthz", "POST", 405, None),
        ("/batches?limit=0", "GET", 400, "limit: must be between 1 and 1000"),
        ("/batches", "POST", 403, "the bearer token is not accepted"),
    ],
)
def test_every_error_is_json_with_a_message(client, path, method, status, message):
    headers = {"Authorization": "Bearer " + "x" * 32} if method == "POST" else BEARER
    response = client.open(path, method=method, headers=headers)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert set(response.json) == {"error"}
    if message:
        assert response.json["error"] == message
    if status == 405:
        assert "GET" in response.headers["Allow"]


def test_an_unreachable_database_is_a_503_to_retry(client, reads):
    reads.down = True
    for path in (RATES, "/readyz", "/batches"):
        response = client.get(path, headers=BEARER)
        assert response.status_code == 503, path
        assert response.headers["Retry-After"] == "1"
        assert response.json["error"].startswith("service unavailable: ")


def test_an_unexpected_error_is_a_500_that_tells_nothing_of_the_internals(client, reads):
    def broken(*args):
        raise RuntimeError("secret internals")

    reads.fetch_all = broken
    for path in (RATES, "/batches"):
        response = client.get(path, headers=BEARER)
        assert (response.status_code, response.json) == (500, {"error": "internal server error"}), path


def test_health_readiness_metrics_and_the_document(client):
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json == {"status": "ready"}
    assert b"rates_http_requests_total" in client.get("/metrics").data
    assert client.get("/openapi.json").json["paths"]["/"]["get"]["operationId"] == "getRoot"
