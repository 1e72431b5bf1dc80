"""End a batch's transaction that outlives its timeout, even while it waits for the client.

``statement_timeout`` does not fire while a COPY waits for data from the client (PostgreSQL
only checks it once data arrives), so a client that stops sending mid-upload would keep the
transaction open, and with it the batch's Idempotency-Key: its retry would wait behind it. The
watchdog terminates that backend from another connection once the deadline has passed; the
transaction rolls back and releases the key. It only ever ends the transaction it watches:
the backend must still run the transaction that started at ``xact_start``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import psycopg

log = logging.getLogger("rates.batches")
Connect = Callable[[], AbstractContextManager[psycopg.Connection[Any]]]
GRACE_SECONDS = 1.0  # let statement_timeout act first when it can

TERMINATE = """
SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = %(pid)s AND xact_start = %(xact_start)s
"""


class Watchdog:
    def __init__(self, connect: Connect, pid: int, xact_start: datetime, timeout_ms: int) -> None:
        self.connect = connect
        self.params = {"pid": pid, "xact_start": xact_start}
        self.fired = False
        self._timer = threading.Timer(timeout_ms / 1000 + GRACE_SECONDS, self._fire) if timeout_ms else None

    def __enter__(self) -> Watchdog:
        if self._timer is not None:
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _fire(self) -> None:
        self.fired = True
        try:
            with self.connect() as conn:
                conn.execute(TERMINATE, self.params)
            log.warning("batch transaction of backend %s passed BATCH_STATEMENT_TIMEOUT_MS: terminated",
                        self.params["pid"])
        except Exception:  # noqa: BLE001 - a watchdog must not raise in its thread
            log.exception("could not terminate the batch transaction of backend %s", self.params["pid"])
