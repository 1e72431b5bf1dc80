"""Hostile and odd request bodies and headers against the running API: each gets its documented
answer (docs/batch-ingestion.md, "Hostile input"), never a 500, and no stack trace reaches the
log. The time a compression bomb costs is measured by scripts/bench_hostile.py, not here."""

from __future__ import annotations

import gzip
import json
import random
import socket
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import requests

from rates.batches.body import MAX_GZIP_RATIO
from rates.batches.items import MAX_BLANK, MAX_BLANK_LINES
from tests.integration.test_batches_api import HEADER, fresh_day, post, prices_on
from tests.stack import dotenv_ingest_token, run

LONG = 10_000  # characters of an over-long header value
FIELDS = HEADER.strip().split(",")


@pytest.fixture(scope="module")
def token(stack) -> str:
    return dotenv_ingest_token()


@pytest.fixture(scope="module")
def since(stack) -> str:
    """When this module's requests began: the log is checked from there."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))


@pytest.fixture(scope="module")
def port(stack) -> str:
    with stack.connect() as conn:
        return conn.execute("SELECT code FROM ports ORDER BY code LIMIT 1").fetchone()[0]


def bomb(prefix: bytes, filler: bytes, size: int) -> bytes:
    """``prefix``, then ``size`` bytes of ``filler``, gzipped at -9 (about a thousandth of it)."""
    encoder = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = filler * (1024 * 1024 // len(filler))
    return encoder.compress(prefix) + b"".join(encoder.compress(block) for _ in range(size // len(block))) \
        + encoder.flush()


@dataclass(frozen=True)
class Case:
    body: Callable[[str], bytes]  # from a port code
    status: int
    fragment: str
    ctype: str = "text/csv"
    headers: tuple[tuple[str, str], ...] = ()


def row(port: str, day: str = "2021-01-31") -> str:
    return f"{port},{port},{day},7\n"


# Bodies and headers that must be refused, with their answer; nothing of them is written.
REFUSED = {
    "Idempotency-Key of 10,000 characters": Case(lambda p: (HEADER + row(p)).encode(), 400,
                                                 "Idempotency-Key must be 1 to 200", headers=(("key", "k" * LONG),)),
    "Content-Type of 10,000 characters": Case(lambda p: b"x", 415, "is not supported", ctype="text/" + "x" * LONG),
    "Content-Encoding of 10,000 characters": Case(lambda p: b"x", 415, "is not supported",
                                                  headers=(("Content-Encoding", "g" * LONG),)),
    "Authorization of 10,000 characters": Case(lambda p: b"x", 403, "the bearer token is not accepted",
                                               headers=(("Authorization", "Bearer " + "a" * LONG),)),
    "CSV header of 5,000 columns": Case(lambda p: (",".join(f"c{i}" for i in range(5000)) + "\n").encode(), 422,
                                        "5000 unexpected fields in all"),
    "CSV row of 5,000 values": Case(lambda p: (HEADER + ",".join(["x"] * 5000) + "\n").encode(), 422,
                                    "expected 4 values (orig_code,dest_code,day,price), got 5000"),
    "JSON object of 5,000 keys": Case(lambda p: json.dumps([{f"k{i}": 1 for i in range(5000)}]).encode(), 422,
                                      "missing field", ctype="application/json"),
    "UTF-16 with its BOM": Case(lambda p: (HEADER + row(p)).encode("utf-16"), 422, "not valid UTF-8"),
    "CSV with CR-only line ends": Case(lambda p: (HEADER + row(p) * 2).replace("\n", "\r").encode(), 422,
                                       "a carriage return (CR) inside a line; lines must end with LF or CR LF"),
    "NDJSON with CR-only line ends": Case(lambda p: (json.dumps({"orig_code": p}) + "\r") .encode() * 2, 422,
                                          "invalid JSON", ctype="application/x-ndjson"),
    "NUL byte in a value": Case(lambda p: (HEADER + f"{p},EE\0LL,2021-01-31,1\n").encode(), 422,
                                "expected a port code like CNGGZ"),
    "empty CSV body": Case(lambda p: b"", 422, "the batch has no rows"),
    "CSV header only": Case(lambda p: HEADER.encode(), 422, "the batch has no rows"),
    "empty JSON body": Case(lambda p: b"", 422, "expected a JSON array of objects", ctype="application/json"),
    "empty NDJSON body": Case(lambda p: b"", 422, "the batch has no rows", ctype="application/x-ndjson"),
    "gzip cut short": Case(lambda p: gzip.compress((HEADER + "".join(
        row(p, f"2021-01-{random.randint(1, 28):02d}") for _ in range(20_000))).encode())[:5000], 400,
        "invalid gzip body: the gzip stream is truncated", headers=(("Content-Encoding", "gzip"),)),
    "plain CSV, blank lines past the limit": Case(
        lambda p: (HEADER + row(p) + "\n" * (MAX_BLANK_LINES + 1) + row(p)).encode(), 422,
        f"more than {MAX_BLANK_LINES} blank lines in a row"),
    "gzip bomb of newlines, CSV": Case(lambda p: bomb(HEADER.encode(), b"\n", 64 << 20), 422,
                                       f"more than {MAX_BLANK_LINES} blank lines in a row",
                                       headers=(("Content-Encoding", "gzip"),)),
    "gzip bomb of newlines, NDJSON": Case(lambda p: bomb(b"", b"\n", 64 << 20), 422,
                                          f"more than {MAX_BLANK_LINES} blank lines in a row",
                                          ctype="application/x-ndjson", headers=(("Content-Encoding", "gzip"),)),
    "gzip bomb of spaces, JSON": Case(lambda p: bomb(b"[", b" ", 64 << 20), 422,
                                      f"more than {MAX_BLANK} characters of whitespace in a row",
                                      ctype="application/json", headers=(("Content-Encoding", "gzip"),)),
    "gzip bomb of one valid row": Case(lambda p: bomb(HEADER.encode(), row(p, "2190-06-01").encode(), 64 << 20),
                                       413, f"the gzip body expands more than {MAX_GZIP_RATIO} times",
                                       headers=(("Content-Encoding", "gzip"),)),
}


@pytest.mark.parametrize("name", REFUSED)
def test_hostile_input_gets_its_answer_and_writes_nothing(stack, token, port, since, name):
    case = REFUSED[name]
    headers = dict(case.headers)
    key = headers.pop("key", f"hostile-{uuid.uuid4().hex}")
    if "Authorization" in headers:
        token = headers.pop("Authorization").removeprefix("Bearer ")
    response = post(stack, token, case.body(port), key, case.ctype, **{k.replace("-", "_"): v
                                                                       for k, v in headers.items()})
    assert response.status_code == case.status, response.text[:500]
    error = response.json()["error"] if response.status_code != 422 else response.json()["errors"][0]["message"]
    assert case.fragment in error or case.fragment in response.json()["error"], response.text[:500]
    assert len(response.content) < 20_000  # an error never echoes a hostile value whole
    with stack.connect() as conn:
        assert conn.execute("SELECT count(*) FROM batches WHERE key = %s", (key,)).fetchone()[0] == 0


@pytest.mark.parametrize(("name", "render", "ctype"), [
    ("UTF-8 BOM, CSV", lambda p, d: "\ufeff" + HEADER + row(p, d), "text/csv"),
    ("UTF-8 BOM, NDJSON", lambda p, d: "\ufeff" + json.dumps(dict(zip(FIELDS, [p, p, d, 7], strict=True)))
     + "\n", "application/x-ndjson"),
    ("UTF-8 BOM, JSON", lambda p, d: "\ufeff" + json.dumps([dict(zip(FIELDS, [p, p, d, 7], strict=True))]),
     "application/json"),
    ("CR LF line ends", lambda p, d: (HEADER + row(p, d) * 2).replace("\n", "\r\n"), "text/csv"),
    ("a long X-Request-ID", lambda p, d: HEADER + row(p, d), "text/csv"),
    ("a Content-Type parameter of 10,000 characters", lambda p, d: HEADER + row(p, d), "text/csv; x=" + "y" * LONG),
])
def test_odd_but_valid_input_is_committed(stack, token, port, since, name, render, ctype):
    day = fresh_day()
    response = post(stack, token, render(port, day), ctype=ctype, X_Request_ID="r" * LONG)
    try:
        assert response.status_code == 201, response.text[:500]
        assert len(response.headers["X-Request-ID"]) < 200  # not echoed: a new one
        assert prices_on(stack, day) == [7] * response.json()["rows"]
    finally:
        with stack.connect() as conn:
            conn.execute("DELETE FROM prices WHERE day = %s", (day,))


def test_a_header_too_large_for_the_server_is_431(stack, token, since):
    """The HTTP server refuses it before the application runs (granian's limit, between 100 KB
    and 1 MB of headers): a 431 without a JSON body."""
    response = requests.post(stack.api_url + "/batches", data=b"x", timeout=30,
                             headers={"Authorization": f"Bearer {token}", "X-Junk": "j" * 1_000_000})
    assert response.status_code == 431


def test_a_client_gone_mid_body_leaves_nothing_and_the_key_free(stack, token, port, since):
    key = f"hostile-{uuid.uuid4().hex}"
    day = fresh_day()
    head = (f"POST /batches HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nIdempotency-Key: {key}\r\n"
            f"Content-Type: text/csv\r\nContent-Length: 10000000\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", stack.api_port), timeout=10) as conn:
        conn.sendall(head + (HEADER + row(port, day) * 10_000).encode())
        time.sleep(0.5)  # the batch is streaming into COPY
    deadline = time.monotonic() + 30
    while (again := post(stack, token, HEADER + row(port, day), key)).status_code == 503 \
            and time.monotonic() < deadline:
        time.sleep(0.5)  # the first transaction is being rolled back
    try:
        assert again.status_code == 201, again.text
        assert again.json()["rows"] == 1
    finally:
        with stack.connect() as conn:
            conn.execute("DELETE FROM prices WHERE day = %s", (day,))


def test_no_hostile_input_left_a_stack_trace_or_a_500(stack, since):
    """Runs after the tests above (pytest keeps the file's order)."""
    logs = run(["docker", "compose", "logs", "--no-color", "--no-log-prefix", "--since", since, "api"],
               env=stack.env).stdout
    assert "/batches" in logs  # the requests above are there
    assert "Traceback" not in logs
    statuses = [json.loads(line).get("status") for line in logs.splitlines() if line.startswith("{")]
    assert 500 not in statuses
