"""rates.db.pools' batch pools against a real PostgreSQL that goes away and comes back: once the
database answers again, the next batch gets a connection at once, however long the outage
lasted (a failover: 20 s).

The outage is a port on which nothing listens; the way back, a forwarder on that port to the
test stack's PostgreSQL.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from rates import config
from rates.db.pools import BatchPools
from tests.stack import dotenv_password

OUTAGE_SECONDS = 9  # psycopg_pool's delays between attempts: 1, 2, 4, 8 s...


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@contextmanager
def forwarder(port: int, to_port: int) -> Iterator[None]:
    """127.0.0.1:``port`` forwarded to 127.0.0.1:``to_port`` while the block runs."""
    listener = socket.create_server(("127.0.0.1", port), reuse_port=False)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", to_port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        listener.close()


def batch_once(pools: BatchPools) -> bool:
    with pools.batch() as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


def test_the_first_batch_after_an_outage_gets_a_connection(stack):
    port = free_port()
    settings = config.load({"DB_HOST": "127.0.0.1", "DB_PORT": str(port), "DB_PASSWORD": dotenv_password(),
                            "DB_POOL_TIMEOUT": "1", "DB_CONNECT_TIMEOUT": "2", "RATES_ENV_FILE": "/dev/null"})
    pools = BatchPools(settings)
    try:
        ended = time.monotonic() + OUTAGE_SECONDS
        failures = 0
        while time.monotonic() < ended:  # requests during the outage: each waits DB_POOL_TIMEOUT, fails
            with pytest.raises(psycopg.OperationalError):  # psycopg_pool's PoolTimeout
                batch_once(pools)
            failures += 1
        assert failures >= 3
        with forwarder(port, stack.db_port):
            started = time.monotonic()
            assert batch_once(pools)  # raised (no connection within DB_POOL_TIMEOUT) before the fix
            print(f"\n[batches] first batch after the outage had its connection in {time.monotonic() - started:.2f} s")
    finally:
        pools.close()
