"""A 1,000,000-row batch is streamed, never held: the serving worker's memory barely moves.

The body is generated while it is sent (chunked), so the test holds none of it either. Every
worker process of the API container is sampled through the host's /proc while the upload runs;
the one that served it is the one whose RSS moved most. The bound (100 MB) is generous on
purpose: the body alone is 28 MB as CSV, and a design that buffered it, or the rows, would pass
several hundred MB.
"""

from __future__ import annotations

import threading
import time
import uuid

import requests

from tests.stack import dotenv_ingest_token, rss_kb, server_workers

ROWS = 1_000_000
LIMIT_MB = 100


def test_million_row_batch_streams_with_bounded_worker_memory(stack, record_property):
    with stack.connect() as conn:
        codes = [code for (code,) in conn.execute("SELECT code FROM ports ORDER BY code LIMIT 40")]
    workers = server_workers(stack)
    assert workers, "no worker process found in the api container"
    baseline = {pid: rss_kb(pid) for pid in workers}
    peak = dict(baseline)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid in workers:
                peak[pid] = max(peak[pid], rss_kb(pid))
            time.sleep(0.02)

    def body():
        yield b"orig_code,dest_code,day,price\n"
        for start in range(0, ROWS, 25_000):
            yield "".join(
                f"{codes[n % 40]},{codes[(n // 40) % 40]},2180-{n % 12 + 1:02d}-{n % 28 + 1:02d},{n % 9000 + 1}\n"
                for n in range(start, start + 25_000)
            ).encode()

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.monotonic()
    try:
        response = requests.post(
            stack.api_url + "/batches", data=body(), timeout=600,
            headers={"Authorization": f"Bearer {dotenv_ingest_token()}", "Idempotency-Key": uuid.uuid4().hex,
                     "Content-Type": "text/csv"},
        )
    finally:
        done.set()
        sampler.join()
    elapsed = time.monotonic() - started
    assert response.status_code == 201, response.text
    assert response.json()["rows"] == ROWS
    growth_mb = {pid: (peak[pid] - baseline[pid]) / 1024 for pid in workers}
    served_by = max(growth_mb, key=growth_mb.get)
    record_property("rss_growth_mb", round(growth_mb[served_by], 1))
    print(f"{ROWS} rows in {elapsed:.1f}s; worker RSS growth (MB): "
          + ", ".join(f"{pid}: {mb:.1f}" for pid, mb in growth_mb.items()))
    assert all(mb < LIMIT_MB for mb in growth_mb.values()), growth_mb
    with stack.connect() as conn:
        assert conn.execute("SELECT count(*) FROM prices WHERE day BETWEEN '2180-01-01' AND '2180-12-31'"
                            ).fetchone()[0] == ROWS
