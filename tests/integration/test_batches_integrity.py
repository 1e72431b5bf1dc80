"""prices -> ports integrity without per-row foreign keys (migration 0003), for every writer.

Each race is played with real concurrent transactions on separate connections: who blocks on
whom is checked in pg_stat_activity, and every scenario ends with exactly one winner and never
a price whose port is gone.
"""

from __future__ import annotations

import random
import string
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from psycopg import errors

from tests.stack import dotenv_ingest_token, run, wait_for_batch_copy

DAY = "2140-01-01"


@pytest.fixture()
def port(stack):
    """A port of its own (code XQ + 3 random characters), and a known existing one."""
    code = "XQ" + "".join(random.choices(string.ascii_uppercase + string.digits, k=3))
    with stack.connect() as conn:
        region, other = conn.execute("SELECT parent_slug, code FROM ports ORDER BY code LIMIT 1").fetchone()
        conn.execute("INSERT INTO ports (code, name, parent_slug) VALUES (%s, 'test port', %s)", (code, region))
    yield code, other
    with stack.connect() as conn:
        conn.execute("DELETE FROM prices WHERE orig_code = %s OR dest_code = %s", (code, code))
        conn.execute("DELETE FROM ports WHERE code = %s", (code,))


def orphans(stack) -> int:
    with stack.connect() as conn:
        return conn.execute(
            "SELECT count(*) FROM prices p WHERE NOT EXISTS (SELECT 1 FROM ports WHERE code = p.orig_code) "
            "OR NOT EXISTS (SELECT 1 FROM ports WHERE code = p.dest_code)"
        ).fetchone()[0]


def port_exists(stack, code: str) -> bool:
    with stack.connect() as conn:
        return conn.execute("SELECT count(*) FROM ports WHERE code = %s", (code,)).fetchone()[0] == 1


def price_count(stack, code: str) -> int:
    with stack.connect() as conn:
        return conn.execute("SELECT count(*) FROM prices WHERE orig_code = %s OR dest_code = %s",
                            (code, code)).fetchone()[0]


def wait_until_blocked(stack, pid: int, within: float = 10) -> None:
    """Wait until backend ``pid`` waits for a lock held by another transaction."""
    deadline = time.monotonic() + within
    with stack.connect(autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
            if row and row[0] == "Lock":
                return
            time.sleep(0.02)
    raise AssertionError(f"backend {pid} never waited for a lock")


def in_background(fn):
    pool = ThreadPoolExecutor(1)
    return pool.submit(fn)


INSERT = "INSERT INTO prices (orig_code, dest_code, day, price) SELECT %s, %s, %s, g FROM generate_series(1, 100) g"


def test_a_direct_insert_update_or_copy_with_an_unknown_code_is_rejected(stack, port):
    code, other = port
    with stack.connect() as conn:
        with pytest.raises(errors.ForeignKeyViolation, match="ZZ000"):
            conn.execute("INSERT INTO prices VALUES (%s, 'ZZ000', %s, 1)", (other, DAY))
        conn.rollback()
        with pytest.raises(errors.ForeignKeyViolation):
            with conn.cursor().copy("COPY prices (orig_code, dest_code, day, price) FROM STDIN") as copy:
                copy.write(f"{other}\t{other}\t{DAY}\t1\nZZ001\t{other}\t{DAY}\t1\n")
        conn.rollback()
        conn.execute(INSERT, (code, other, DAY))
        with pytest.raises(errors.ForeignKeyViolation):
            conn.execute("UPDATE prices SET dest_code = 'ZZ002' WHERE orig_code = %s", (code,))
        conn.rollback()
    assert price_count(stack, code) == 0 and orphans(stack) == 0


def test_psql_is_held_to_the_same_rule(stack):
    proc = run(["docker", "compose", "exec", "-T", "db", "sh", "-c",
                f"psql -v ON_ERROR_STOP=1 -U \"$POSTGRES_USER\" rates -c \"INSERT INTO prices VALUES "
                f"('ZZ003', 'ZZ004', '{DAY}', 1)\""], env=stack.env, check=False)
    assert proc.returncode != 0
    assert "not in table \"ports\"" in proc.stderr and "ZZ003" in proc.stderr


def test_a_referenced_port_cannot_be_deleted_renamed_or_truncated(stack, port):
    code, other = port
    with stack.connect() as conn:
        conn.execute(INSERT, (code, other, DAY))
    with stack.connect() as conn:
        with pytest.raises(errors.ForeignKeyViolation, match=code):
            conn.execute("DELETE FROM ports WHERE code = %s", (code,))
        conn.rollback()
        with pytest.raises(errors.ForeignKeyViolation, match=code):
            conn.execute("UPDATE ports SET code = 'XQZZZ' WHERE code = %s", (code,))
        conn.rollback()
        conn.execute("UPDATE ports SET name = 'renamed' WHERE code = %s", (code,))  # not the key: fine
        conn.rollback()
        with pytest.raises(errors.ForeignKeyViolation, match="truncate"):
            conn.execute("TRUNCATE ports CASCADE")
    assert port_exists(stack, code) and price_count(stack, code) == 100


def test_an_unreferenced_port_can_be_deleted(stack, port):
    code, _ = port
    with stack.connect() as conn:
        conn.execute("DELETE FROM ports WHERE code = %s", (code,))
    assert not port_exists(stack, code)


def test_batch_holding_the_port_makes_a_concurrent_delete_wait_then_fail(stack, port):
    code, other = port
    batch = stack.connect()
    try:
        batch.execute(INSERT, (code, other, DAY))  # the trigger locked the port FOR KEY SHARE
        deleter = stack.connect()
        pid = deleter.info.backend_pid

        def delete() -> None:
            with deleter:
                deleter.execute("DELETE FROM ports WHERE code = %s", (code,))

        outcome = in_background(delete)
        wait_until_blocked(stack, pid)
        batch.commit()
        with pytest.raises(errors.ForeignKeyViolation):
            outcome.result(timeout=30)
    finally:
        batch.close()
    assert port_exists(stack, code) and price_count(stack, code) == 100 and orphans(stack) == 0


@pytest.mark.parametrize("deleter_ends", ["commit", "rollback"])
def test_delete_first_makes_the_batch_wait_then_fail_or_succeed(stack, port, deleter_ends):
    code, other = port
    deleter = stack.connect()
    try:
        deleter.execute("DELETE FROM ports WHERE code = %s", (code,))
        batch = stack.connect()
        pid = batch.info.backend_pid

        def insert() -> None:
            with batch:
                batch.execute(INSERT, (code, other, DAY))

        outcome = in_background(insert)
        wait_until_blocked(stack, pid)
        getattr(deleter, deleter_ends)()
        if deleter_ends == "commit":
            with pytest.raises(errors.ForeignKeyViolation, match=code):
                outcome.result(timeout=30)
            assert not port_exists(stack, code) and price_count(stack, code) == 0
        else:
            outcome.result(timeout=30)
            assert port_exists(stack, code) and price_count(stack, code) == 100
    finally:
        deleter.close()
    assert orphans(stack) == 0


@pytest.mark.parametrize("isolation", ["REPEATABLE READ", "SERIALIZABLE"])
def test_a_snapshot_deleter_cannot_miss_prices_committed_after_its_snapshot(stack, port, isolation):
    code, other = port
    deleter = stack.connect()
    try:
        deleter.execute(f"BEGIN ISOLATION LEVEL {isolation}")
        deleter.execute("SELECT count(*) FROM ports").fetchone()  # the snapshot is taken here
        with stack.connect() as batch:
            batch.execute(INSERT, (code, other, DAY))  # commits after the deleter's snapshot
        with pytest.raises(errors.SerializationFailure):
            deleter.execute("DELETE FROM ports WHERE code = %s", (code,))
        deleter.rollback()
        with pytest.raises(errors.ForeignKeyViolation):  # retried, it sees the prices
            deleter.execute("DELETE FROM ports WHERE code = %s", (code,))
    finally:
        deleter.close()
    assert port_exists(stack, code) and orphans(stack) == 0


def test_concurrent_batches_and_deletes_always_end_with_one_winner(stack):
    """Twenty rounds of a batch and a delete of its port started at the same instant."""
    with stack.connect() as conn:
        region, other = conn.execute("SELECT parent_slug, code FROM ports ORDER BY code LIMIT 1").fetchone()
    outcomes = []
    for round_ in range(20):
        code = f"XR{round_:03d}"
        with stack.connect() as conn:
            conn.execute("DELETE FROM prices WHERE orig_code = %s", (code,))
            conn.execute("DELETE FROM ports WHERE code = %s", (code,))
            conn.execute("INSERT INTO ports VALUES (%s, 'race', %s)", (code, region))
        start = threading.Barrier(2)

        def batch(code: str = code, start: threading.Barrier = start) -> str:
            with stack.connect() as conn:
                start.wait()
                try:
                    conn.execute(INSERT.replace("100", "5000"), (code, other, DAY))
                    conn.commit()
                    return "committed"
                except (errors.ForeignKeyViolation, errors.DeadlockDetected):
                    return "refused"

        def delete(code: str = code, start: threading.Barrier = start) -> str:
            with stack.connect() as conn:
                start.wait()
                time.sleep(random.uniform(0, 0.05))
                try:
                    conn.execute("DELETE FROM ports WHERE code = %s", (code,))
                    conn.commit()
                    return "committed"
                except (errors.ForeignKeyViolation, errors.DeadlockDetected):
                    return "refused"

        with ThreadPoolExecutor(2) as pool:
            b, d = pool.submit(batch), pool.submit(delete)
            result = (b.result(timeout=60), d.result(timeout=60))
        outcomes.append(result)
        assert result in {("committed", "refused"), ("refused", "committed")}, result
        assert (price_count(stack, code) == 5000) == port_exists(stack, code)
        with stack.connect() as conn:
            conn.execute("DELETE FROM prices WHERE orig_code = %s", (code,))
            conn.execute("DELETE FROM ports WHERE code = %s", (code,))
    assert orphans(stack) == 0
    print(f"batch won {outcomes.count(('committed', 'refused'))} of 20 rounds, the delete the others")


def test_port_deleted_while_an_http_batch_streams_is_a_422_and_no_orphan(stack, port):
    code, other = port
    halfway, resume = threading.Event(), threading.Event()

    def body():
        yield f"orig_code,dest_code,day,price\n{code},{other},{DAY},1\n".encode()
        yield "".join(f"{other},{code},{DAY},{n}\n" for n in range(2, 5000)).encode()
        halfway.set()
        resume.wait(30)
        yield f"{code},{other},{DAY},5000\n".encode()

    key = f"race-{uuid.uuid4().hex}"
    headers = {"Authorization": f"Bearer {dotenv_ingest_token()}", "Idempotency-Key": key,
               "Content-Type": "text/csv"}
    outcome = in_background(lambda: requests.post(stack.api_url + "/batches", data=body(), headers=headers,
                                                  timeout=60))
    assert halfway.wait(30)
    try:
        wait_for_batch_copy(stack)  # the batch read the ports and streams into COPY
        with stack.connect() as conn:  # not referenced by any committed price yet: allowed
            conn.execute("DELETE FROM ports WHERE code = %s", (code,))
    finally:
        resume.set()
    response = outcome.result(timeout=60)
    assert response.status_code == 422, response.text
    assert f"port code {code!r} was deleted while the batch was loading" in response.text
    assert price_count(stack, code) == 0 and orphans(stack) == 0
    with stack.connect() as conn:
        assert conn.execute("SELECT count(*) FROM batches WHERE key = %s", (key,)).fetchone()[0] == 0


def test_the_foreign_keys_are_gone_and_the_triggers_in_place(stack):
    with stack.connect() as conn:
        fks = conn.execute("SELECT count(*) FROM pg_constraint WHERE conrelid = 'prices'::regclass "
                           "AND contype = 'f'").fetchone()[0]
        triggers = {name for (name,) in conn.execute(
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgrelid IN ('prices'::regclass, "
            "'ports'::regclass)")}
    assert fks == 0
    assert {"prices_assert_ports_on_insert", "prices_assert_ports_on_update", "ports_assert_unreferenced_on_delete",
            "ports_assert_unreferenced_on_update", "ports_refuse_truncate"} <= triggers


def test_no_transaction_is_left_waiting(stack):
    with stack.connect(autocommit=True) as conn:
        waiting = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").fetchone()[0]
    assert waiting == 0
