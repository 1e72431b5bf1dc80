"""Database connections for batches: a small pool of their own, apart from the read path's.

Why not the read pool: a batch that fails rolls its transaction back, and psycopg answers a
rollback on a connection that has prepared statements with ``DEALLOCATE ALL``, which also drops
the statements the read path prepares on its connections (seen as a 503 "prepared statement
does not exist" on a later read). A batch also holds its connection for the whole upload, which
must not take connections from reads. This pool opens nothing until the first batch (min_size
0), lazily after the server forked its workers, and keeps at most BATCH_DB_CONNECTIONS.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from rates.config import Settings
from rates.db import LazyPool


def _autocommit(conn: psycopg.Connection[Any]) -> None:
    conn.autocommit = True  # every batch opens its own transaction explicitly


class BatchPool:
    def __init__(self, settings: Settings) -> None:
        self._lazy = LazyPool(lambda: ConnectionPool(
            settings.conninfo(),
            min_size=0,
            max_size=settings.BATCH_DB_CONNECTIONS,
            timeout=settings.DB_POOL_TIMEOUT,
            configure=_autocommit,
            name="rates-batches",
            open=False,
        ))

    def connection(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        return self._lazy.get().connection()

    def close(self) -> None:
        self._lazy.close()
