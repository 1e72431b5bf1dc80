"""Database access: one connection pool per worker process, opened lazily.

The pool is created on first use (after gunicorn forks), so the service starts while the
database is down. A request that cannot get a connection within ``DB_POOL_TIMEOUT`` seconds
raises ``DatabaseUnavailable``; connections broken by a database restart are discarded and the
read is retried once on a fresh connection, so the service recovers without a restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import pq
from psycopg_pool import ConnectionPool, PoolTimeout

from rates.config import Settings

log = logging.getLogger(__name__)

# Prepared once per connection; read through libpq directly on the hot path (see data_version).
DATA_VERSION_STATEMENT = b"rates_data_version"
DATA_VERSION_SQL = b"SELECT version FROM data_version"


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached right now (HTTP 503)."""


def describe(exc: psycopg.Error) -> str:
    """A short, safe description of a database error for a 503 body."""
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return "query timed out"
    return exc.sqlstate or "connection lost"


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


class Database:
    """A lazily opened psycopg connection pool with fail-fast reads."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lazy = LazyPool(self._build_pool)

    def _configure(self, conn: psycopg.Connection) -> None:
        # Autocommit: a read is one statement, so no BEGIN before it and no ROLLBACK when the
        # pool takes the connection back (two round trips saved per request). Writers open
        # explicit transactions with `conn.transaction()`.
        conn.autocommit = True
        timeout = self._settings.DB_STATEMENT_TIMEOUT_MS
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{timeout}ms",))
        result = conn.pgconn.prepare(DATA_VERSION_STATEMENT, DATA_VERSION_SQL)
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise psycopg.OperationalError(f"cannot prepare the data version query: {result.error_message!r}")

    def _build_pool(self) -> ConnectionPool:
        s = self._settings
        return ConnectionPool(
            s.conninfo(),
            min_size=s.DB_POOL_MIN_SIZE,
            max_size=s.DB_POOL_MAX_SIZE,
            timeout=s.DB_POOL_TIMEOUT,
            # Keep retrying in the background for as long as the process lives.
            reconnect_timeout=24 * 3600,
            configure=self._configure,
            name="rates",
            open=False,
        )

    @property
    def pool(self) -> ConnectionPool:
        return self._lazy.get()

    def fetch_all(self, query: str, params: dict[str, Any] | Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run a read-only query and return its rows.

        A connection broken by a database restart is retried once on a fresh one; any other
        database error (a statement timeout, say) is not retried: both become 503s.
        """
        for attempt in (1, 2):
            try:
                with self.pool.connection() as conn:
                    try:
                        return conn.execute(query, params, prepare=True).fetchall()
                    except psycopg.OperationalError as exc:
                        if attempt == 2 or not conn.broken:
                            raise DatabaseUnavailable(f"database error: {describe(exc)}") from exc
                        log.warning("database connection lost, retrying once: %s", exc)
            except PoolTimeout as exc:
                raise DatabaseUnavailable("no database connection available") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def data_version(self) -> int:
        """The current data version (migration 0002): one prepared single-row read.

        It runs on every cached answer, so it talks to libpq directly: a fraction of the
        Python work of a cursor. Retries once on a broken connection, like fetch_all.
        """
        for attempt in (1, 2):
            try:
                conn = self.pool.getconn()
            except PoolTimeout as exc:
                raise DatabaseUnavailable("no database connection available") from exc
            try:
                result = conn.pgconn.exec_prepared(DATA_VERSION_STATEMENT, [])
                if result.error_field(pq.DiagnosticField.SQLSTATE) == b"26000":
                    # The statement is gone (a DEALLOCATE ALL after a rolled-back transaction on
                    # this connection, say): prepare it again and retry on the same connection.
                    conn.pgconn.prepare(DATA_VERSION_STATEMENT, DATA_VERSION_SQL)
                    result = conn.pgconn.exec_prepared(DATA_VERSION_STATEMENT, [])
                if result.status == pq.ExecStatus.TUPLES_OK:
                    return int(result.get_value(0, 0))
                error = (result.error_message or b"").decode(errors="replace").strip()
            finally:
                self.pool.putconn(conn)  # a broken connection is discarded by the pool
            if attempt == 2 or conn.pgconn.status == pq.ConnStatus.OK:
                raise DatabaseUnavailable(f"database error: {error or 'connection lost'}")
            log.warning("database connection lost, retrying once: %s", error)
        raise AssertionError("unreachable")  # pragma: no cover

    def ping(self, timeout: float) -> None:
        """Raise DatabaseUnavailable unless a pooled connection answers within ``timeout`` s."""
        try:
            with self.pool.connection(timeout=timeout) as conn:
                conn.execute("SELECT 1")
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise DatabaseUnavailable("database not reachable") from exc

    def stats(self) -> dict[str, int]:
        """The pool's counters (size, available, waiting), or zeros before it is opened."""
        pool = self._lazy.current
        return pool.get_stats() if pool is not None else {}

    def close(self) -> None:
        self._lazy.close()
