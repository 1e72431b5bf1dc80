"""rates.db.pools.ReadPool: a read on a broken connection is retried once, on another one;
every other failure is a 503 at once, and every connection goes back to the pool."""

from __future__ import annotations

import psycopg
import pytest
from psycopg_pool import PoolTimeout

from rates.config import load
from rates.db.pools import ReadPool
from rates.errors import DatabaseUnavailable


class FakeConn:
    def __init__(self, failure: Exception | None, broken: bool) -> None:
        self.failure, self.broken = failure, broken


class FakePool:
    """Hands out the given connections in order; records what comes back."""

    def __init__(self, *conns: FakeConn | Exception) -> None:
        self.conns = list(conns)
        self.returned: list[FakeConn] = []
        self.checks = 0

    def getconn(self, timeout: float | None = None) -> FakeConn:
        conn = self.conns.pop(0)
        if isinstance(conn, Exception):
            raise conn
        return conn

    def putconn(self, conn: FakeConn) -> None:
        self.returned.append(conn)

    def check(self) -> None:
        """The real pool tests its idle connections here; these have none."""
        self.checks += 1


def reads_over(pool: FakePool) -> ReadPool:
    reads = ReadPool(load({"RATES_ENV_FILE": "/dev/null", "RATES_SECRETS_DIR": "/nonexistent"}))
    reads._lazy.current = pool  # type: ignore[assignment]
    return reads


def run(conn: FakeConn) -> str:
    if conn.failure:
        raise conn.failure
    return "rows"


def test_a_broken_connection_is_retried_once_on_another():
    lost = FakeConn(psycopg.OperationalError("server closed the connection"), broken=True)
    good = FakeConn(None, broken=False)
    pool = FakePool(lost, good)
    assert reads_over(pool)._retrying(run) == "rows"
    assert pool.returned == [lost, good]
    assert pool.checks == 1  # the idle connections were tested before the retry


def test_two_broken_connections_in_a_row_are_a_503():
    pool = FakePool(*(FakeConn(psycopg.OperationalError("gone"), broken=True) for _ in range(2)))
    with pytest.raises(DatabaseUnavailable, match="connection lost"):
        reads_over(pool)._retrying(run)
    assert len(pool.returned) == 2


def test_a_timeout_on_a_healthy_connection_is_not_retried():
    slow = FakeConn(psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), broken=False)
    pool = FakePool(slow, FakeConn(None, broken=False))
    with pytest.raises(DatabaseUnavailable, match="query timed out"):
        reads_over(pool)._retrying(run)
    assert pool.returned == [slow]


def test_no_connection_within_the_pool_timeout_is_a_503():
    with pytest.raises(DatabaseUnavailable, match="no database connection available"):
        reads_over(FakePool(PoolTimeout("couldn't get a connection")))._retrying(run)


def test_other_errors_are_not_turned_into_503s():
    bug = FakeConn(ZeroDivisionError(), broken=False)
    pool = FakePool(bug)
    with pytest.raises(ZeroDivisionError):
        reads_over(pool)._retrying(run)
    assert pool.returned == [bug]


def test_a_database_error_reaches_the_client_as_its_sqlstate_only():
    """The server's own text (here: a missing table's name) goes to the log, never in the 503."""
    from psycopg import pq

    from rates.db.pools import _read_data_version

    class Result:
        status = pq.ExecStatus.FATAL_ERROR
        error_message = b'ERROR:  relation "data_version" does not exist'

        def error_field(self, field):
            return b"42P01" if field == pq.DiagnosticField.SQLSTATE else None

    class Conn:
        broken = False

        class pgconn:  # noqa: N801 - stands for the attribute of a psycopg connection
            exec_prepared = staticmethod(lambda name, params: Result())

    with pytest.raises(DatabaseUnavailable) as caught:
        _read_data_version(Conn())  # type: ignore[arg-type]
    assert str(caught.value) == "service unavailable: database error: 42P01"
