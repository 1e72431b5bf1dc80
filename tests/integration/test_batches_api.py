"""POST /batches and GET /batches over HTTP against the stack: every status of the contract, what
each leaves in the database, the data version, the command line, and the token kept secret."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import uuid
from datetime import date, timedelta

import pytest
import requests

from tests.stack import ROOT, dotenv_ingest_token, run

FIELDS = {"batch_id", "key", "rows", "sha256", "received_at", "committed_at", "duration_ms"}
HEADER = "orig_code,dest_code,day,price\n"
_days = iter(range(1, 100_000))


@pytest.fixture(scope="module")
def token(stack) -> str:
    value = dotenv_ingest_token()
    assert len(value) >= 32, "make env writes a random INGEST_TOKEN into .env"
    return value


@pytest.fixture(scope="module")
def ports(stack) -> list[str]:
    with stack.connect() as conn:
        return [code for (code,) in conn.execute("SELECT code FROM ports ORDER BY code LIMIT 3")]


def new_key() -> str:
    return f"test-{uuid.uuid4().hex}"


def fresh_day() -> str:
    """A day no other test writes prices on (far after the dump's January 2021)."""
    return (date(2150, 1, 1) + timedelta(next(_days))).isoformat()


def post(stack, token: str | None, body: bytes | str, key: str | None = "auto", ctype: str | None = "text/csv",
         **headers: str) -> requests.Response:
    h = {k.replace("_", "-"): v for k, v in headers.items()}
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    if key is not None:
        h["Idempotency-Key"] = new_key() if key == "auto" else key
    if ctype is not None:
        h["Content-Type"] = ctype
    data = body.encode() if isinstance(body, str) else body
    return requests.post(stack.api_url + "/batches", data=data, headers=h, timeout=120)


def csv_rows(ports: list[str], day: str, prices: list[int]) -> str:
    return HEADER + "".join(f"{ports[0]},{ports[1]},{day},{p}\n" for p in prices)


def prices_on(stack, day: str) -> list[int]:
    with stack.connect() as conn:
        return sorted(p for (p,) in conn.execute("SELECT price FROM prices WHERE day = %s", (day,)))


def batch_with_key(stack, key: str) -> list[tuple]:
    with stack.connect() as conn:
        return conn.execute("SELECT batch_id, rows FROM batches WHERE key = %s", (key,)).fetchall()


def data_version(stack) -> int:
    with stack.connect() as conn:
        return conn.execute("SELECT version FROM data_version").fetchone()[0]


def test_csv_batch_is_committed_and_recorded(stack, token, ports):
    day = fresh_day()
    body = csv_rows(ports, day, [100, 200, 300])
    key = new_key()
    response = post(stack, token, body, key)
    assert response.status_code == 201, response.text
    record = response.json()
    assert set(record) == FIELDS
    assert record["key"] == key and record["rows"] == 3
    assert record["sha256"] == hashlib.sha256(body.encode()).hexdigest()
    assert record["received_at"] <= record["committed_at"] and record["duration_ms"] >= 0
    assert response.headers["Location"] == f"/batches/{record['batch_id']}"
    assert prices_on(stack, day) == [100, 200, 300]
    assert batch_with_key(stack, key) == [(record["batch_id"], 3)]
    assert stack.get(f"/batches/{record['batch_id']}", token=dotenv_ingest_token()).json() == record


def as_ndjson(ports: list[str], day: str, prices: list[int]) -> str:
    return "".join(json.dumps({"orig_code": ports[0], "dest_code": ports[1], "day": day, "price": p}) + "\n"
                   for p in prices)


def as_json(ports: list[str], day: str, prices: list[int]) -> str:
    return json.dumps([{"orig_code": ports[0], "dest_code": ports[1], "day": day, "price": p} for p in prices])


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize(
    ("ctype", "render"),
    [("text/csv", csv_rows), ("application/x-ndjson", as_ndjson), ("application/json", as_json)],
    ids=["csv", "ndjson", "json"],
)
def test_every_format_plain_or_gzipped(stack, token, ports, ctype, render, compressed):
    day = fresh_day()
    content = render(ports, day, [5, 6, 7, 8]).encode()
    extra = {"Content_Encoding": "gzip"} if compressed else {}
    response = post(stack, token, gzip.compress(content) if compressed else content, ctype=ctype, **extra)
    assert response.status_code == 201, response.text
    assert response.json()["sha256"] == hashlib.sha256(content).hexdigest()  # of the content, not the wire
    assert prices_on(stack, day) == [5, 6, 7, 8]


def test_same_key_same_content_replays_the_record_and_writes_nothing(stack, token, ports):
    day = fresh_day()
    body = csv_rows(ports, day, [1, 2])
    key = new_key()
    first = post(stack, token, body, key)
    assert first.status_code == 201
    version = data_version(stack)
    again = post(stack, token, body, key)
    assert again.status_code == 200 and again.json() == first.json()
    zipped = post(stack, token, gzip.compress(body.encode()), key, Content_Encoding="gzip")
    assert zipped.status_code == 200 and zipped.json() == first.json()  # same content, other wire form
    assert prices_on(stack, day) == [1, 2]
    assert data_version(stack) == version


def test_same_key_other_content_is_409_and_writes_nothing(stack, token, ports):
    day = fresh_day()
    key = new_key()
    assert post(stack, token, csv_rows(ports, day, [1]), key).status_code == 201
    other_day = fresh_day()
    response = post(stack, token, csv_rows(ports, other_day, [9]), key)
    assert response.status_code == 409
    assert key in response.json()["error"]
    assert prices_on(stack, other_day) == [] and prices_on(stack, day) == [1]


def test_invalid_rows_are_422_with_line_and_field_and_nothing_is_written(stack, token, ports):
    day = fresh_day()
    lines = [
        f"{ports[0]},{ports[1]},{day},10",  # 2 valid
        f"ZZ999,{ports[1]},{day},10",  # 3 unknown port
        f"{ports[0]},{ports[1]},{day[:4]}-13-01,10",  # 4 not a date
        f"{ports[0]},{ports[1]},{day},0",  # 5 not positive
        f"{ports[0]},{ports[1]},{day},2147483648",  # 6 out of the integer range
        f"{ports[0]},{ports[1]},{day}",  # 7 missing value
        f"{ports[0]},{ports[1]},{day},10,x",  # 8 extra value
        f"{ports[0]},{ports[1]},{day},11",  # 9 valid
    ]
    key = new_key()
    version = data_version(stack)
    response = post(stack, token, HEADER + "\n".join(lines) + "\n", key)
    assert response.status_code == 422
    body = response.json()
    assert body["total"] == 6 and "nothing was written" in body["error"]
    assert [(e["line"], e["field"]) for e in body["errors"]] == [
        (3, "orig_code"), (4, "day"), (5, "price"), (6, "price"), (7, None), (8, None)]
    assert "unknown port code 'ZZ999'" in body["errors"][0]["message"]
    assert prices_on(stack, day) == []
    assert batch_with_key(stack, key) == []
    assert data_version(stack) == version
    # A rejected batch does not use up its key.
    fixed = HEADER + lines[0] + "\n" + lines[-1] + "\n"
    assert post(stack, token, fixed, key).status_code == 201
    assert prices_on(stack, day) == [10, 11]


@pytest.mark.parametrize("kind", ["csv price of 5000 digits", "json nested 5000 deep"])
def test_oversized_numbers_and_deep_nesting_are_422_at_their_line(stack, token, ports, kind):
    day = fresh_day()
    row = {"orig_code": ports[0], "dest_code": ports[1], "day": day, "price": 5}
    if kind.startswith("csv"):
        body, ctype = csv_rows(ports, day, [5]) + f"{ports[0]},{ports[1]},{day},{'9' * 5000}\n", "text/csv"
        expected = {"line": 3, "field": "price", "message": f"must be at most 2147483647, got {'9' * 37}..."}
    else:
        body = "[" + json.dumps(row) + ",\n" + '{"price": ' + "[" * 5000 + "]" * 5000 + "}]"
        ctype = "application/json"
        expected = {"line": 2, "field": None, "message": "invalid JSON: nested too deeply"}
    response = post(stack, token, body, ctype=ctype)
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [expected]
    assert prices_on(stack, day) == []


def test_errors_are_capped_at_100_with_the_total(stack, token, ports):
    day = fresh_day()
    body = HEADER + "".join(f"{ports[0]},{ports[1]},{day},-{n}\n" for n in range(1, 251))
    response = post(stack, token, body)
    assert response.status_code == 422
    payload = response.json()
    assert payload["total"] == 250 and len(payload["errors"]) == 100
    assert payload["errors"][0]["line"] == 2 and payload["errors"][-1]["line"] == 101


def test_empty_batch_is_422(stack, token):
    response = post(stack, token, HEADER)
    assert response.status_code == 422 and response.json()["errors"][0]["message"] == "the batch has no rows"


def test_missing_token_is_401_with_a_challenge_and_a_wrong_one_403(stack, token, ports):
    day = fresh_day()
    body = csv_rows(ports, day, [1])
    missing = post(stack, None, body)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert "error" in missing.json()
    wrong = post(stack, token[:-1] + ("x" if token[-1] != "x" else "y"), body)
    assert wrong.status_code == 403
    assert post(stack, None, body, Authorization=f"Basic {token}").status_code == 401
    assert prices_on(stack, day) == []


def test_unsupported_type_or_encoding_is_415(stack, token, ports):
    body = csv_rows(ports, fresh_day(), [1])
    assert post(stack, token, body, ctype="text/plain").status_code == 415
    assert post(stack, token, body, ctype=None).status_code == 415
    assert post(stack, token, body, Content_Encoding="br").status_code == 415


def test_missing_idempotency_key_is_400(stack, token, ports):
    response = post(stack, token, csv_rows(ports, fresh_day(), [1]), key=None)
    assert response.status_code == 400 and "Idempotency-Key" in response.json()["error"]


def test_declared_length_over_the_limit_is_413_before_reading_the_body(stack, token):
    conn = http.client.HTTPConnection("127.0.0.1", stack.api_port, timeout=30)
    try:
        conn.putrequest("POST", "/batches")
        for name, value in [("Authorization", f"Bearer {token}"), ("Idempotency-Key", new_key()),
                            ("Content-Type", "text/csv"), ("Content-Length", str(10**12))]:
            conn.putheader(name, value)
        conn.endheaders()
        conn.send(HEADER.encode())  # a few bytes of the announced terabyte
        response = conn.getresponse()
        assert response.status == 413
        assert "BATCH_MAX_BYTES" in json.loads(response.read())["error"]
    finally:
        conn.close()


def test_list_is_newest_first_and_pages_with_after(stack, token, ports):
    ids = []
    for _ in range(3):
        response = post(stack, token, csv_rows(ports, fresh_day(), [1]))
        ids.append(response.json()["batch_id"])
    page = stack.get("/batches?limit=2", token=token).json()
    assert [b["batch_id"] for b in page["batches"]] == [ids[2], ids[1]]
    assert page["next_after"] == ids[1]
    following = stack.get(f"/batches?limit=2&after={page['next_after']}", token=token).json()
    assert following["batches"][0]["batch_id"] == ids[0]
    assert all(set(b) == FIELDS for b in page["batches"] + following["batches"])
    everything = stack.get("/batches?limit=1000", token=token).json()
    listed = [b["batch_id"] for b in everything["batches"]]
    assert listed == sorted(listed, reverse=True)


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=x", "after=-1", "after=1.5",
                                   "after=9223372036854775808"])
def test_bad_list_parameters_are_400(stack, token, query):
    response = stack.get(f"/batches?{query}", token=token)
    assert response.status_code == 400 and "error" in response.json()


def test_unknown_batch_is_404(stack, token):
    response = stack.get("/batches/999999999", token=token)
    assert response.status_code == 404 and "error" in response.json()


@pytest.mark.parametrize("path", ["/batches", "/batches/1"])
def test_batch_records_need_the_token(stack, token, path):
    """The records show idempotency keys, which often name customers or files."""
    missing = stack.get(path)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert stack.get(path, token="x" * 40).status_code == 403
    assert stack.get(path, token=token).status_code in (200, 404)


def test_data_version_is_bumped_once_per_committed_batch(stack, token, ports):
    before = data_version(stack)
    key = new_key()
    body = csv_rows(ports, fresh_day(), list(range(1, 20_001)))  # one COPY of 20,000 rows
    assert post(stack, token, body, key).status_code == 201
    after = data_version(stack)
    assert after == before + 1
    assert post(stack, token, body, key).status_code == 200  # a replay writes nothing
    assert post(stack, token, HEADER + "XXXXX,XXXXX,2021-01-01,1\n").status_code == 422
    assert data_version(stack) == after


def test_rejected_batches_leave_the_read_path_working(stack, token, ports):
    """Batches write through connections of their own: rolling one back (psycopg then runs
    DEALLOCATE ALL) must not drop what the read path prepared on its connections."""
    query = f"/rates?date_from=2021-01-01&date_to=2021-01-31&orig_code={ports[0]}&dest_code={ports[1]}"
    for _ in range(4):
        assert stack.get(query).status_code == 200  # the read path prepares on its connections
    for _ in range(8):
        assert post(stack, token, HEADER + "XXXXX,XXXXX,2021-01-01,1\n").status_code == 422
        assert post(stack, token, csv_rows(ports, fresh_day(), [1])).status_code == 201
    statuses = [stack.get(query).status_code for _ in range(20)]
    assert statuses == [200] * 20


def test_cli_ingest_runs_the_same_path_in_the_api_container(stack, ports, tmp_path):
    day = fresh_day()
    content = csv_rows(ports, day, [42, 43])
    path = tmp_path / "prices.csv.gz"
    path.write_bytes(gzip.compress(content.encode()))
    key = new_key()
    first = run(["make", "--no-print-directory", "ingest", f"FILE={path}", f"KEY={key}"], env=stack.env)
    record = json.loads(first.stdout[first.stdout.index("{"):])
    assert record["status"] == 201 and record["rows"] == 2
    assert record["sha256"] == hashlib.sha256(content.encode()).hexdigest()
    again = run(["make", "--no-print-directory", "ingest", f"FILE={path}", f"KEY={key}"], env=stack.env)
    assert json.loads(again.stdout[again.stdout.index("{"):])["status"] == 200
    assert prices_on(stack, day) == [42, 43]
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + f"{ports[0]},{ports[1]},{day},0\n")
    failed = run(["make", "--no-print-directory", "ingest", f"FILE={bad}", f"KEY={new_key()}"],
                 env=stack.env, check=False)
    assert failed.returncode != 0
    assert '"status": 422' in failed.stderr and "must be a positive integer" in failed.stderr
    assert prices_on(stack, day) == [42, 43]


def test_the_token_is_in_no_log_and_no_container_environment(stack, token):
    logs = run(["docker", "compose", "logs", "--no-color", "api"], env=stack.env).stdout
    assert "POST /batches" in logs or "/batches" in logs, "the requests above are logged"
    assert token not in logs
    assert not any(token in e for e in stack.inspect("api")["Config"]["Env"])
    assert token not in (ROOT / ".env.example").read_text()
