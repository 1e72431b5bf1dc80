"""Connection pools, one set per worker process, opened lazily after the server forked.

Reads: a pool of autocommit connections (a read is one statement: no BEGIN, no ROLLBACK) with
the data-version query prepared on each. A request that cannot get a connection within
``DB_POOL_TIMEOUT`` seconds gets a 503; a connection broken by a database restart is replaced
and the read retried once, so the service recovers by itself. The service starts while the
database is down: pools connect in the background; once it is back, the next batch gets a
connection at once (``_reconnect_window``).

Batches: a pool of their own. A batch holds its connection for the whole upload, which must not
take connections from reads, and psycopg answers the rollback of a failed batch with
``DEALLOCATE ALL``, which would also drop the statements reads prepare. A one-connection pool
serves the batch watchdogs (rates.batches.watchdog), so they can act when every batch
connection is held.

Each pool connects as the role of its job (DB_READ_USER, DB_INGEST_USER; migration 0005), by
default DB_USER.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import pq
from psycopg_pool import ConnectionPool, PoolTimeout

from rates.config import Settings
from rates.errors import DatabaseUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

# Prepared once per read connection; run through libpq directly on the hot path (data_version).
DATA_VERSION_STATEMENT = b"rates_data_version"
DATA_VERSION_SQL = b"SELECT version FROM data_version"
SQLSTATE = pq.DiagnosticField.SQLSTATE


class LazyPool:
    """A psycopg pool built on first use (after the server forked its workers), shared by threads."""

    def __init__(self, build: Callable[[], ConnectionPool]) -> None:
        self._build = build
        self.current: ConnectionPool | None = None
        self._lock = threading.Lock()

    def get(self) -> ConnectionPool:
        if self.current is None:
            with self._lock:
                if self.current is None:
                    pool = self._build()
                    pool.open(wait=False)  # connects in the background: start-up never waits
                    self.current = pool
        return self.current

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None


def _reconnect_window(settings: Settings) -> float:
    """How long a batch pool keeps retrying one failed connection attempt: as long as a batch
    waits for a connection (DB_POOL_TIMEOUT). psycopg_pool lets one attempt at a time grow a pool and
    doubles its delay after each failure, with no ceiling: after a 20 s outage (a failover) the
    attempt could sleep 16 s more, while every batch timed out. Given up sooner, the next batch
    starts a fresh attempt, at once."""
    return settings.DB_POOL_TIMEOUT


def _autocommit(conn: psycopg.Connection) -> None:
    conn.autocommit = True  # writers open their transactions explicitly


class ReadPool:
    """Reads that fail fast: a connection within DB_POOL_TIMEOUT, one retry on a broken one."""

    def __init__(self, settings: Settings) -> None:
        self._statement_timeout = f"{settings.DB_STATEMENT_TIMEOUT_MS}ms"
        self._lazy = LazyPool(lambda: ConnectionPool(
            settings.conninfo(pool="read"), min_size=settings.DB_POOL_MIN_SIZE, max_size=settings.DB_POOL_MAX_SIZE,
            timeout=settings.DB_POOL_TIMEOUT,
            reconnect_timeout=24 * 3600,  # keep retrying in the background for as long as the process lives
            configure=self._configure, name="rates", open=False,
        ))

    def _configure(self, conn: psycopg.Connection) -> None:
        _autocommit(conn)
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (self._statement_timeout,))
        result = conn.pgconn.prepare(DATA_VERSION_STATEMENT, DATA_VERSION_SQL)
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise psycopg.OperationalError(f"cannot prepare the data version query: {result.error_message!r}")

    @property
    def pool(self) -> ConnectionPool:
        return self._lazy.get()

    def _retrying(self, work: Callable[[psycopg.Connection], T], timeout: float | None = None) -> T:
        """``work(conn)`` on a pooled connection (waited for up to ``timeout`` s, else
        DB_POOL_TIMEOUT); on a broken connection, once more on another."""
        for attempt in (1, 2):
            try:
                conn = self.pool.getconn(timeout)
            except PoolTimeout as exc:
                raise DatabaseUnavailable("no database connection available") from exc
            try:
                return work(conn)
            except psycopg.OperationalError as exc:
                if attempt == 2 or not conn.broken:
                    reason = "query timed out" if isinstance(exc, psycopg.errors.QueryCanceled) else (
                        exc.sqlstate or "connection lost")
                    raise DatabaseUnavailable(f"database error: {reason}") from exc
                log.warning("database connection lost, retrying once: %s", exc)
            finally:
                self.pool.putconn(conn)  # a broken connection is discarded by the pool
            # Here only to retry: the idle siblings of the broken connection are likely broken
            # too (a restart, a failover), so test them all now and the retry gets a live one.
            self.pool.check()
        raise AssertionError("unreachable")  # pragma: no cover

    def fetch_all(self, query: str, params: dict[str, Any] | Sequence[Any]) -> list[tuple[Any, ...]]:
        """The rows of a read-only query (a prepared statement on the connection)."""
        return self._retrying(lambda conn: conn.execute(query, params, prepare=True).fetchall())

    def data_version(self) -> int:
        """The current data version (migration 0002). It runs on every cached answer, so it
        talks to libpq directly: a fraction of the Python work of a cursor."""
        return self._retrying(_read_data_version)

    def ping(self, timeout: float) -> None:
        """Raise DatabaseUnavailable unless the database answers through the pool (a connection
        within ``timeout`` s; one that broke while idle is replaced, as for any read)."""
        self._retrying(lambda conn: conn.execute("SELECT 1"), timeout)

    def stats(self) -> dict[str, int]:
        """The pool's counters (size, available, waiting), or nothing before it is opened."""
        pool = self._lazy.current
        return pool.get_stats() if pool is not None else {}

    def close(self) -> None:
        self._lazy.close()


def _read_data_version(conn: psycopg.Connection) -> int:
    result = conn.pgconn.exec_prepared(DATA_VERSION_STATEMENT, [])
    if result.error_field(SQLSTATE) == b"26000":
        # The statement is gone (a DEALLOCATE ALL after a rolled-back transaction on this
        # connection, say): prepare it again and retry on the same connection.
        conn.pgconn.prepare(DATA_VERSION_STATEMENT, DATA_VERSION_SQL)
        result = conn.pgconn.exec_prepared(DATA_VERSION_STATEMENT, [])
    if result.status == pq.ExecStatus.TUPLES_OK:
        return int(result.get_value(0, 0))
    if conn.broken:
        raise psycopg.OperationalError("connection lost")
    sqlstate = (result.error_field(SQLSTATE) or b"").decode()
    log.warning("data version read failed: %s", (result.error_message or b"").decode(errors="replace").strip())
    raise DatabaseUnavailable(f"database error: {sqlstate or 'unknown'}")  # the server's text stays in the log


class BatchPools:
    """Connections for batches (BATCH_DB_CONNECTIONS per worker) and one for their watchdogs."""

    def __init__(self, settings: Settings) -> None:
        def pool(name: str, size: int) -> Callable[[], ConnectionPool]:
            # check: each connection is tried before it is lent (one round trip per batch), so a
            # connection that broke while idle (a database or proxy restart) is replaced.
            return lambda: ConnectionPool(settings.conninfo(pool="ingest"), min_size=0, max_size=size,
                                          timeout=settings.DB_POOL_TIMEOUT,
                                          reconnect_timeout=_reconnect_window(settings), configure=_autocommit,
                                          check=ConnectionPool.check_connection, name=name, open=False)

        self._batches = LazyPool(pool("rates-batches", settings.BATCH_DB_CONNECTIONS))
        self._watchdog = LazyPool(pool("rates-watchdog", 1))

    @contextmanager
    def batch(self) -> Iterator[psycopg.Connection]:
        with self._batches.get().connection() as conn:
            yield conn

    @contextmanager
    def watchdog(self) -> Iterator[psycopg.Connection]:
        with self._watchdog.get().connection() as conn:
            yield conn

    def close(self) -> None:
        self._batches.close()
        self._watchdog.close()
