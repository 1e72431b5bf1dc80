"""The original dump (../shared/data/rates.sql, when present) gives the documented answer.

It is loaded by the service's migration runner (psql, then the migrations) into a scratch
database of the stack's server, and queried through the real application code (Flask test client).
"""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta

import psycopg
import pytest

from rates import config
from rates.api.app import create_app
from rates.components import Components
from rates.db import migrate
from tests.stack import DOCUMENTED_QUERY, ORIGINAL_DUMP, dotenv_password

pytestmark = pytest.mark.skipif(not ORIGINAL_DUMP.is_file(), reason=f"{ORIGINAL_DUMP} not present")


@pytest.fixture(scope="module")
def original_settings(stack, pg_conninfo):
    dbname = f"original_{uuid.uuid4().hex[:8]}"
    settings = config.load({
        "DB_HOST": "127.0.0.1", "DB_PORT": str(stack.db_port), "DB_NAME": dbname,
        "DB_PASSWORD": dotenv_password(), "MIGRATE_DUMP_PATH": str(ORIGINAL_DUMP),
    })
    migrate.run(settings)  # creates the database, loads the dump, adds the index
    yield settings
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{dbname}" WITH (FORCE)')


def test_original_dump_loads_completely(original_settings):
    with psycopg.connect(original_settings.conninfo()) as conn:
        counts = [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("regions", "ports", "prices")]
    assert counts == [20, 143, 56689]


def test_documented_answer(original_settings):
    components = Components.build(original_settings)
    app = create_app(components)
    response = app.test_client().get(f"/rates?{DOCUMENTED_QUERY}")
    rates = response.get_json()["rates"]
    assert response.status_code == 200
    assert len(rates) == 31
    assert rates[0] == {"count": 3, "day": "2021-01-31", "price": 1154.3333333333333}
    components.close()


def ports_under(conn: psycopg.Connection, location: str) -> list[str]:
    """Port codes a location stands for, computed in Python from the two tables."""
    children: dict[str, list[str]] = {}
    for slug, parent in conn.execute("SELECT slug, parent_slug FROM regions"):
        children.setdefault(parent, []).append(slug)
    if not conn.execute("SELECT 1 FROM regions WHERE slug = %s", (location,)).fetchone():
        return [location]
    regions, todo = set(), [location]
    while todo:
        slug = todo.pop()
        regions.add(slug)
        todo.extend(children.get(slug, []))
    return [code for (code,) in conn.execute("SELECT code FROM ports WHERE parent_slug = ANY(%s)", (list(regions),))]


def expected_rates(conn: psycopg.Connection, orig: str, dest: str, date_from: str, date_to: str) -> list[dict]:
    """The contract, computed independently: every day, newest first; null below 3 prices."""
    rows = conn.execute(
        "SELECT d::date, count(p.price), avg(p.price) FROM generate_series(%s::date, %s::date, '1 day') d "
        "LEFT JOIN prices p ON p.day = d::date AND p.orig_code = ANY(%s) AND p.dest_code = ANY(%s) "
        "GROUP BY d ORDER BY d DESC",
        (date_from, date_to, ports_under(conn, orig), ports_under(conn, dest)),
    ).fetchall()
    return [{"count": n or None, "day": day.isoformat(), "price": float(avg) if n >= 3 else None}
            for day, n, avg in rows]


def test_random_queries_match_the_contract(original_settings):
    """300 random routes, regions and ranges (seeded) against the independent computation."""
    rng = random.Random(2021)
    components = Components.build(original_settings)
    client = create_app(components).test_client()
    with psycopg.connect(original_settings.conninfo()) as conn:
        routes = conn.execute("SELECT DISTINCT orig_code, dest_code FROM prices ORDER BY 1, 2").fetchall()
        slugs = [s for (s,) in conn.execute("SELECT slug FROM regions ORDER BY 1")]
        for i in range(300):
            orig, dest = rng.choice(routes)
            if i % 5 == 0:
                orig = rng.choice(slugs)
            if i % 7 == 0:
                dest = rng.choice(slugs)
            start = date(2020, 12, 20) + timedelta(days=rng.randint(0, 50))
            end = start + timedelta(days=rng.randint(-3, 40))  # sometimes before the start: []
            query = f"date_from={start}&date_to={end}&orig_code={orig}&dest_code={dest}"
            got = client.get(f"/rates?{query}").get_json()["rates"]
            want = expected_rates(conn, orig, dest, str(start), str(end))
            assert [(r["day"], r["count"]) for r in got] == [(r["day"], r["count"]) for r in want], query
            for g, w in zip(got, want, strict=True):
                assert (g["price"] is None) == (w["price"] is None), query
                if w["price"] is not None:
                    assert abs(g["price"] - w["price"]) <= 1e-9, query
    components.close()
