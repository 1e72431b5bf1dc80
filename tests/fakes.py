"""Stand-ins for the database in unit tests where the database is not the subject."""

from __future__ import annotations

from typing import Any

from rates.errors import DatabaseUnavailable


class FakeReads:
    """The interface of rates.db.pools.ReadPool over in-memory answers, counting the calls.

    ``version`` is the current data version; ``rows`` the answer of every query (each row
    starting with the version it was computed at, as the real query's rows do); ``down`` makes
    every call fail as an unreachable database does.
    """

    def __init__(self, rows: list[tuple] | None = None, version: int = 1) -> None:
        self.version = version
        self.rows = rows if rows is not None else [(version, "2021-01-31", 3, 1154.5)]
        self.down = False
        self.queries: list[tuple[str, Any]] = []
        self.version_reads = 0

    def _check(self) -> None:
        if self.down:
            raise DatabaseUnavailable("no database connection available")

    def fetch_all(self, query: str, params: Any) -> list[tuple]:
        self._check()
        self.queries.append((query, params))
        return [(self.version, *row[1:]) for row in self.rows]

    def data_version(self) -> int:
        self._check()
        self.version_reads += 1
        return self.version

    def ping(self, timeout: float) -> None:
        if self.down:
            raise DatabaseUnavailable("database not reachable")

    def stats(self) -> dict[str, int]:
        return {"pool_size": 1, "pool_available": 1, "requests_waiting": 0}

    def close(self) -> None:
        pass
