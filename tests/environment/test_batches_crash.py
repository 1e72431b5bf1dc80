"""Crash safety of batch ingestion: kill the server's workers (SIGKILL) or the whole API container
while a large upload streams into COPY; nothing of the batch remains, and retrying with the
same Idempotency-Key then commits it exactly once.

The upload is paused halfway (its generator waits) once PostgreSQL shows the batch's COPY
running, so the kill lands mid-batch every time rather than by luck of timing.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.stack import (
    dotenv_ingest_token,
    dotenv_password,
    kill_server_workers,
    run,
    server_workers,
    wait_for_batch_copy,
)

ROWS = 300_000


def batch(codes: list[str], day: str, halfway: threading.Event | None = None,
          resume: threading.Event | None = None):
    """The same CSV content every time; optionally pausing after half of it."""
    yield b"orig_code,dest_code,day,price\n"
    for start in range(0, ROWS, 25_000):
        if start == ROWS // 2 and halfway is not None and resume is not None:
            halfway.set()
            resume.wait(60)
        yield "".join(f"{codes[n % 10]},{codes[n % 7]},{day},{n % 5000 + 1}\n"
                      for n in range(start, start + 25_000)).encode()


def post(stack, data, key: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {dotenv_ingest_token()}", "Idempotency-Key": key,
               "Content-Type": "text/csv"}
    return requests.post(stack.api_url + "/batches", data=data, headers=headers, timeout=300)


def wait_gone(stack, pid: int, within: float = 60) -> None:
    deadline = time.monotonic() + within
    with stack.connect(autocommit=True) as conn:
        while time.monotonic() < deadline:
            if not conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
                return
            time.sleep(0.1)
    raise AssertionError(f"backend {pid} of the interrupted batch is still there after {within}s")


def state(stack, day: str, key: str) -> tuple[int, list[tuple]]:
    with stack.connect() as conn:
        prices = conn.execute("SELECT count(*) FROM prices WHERE day = %s", (day,)).fetchone()[0]
        batches = conn.execute("SELECT batch_id, rows FROM batches WHERE key = %s", (key,)).fetchall()
    return prices, batches


def interrupted_upload(stack, day: str, key: str, kill) -> list[str]:
    """Start the upload, kill mid-COPY with ``kill()``, and check that nothing is left."""
    with stack.connect() as conn:
        codes = [code for (code,) in conn.execute("SELECT code FROM ports ORDER BY code LIMIT 10")]
    halfway, resume = threading.Event(), threading.Event()
    with ThreadPoolExecutor(1) as pool:
        upload = pool.submit(post, stack, batch(codes, day, halfway, resume), key)
        assert halfway.wait(60), "the upload did not get halfway"
        backend = wait_for_batch_copy(stack)
        try:
            kill()
        finally:
            resume.set()
        try:
            response = upload.result(timeout=120)
            assert response.status_code != 201, "the interrupted upload must not commit"
        except requests.RequestException:
            pass  # the connection died with the server: the expected outcome
    wait_gone(stack, backend)
    assert state(stack, day, key) == (0, []), "an interrupted batch left rows or a record behind"
    return codes


def retry_commits_once(stack, codes: list[str], day: str, key: str) -> None:
    stack.wait_for("/healthz", 200, within=90)
    first = post(stack, batch(codes, day), key)
    assert first.status_code == 201, first.text
    again = post(stack, batch(codes, day), key)
    assert again.status_code == 200 and again.json() == first.json()
    assert state(stack, day, key) == (ROWS, [(first.json()["batch_id"], ROWS)])


def test_sigkill_of_the_workers_mid_upload(stack):
    day, key = "2195-01-01", f"crash-worker-{uuid.uuid4().hex}"
    before = server_workers(stack)
    killed: list[int] = []
    codes = interrupted_upload(stack, day, key, lambda: killed.extend(kill_server_workers(stack)))
    assert killed == before
    retry_commits_once(stack, codes, day, key)
    assert not set(server_workers(stack)) & set(killed), "the server replaced its killed workers"


def test_kill_of_the_api_container_mid_upload(stack):
    day, key = "2196-01-01", f"crash-container-{uuid.uuid4().hex}"
    container = stack.container_id("api")
    codes = interrupted_upload(stack, day, key, lambda: run(["docker", "kill", container]))
    assert not stack.inspect("api")["State"]["Running"]
    stack.compose("start", "api")
    retry_commits_once(stack, codes, day, key)


def test_a_client_cut_off_mid_copy_frees_its_backend(stack):
    """A client whose network vanishes mid-COPY (no FIN, no RST: the link is gone) would keep its
    backend, and the locks of its batch, for the kernel's 2 hours of TCP keepalive. The server's
    keepalives (compose.yaml: 10 s idle, then 3 probes 5 s apart) end it within about 25 s.
    (Data left unacknowledged by a vanished client is bounded by ``tcp_user_timeout``, 25 s too.)"""
    db = stack.inspect("db")
    network = next(iter(db["NetworkSettings"]["Networks"]))
    tag = uuid.uuid4().hex[:12]
    client = run(["docker", "run", "-d", "--rm", "--network", network, "--user", "999:999",
                  "-e", f"PGPASSWORD={dotenv_password()}", "-e", f"PGAPPNAME=cut-{tag}", db["Config"]["Image"],
                  "sh", "-c", "sleep 600 | psql -h db -U postgres -d rates -c 'COPY prices FROM STDIN'"]).stdout.strip()
    try:
        with stack.connect(autocommit=True) as conn:
            def backend() -> int | None:
                row = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s "
                                   "AND query LIKE 'COPY prices%%'", (f"cut-{tag}",)).fetchone()
                return row[0] if row else None

            deadline = time.monotonic() + 30
            while (pid := backend()) is None:
                assert time.monotonic() < deadline, "the client's COPY did not start"
                time.sleep(0.2)
            time.sleep(1)  # the server's answer to COPY is acknowledged: the link is idle
            run(["docker", "network", "disconnect", network, client])
            cut = time.monotonic()
            while backend() == pid:
                assert time.monotonic() - cut < 60, "the backend of a vanished client is still there after 60 s"
                time.sleep(0.5)
            assert time.monotonic() - cut > 5, "the backend ended at once: the link was not cut silently"
    finally:
        run(["docker", "rm", "-f", client], check=False)
