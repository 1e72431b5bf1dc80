"""Requests held in flight by a table lock, to test what a server does with them on SIGTERM."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import date, timedelta

import psycopg
import requests


@contextmanager
def requests_in_flight(conninfo: str, base_url: str, count: int = 4, min_waiting: int | None = None):
    """Start ``count`` GET /rates that block on a lock of prices; yield, then release the lock.

    Yields once ``min_waiting`` of them (default: all) are waiting on the lock inside the
    database; the others are then sent too, and queued in the server.

    Each request asks for a range never asked before, so no cache can answer it and it must
    read prices. Yields a list that receives, once the lock is released, each request's
    (status code, body or exception). The lock is held at most a few seconds (well under the
    service's statement timeout).
    """
    results: list[object] = []
    locker = psycopg.connect(conninfo)
    locker.execute("SET lock_timeout = '30s'")  # a session left holding prices fails the test, not the run
    locker.execute("LOCK TABLE prices IN ACCESS EXCLUSIVE MODE")
    first = date(2000, 1, 1) + timedelta(days=random.randint(0, 5000))

    def call(i: int) -> None:
        day = first + timedelta(days=i)
        url = f"{base_url}/rates?date_from={day}&date_to={day + timedelta(days=2)}&orig_code=CNGGZ&dest_code=EETLL"
        try:
            response = requests.get(url, timeout=60)
            results.append((response.status_code, response.json()))
        except Exception as exc:  # noqa: BLE001 - recorded for the assertion
            results.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    try:
        needed = count if min_waiting is None else min_waiting
        wait_until(lambda: waiting_on_lock(conninfo) >= needed, within=15, what=f"{needed} requests waiting")
        time.sleep(0.3)  # the rest are sent and accepted by now
        yield results
    finally:
        time.sleep(1.0)  # the server has had the signal for a while: requests still pending
        locker.rollback()
        locker.close()
        for thread in threads:
            thread.join(timeout=60)


def waiting_on_lock(conninfo: str) -> int:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%generate_series%'"
        ).fetchone()[0]


def wait_until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for: {what}")
        time.sleep(0.2)
