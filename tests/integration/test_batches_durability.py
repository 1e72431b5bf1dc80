"""A batch is acknowledged only once it is durable. A commit whose wait for the synchronous
standbys is cancelled or cut short is reported by PostgreSQL as committed locally (a WARNING, or
the session ending): such a batch may exist on the primary alone, and a failover could lose it,
so the API answers 503, not 201. The retry with the same key waits for the standbys in turn
before it answers 200. The test stack's single server is given a standby that never connects,
so every commit waits for it (the HA stack does the same with its replicas stopped)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import psycopg
import pytest
import requests

from tests.stack import dotenv_ingest_token

ROWS = 50


@contextmanager
def a_standby_that_never_answers(stack) -> Iterator[psycopg.Connection]:
    with stack.connect(autocommit=True) as admin:
        admin.execute("ALTER SYSTEM SET synchronous_standby_names = 'nobody'")
        admin.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 10  # every backend reads the new value at its next command
        while admin.execute("SHOW synchronous_standby_names").fetchone()[0] != "nobody":
            assert time.monotonic() < deadline, "the server did not take the standby setting"
            time.sleep(0.05)
        time.sleep(0.5)
        try:
            yield admin
        finally:
            admin.execute("ALTER SYSTEM RESET synchronous_standby_names")
            admin.execute("SELECT pg_reload_conf()")


def waiting_for_the_standby(admin: psycopg.Connection, within: float = 30) -> int:
    """The backend of the API whose COMMIT waits for the standby."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        row = admin.execute("SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep' "
                            "AND application_name = 'rates'").fetchone()
        if row:
            return row[0]
        time.sleep(0.05)
    raise AssertionError("no commit of the API waits for the standby")


def post(stack, key: str, day: str) -> requests.Response:
    body = "orig_code,dest_code,day,price\n" + "".join(f"CNGGZ,EETLL,{day},{100 + i}\n" for i in range(ROWS))
    headers = {"Authorization": f"Bearer {dotenv_ingest_token()}", "Idempotency-Key": key,
               "Content-Type": "text/csv"}
    return requests.post(stack.api_url + "/batches", data=body, headers=headers, timeout=60)


def present(stack, key: str, day: str) -> tuple[int, int]:
    with stack.connect() as conn:
        return (conn.execute("SELECT count(*) FROM batches WHERE key = %s", (key,)).fetchone()[0],
                conn.execute("SELECT count(*) FROM prices WHERE day = %s", (day,)).fetchone()[0])


@pytest.mark.parametrize("end_the_wait", ["pg_cancel_backend", "pg_terminate_backend"])
def test_a_commit_the_standbys_did_not_confirm_is_not_acknowledged(stack, end_the_wait):
    key, day = f"durable-{uuid.uuid4().hex[:8]}", f"2198-0{1 + len(end_the_wait) % 9}-01"
    with a_standby_that_never_answers(stack) as admin, ThreadPoolExecutor(1) as pool:
        answer = pool.submit(post, stack, key, day)
        admin.execute(f"SELECT {end_the_wait}(%s)", (waiting_for_the_standby(admin),))
        first = answer.result(timeout=60)
        assert first.status_code == 503, first.text
        assert "retry with the same Idempotency-Key" in first.json()["error"]
        assert present(stack, key, day) == (1, ROWS)  # committed on this server: not confirmed elsewhere

        # The retry confirms before it answers: while the standby is missing, it waits too.
        retry = pool.submit(post, stack, key, day)
        admin.execute("SELECT pg_cancel_backend(%s)", (waiting_for_the_standby(admin),))
        assert retry.result(timeout=60).status_code == 503
    # The standby "answered" (none is required any more): the retry is acknowledged, once.
    again = post(stack, key, day)
    assert again.status_code == 200, again.text
    assert again.json()["rows"] == ROWS
    assert present(stack, key, day) == (1, ROWS)
