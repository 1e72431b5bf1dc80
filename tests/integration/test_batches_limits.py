"""Limits, a disabled ingestion and the batch timeout, through the app (rates.api.app) run in
this process (small limits, no need for a second stack) against the stack's database."""

from __future__ import annotations

import gzip
import io
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from rates.api.app import create_app
from rates.components import Components
from rates.config import Settings
from tests.stack import dotenv_password

TOKEN = "t" * 32
DAY = "2190-01-01"


def make_client(stack, **overrides):
    values = {"INGEST_TOKEN": TOKEN, "BATCH_MAX_ROWS": 100, "BATCH_MAX_BYTES": 20_000, **overrides}
    settings = Settings(DB_HOST="127.0.0.1", DB_PORT=stack.db_port, DB_PASSWORD=dotenv_password(), **values)
    components = Components.build(settings)
    return create_app(components).test_client(), components


@pytest.fixture()
def client(stack):
    test_client, db = make_client(stack)
    yield test_client
    db.close()


@pytest.fixture(scope="module")
def line(stack) -> str:
    with stack.connect() as conn:
        code = conn.execute("SELECT code FROM ports ORDER BY code LIMIT 1").fetchone()[0]
    return f"{code},{code},{DAY},7\n"


def nothing_written(stack, key: str) -> bool:
    with stack.connect() as conn:
        prices = conn.execute("SELECT count(*) FROM prices WHERE day = %s", (DAY,)).fetchone()[0]
        batches = conn.execute("SELECT count(*) FROM batches WHERE key = %s", (key,)).fetchone()[0]
    return prices == 0 and batches == 0


def post(client, data: bytes, key: str, chunked: bool = False, **headers):
    headers = {"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": key, "Content-Type": "text/csv", **headers}
    if not chunked:
        return client.post("/batches", data=data, headers=headers)
    headers["Transfer-Encoding"] = "chunked"
    return client.post("/batches", input_stream=io.BytesIO(data), headers=headers,
                       environ_overrides={"wsgi.input_terminated": True})


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_more_rows_than_the_limit_is_413_and_nothing_written(stack, client, line, chunked):
    key = uuid.uuid4().hex
    response = post(client, b"orig_code,dest_code,day,price\n" + line.encode() * 101, key, chunked)
    assert response.status_code == 413
    assert "BATCH_MAX_ROWS" in response.json["error"]
    assert nothing_written(stack, key)
    assert post(client, b"orig_code,dest_code,day,price\n" + line.encode() * 100, key).status_code == 201
    with stack.connect() as conn:
        conn.execute("DELETE FROM prices WHERE day = %s", (DAY,))


def test_more_bytes_than_the_limit_while_streaming_is_413(stack, client, line):
    key = uuid.uuid4().hex
    body = b"orig_code,dest_code,day,price\n" + b"\n" * 30_000 + line.encode()
    response = post(client, body, key, chunked=True)  # no Content-Length to refuse up front
    assert response.status_code == 413 and "BATCH_MAX_BYTES" in response.json["error"]
    assert nothing_written(stack, key)


def test_gzip_that_inflates_past_the_limit_is_413(stack, client, line):
    key = uuid.uuid4().hex
    bomb = gzip.compress(b"orig_code,dest_code,day,price\n" + line.encode() * 50_000)  # 1.2 MB in 5 KB
    assert len(bomb) < 20_000
    response = post(client, bomb, key, Content_Encoding="gzip")
    assert response.status_code == 413 and "decoded body" in response.json["error"]
    assert nothing_written(stack, key)


def test_no_configured_token_disables_ingestion(stack, line):
    client, db = make_client(stack, INGEST_TOKEN="")
    try:
        response = post(client, b"orig_code,dest_code,day,price\n" + line.encode(), uuid.uuid4().hex)
        assert response.status_code == 403 and "disabled" in response.json["error"]
        assert client.get("/batches?limit=1").status_code == 403  # the records need a token too
    finally:
        db.close()


class Stalling(io.BytesIO):
    """A body that stops sending for ``pause`` seconds once its first half is read."""

    def __init__(self, data: bytes, pause: float) -> None:
        super().__init__(data)
        self.half, self.pause, self.paused = len(data) // 2, pause, False

    def read(self, n: int | None = -1) -> bytes:
        if self.tell() >= self.half and not self.paused:
            self.paused = True
            time.sleep(self.pause)
        if n is None or n < 0 or self.tell() + n > self.half > self.tell():
            n = self.half - self.tell() if self.tell() < self.half else -1
        return super().read(n)

    def readinto(self, buffer) -> int:  # what werkzeug's LimitedStream calls
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def test_a_batch_slower_than_its_timeout_is_rolled_back(stack, line):
    client, db = make_client(stack, BATCH_STATEMENT_TIMEOUT_MS=300)
    key = uuid.uuid4().hex
    try:
        data = b"orig_code,dest_code,day,price\n" + line.encode() * 50
        response = client.post("/batches", input_stream=Stalling(data, 1.0), content_length=len(data),
                               headers={"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": key,
                                        "Content-Type": "text/csv"})
        assert response.status_code == 503, response.json
        assert "BATCH_STATEMENT_TIMEOUT_MS" in response.json["error"]
        assert response.headers["Retry-After"] == "1"
    finally:
        db.close()
    assert nothing_written(stack, key)


class Stalled(io.BytesIO):
    """A body whose client goes silent after the first half, until ``resume`` is set."""

    def __init__(self, data: bytes, resume: threading.Event) -> None:
        super().__init__(data)
        self.half, self.resume = len(data) // 2, resume

    def readinto(self, buffer) -> int:
        if self.tell() >= self.half:
            self.resume.wait(60)
        n = min(len(buffer), self.half - self.tell()) if self.tell() < self.half else len(buffer)
        data = self.read(n)
        buffer[: len(data)] = data
        return len(data)


def test_a_silent_client_loses_its_transaction_and_the_same_key_goes_through(stack, line):
    """statement_timeout does not fire while COPY waits for the client; the watchdog does."""
    client, db = make_client(stack, BATCH_STATEMENT_TIMEOUT_MS=500)
    key = uuid.uuid4().hex
    data = b"orig_code,dest_code,day,price\n" + line.encode() * 50
    headers = {"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": key, "Content-Type": "text/csv"}
    resume = threading.Event()
    try:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(lambda: client.post("/batches", input_stream=Stalled(data, resume),
                                                    content_length=len(data), headers=headers))
            copying = wait_for(stack, "SELECT pid FROM pg_stat_activity WHERE query LIKE 'COPY public.prices%%'")
            wait_for(stack, f"SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = {copying})")
            second = make_client(stack)[0].post("/batches", data=data, headers=headers)
            assert second.status_code == 201, second.json  # did not wait behind the silent one
            resume.set()
            response = first.result(timeout=60)
        assert response.status_code == 503 and "BATCH_STATEMENT_TIMEOUT_MS" in response.json["error"]
    finally:
        resume.set()
        db.close()
    with stack.connect() as conn:
        assert conn.execute("SELECT count(*) FROM prices WHERE day = %s", (DAY,)).fetchone()[0] == 50
        conn.execute("DELETE FROM prices WHERE day = %s", (DAY,))


def wait_for(stack, query: str, within: float = 15) -> object:
    """Poll ``query`` until it returns a row; its first value."""
    deadline = time.monotonic() + within
    with stack.connect(autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(query).fetchone()
            if row:
                return row[0]
            time.sleep(0.05)
    raise AssertionError(f"nothing within {within}s: {query}")
