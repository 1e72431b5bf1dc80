"""Operations of the API over HTTP: request ids, JSON logs, metrics, OpenAPI, the exact cache."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path

import pytest
import requests

from tests.stack import DOCUMENTED_QUERY, ROOT, dotenv_ingest_token, server_workers


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus exposition text (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        sample_name, _, rest = sample.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if sample_name == name and got == wanted:
            return float(value)
    return 0.0


def test_request_id_is_returned_and_an_incoming_one_honoured(stack):
    generated = stack.get("/healthz").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    mine = f"test-{uuid.uuid4().hex}"
    assert requests.get(f"{stack.api_url}/healthz", headers={"X-Request-ID": mine}, timeout=5).headers[
        "X-Request-ID"] == mine
    bad = requests.get(f"{stack.api_url}/healthz", headers={"X-Request-ID": "no spaces allowed"}, timeout=5)
    assert bad.headers["X-Request-ID"] != "no spaces allowed"


def test_one_json_log_line_per_request(stack):
    request_id = f"log-{uuid.uuid4().hex}"
    requests.get(f"{stack.api_url}/rates?{DOCUMENTED_QUERY}", headers={"X-Request-ID": request_id}, timeout=10)
    requests.get(f"{stack.api_url}/rates?date_from=bad", headers={"X-Request-ID": request_id + "-400"}, timeout=10)
    deadline = time.monotonic() + 10
    while True:
        logs = stack.compose("logs", "--no-color", "--no-log-prefix", "api").stdout
        lines = [json.loads(line) for line in logs.splitlines() if request_id in line]
        if len(lines) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    ok = next(entry for entry in lines if entry["request_id"] == request_id)
    assert ok["status"] == 200 and ok["route"] == "/rates" and ok["method"] == "GET"
    assert ok["path"].startswith("/rates?") and ok["duration_ms"] > 0
    assert {"ts", "level", "logger"} <= set(ok)
    bad = next(entry for entry in lines if entry["request_id"] == request_id + "-400")
    assert bad["status"] == 400


def test_metrics_add_up_across_worker_processes(stack):
    assert len(server_workers(stack)) >= 2, "expected at least two worker processes"
    before = stack.get("/metrics").text
    session = requests.Session()  # keep-alive connections land on different workers over time
    for _ in range(40):
        assert requests.get(f"{stack.api_url}/rates?{DOCUMENTED_QUERY}", timeout=10).status_code == 200
    for _ in range(7):
        assert session.get(f"{stack.api_url}/rates?date_from=x", timeout=10).status_code == 400
    after = stack.get("/metrics").text
    labels = {"method": "GET", "route": "/rates"}
    assert metric(after, "rates_http_requests_total", status="200", **labels) - metric(
        before, "rates_http_requests_total", status="200", **labels) == 40
    assert metric(after, "rates_http_requests_total", status="400", **labels) - metric(
        before, "rates_http_requests_total", status="400", **labels) == 7
    assert metric(after, "rates_errors_total", kind="invalid_parameter") - metric(
        before, "rates_errors_total", kind="invalid_parameter") == 7
    assert metric(after, "rates_http_request_duration_seconds_count", **labels) - metric(
        before, "rates_http_request_duration_seconds_count", **labels) == 47
    assert "rates_db_pool_connections_in_use" in after and "rates_db_pool_requests_waiting" in after
    assert metric(after, "rates_db_pool_connections") >= 1


def test_cache_never_serves_a_result_older_than_a_committed_write(stack):
    url = f"{stack.api_url}/rates?date_from=2021-01-31&date_to=2021-01-31&orig_code=CNGGZ&dest_code=EETLL"
    for _ in range(10):  # warm every worker's cache
        requests.get(url, timeout=10)
    with stack.connect(autocommit=True) as conn:
        (version_before,) = conn.execute("SELECT version FROM data_version").fetchone()
        try:
            for i in range(15):
                conn.execute("INSERT INTO prices VALUES ('CNGGZ', 'EETLL', '2021-01-31', %s)", (1000 + i,))
                (n,) = conn.execute("SELECT count(*) FROM prices WHERE orig_code = 'CNGGZ' AND dest_code = 'EETLL' "
                                    "AND day = '2021-01-31'").fetchone()
                got = requests.get(url, timeout=10).json()["rates"][0]["count"]
                assert got == n, f"write {i}: the API answered count {got}, the database has {n}"
            (version_after,) = conn.execute("SELECT version FROM data_version").fetchone()
            assert version_after == version_before + 15
        finally:
            conn.execute("DELETE FROM prices WHERE orig_code = 'CNGGZ' AND dest_code = 'EETLL' "
                         "AND day = '2021-01-31' AND price BETWEEN 1000 AND 1014")
    metrics_text = stack.get("/metrics").text
    assert metric(metrics_text, "rates_cache_requests_total", result="hit") > 0
    assert metric(metrics_text, "rates_cache_requests_total", result="stale") > 0


def test_head_and_wrong_methods(stack):
    head = requests.head(f"{stack.api_url}/rates?{DOCUMENTED_QUERY}", timeout=10)
    assert head.status_code == 200 and head.content == b""
    put = requests.put(f"{stack.api_url}/rates?{DOCUMENTED_QUERY}", timeout=10)
    assert put.status_code == 405 and "error" in put.json() and "GET" in put.headers["Allow"]


def test_openapi_document_is_served_and_valid(stack):
    document = stack.get("/openapi.json").json()
    assert document == json.loads((ROOT / "rates" / "api" / "openapi.json").read_text())
    assert document["openapi"].startswith("3.")


def test_schemathesis_finds_no_server_error_and_no_schema_violation(stack, tmp_path):
    """Property-based requests from the OpenAPI document, every check on every operation, the
    stateful phase included (POST /batches links to GET /batches/{batch_id}): every answer must
    match the document, and schema-valid requests must be accepted, but for the two operations
    tests/integration/schemathesis.toml names, with the reason (a rule across two parameters;
    ports that are data, not schema)."""
    schemathesis = Path(sys.executable).parent / "schemathesis"
    proc = subprocess.run(
        [str(schemathesis), "--config-file", str(ROOT / "tests" / "integration" / "schemathesis.toml"), "run",
         f"{stack.api_url}/openapi.json", "--header", f"Authorization: Bearer {dotenv_ingest_token()}",
         "--max-examples", "60", "--seed", "20210131", "--request-timeout", "10", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    tested = re.search(r"Tested: (\d+)", proc.stdout)
    assert tested and int(tested.group(1)) >= 8, proc.stdout[-2000:]  # all but /openapi.json itself
    assert re.search(r"Stateful \(in", proc.stdout), proc.stdout[-2000:]


def test_schemathesis_configuration_leaves_positive_data_acceptance_on_elsewhere():
    config = tomllib.loads((ROOT / "tests" / "integration" / "schemathesis.toml").read_text())
    assert config["checks"] == {"enabled": True}
    excluded = {op["include-operation-id"] for op in config["operations"]
                if op["checks"]["positive_data_acceptance"] == {"enabled": False}}
    assert excluded == {"getRates", "postBatch"}
    document = json.loads((ROOT / "rates" / "api" / "openapi.json").read_text())
    operations = {op["operationId"] for path in document["paths"].values() for op in path.values()}
    assert len(operations - excluded) == 7  # the check holds on every other operation


@pytest.mark.parametrize("length", [65, 1000, 10_000])
def test_over_long_values_are_rejected(stack, length):
    response = stack.get(f"/rates?date_from=2021-01-01&date_to=2021-01-31&orig_code={'A' * length}&dest_code=EETLL")
    assert response.status_code == 400
    assert response.json()["error"].startswith("orig_code: ")


def test_data_version_survives_a_deallocated_statement(stack):
    """psycopg runs DEALLOCATE ALL after a failed transaction: the version read prepares again."""
    from rates import config
    from rates.db.pools import ReadPool
    from tests.stack import dotenv_password

    settings = config.load({"DB_HOST": "127.0.0.1", "DB_PORT": str(stack.db_port), "DB_PASSWORD": dotenv_password(),
                            "DB_POOL_MIN_SIZE": "1", "DB_POOL_MAX_SIZE": "1", "RATES_ENV_FILE": "/dev/null"})
    db = ReadPool(settings)
    try:
        first = db.data_version()
        with db.pool.connection() as conn:
            conn.execute("DEALLOCATE ALL")
        assert db.data_version() == first
    finally:
        db.close()


def test_idle_keep_alive_connections_do_not_hold_back_new_clients(stack):
    """More idle keep-alive connections than the server has threads: a new client is still
    answered at once: an idle connection holds no application thread."""
    request = f"GET /rates?{DOCUMENTED_QUERY} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
    idle = []
    try:
        for _ in range(8):  # the stack has 2 workers x 2 threads
            conn = socket.create_connection(("127.0.0.1", stack.api_port), timeout=10)
            conn.sendall(request)
            assert conn.recv(65536).startswith(b"HTTP/1.1 200")
            idle.append(conn)  # left open and silent
        started = time.monotonic()
        assert requests.get(f"{stack.api_url}/rates?{DOCUMENTED_QUERY}", timeout=10).status_code == 200
        assert time.monotonic() - started < 5
    finally:
        for conn in idle:
            conn.close()
