"""The original dump (../shared/data/rates.sql, when present) gives the documented answer.

It is loaded with the service's own loader and migrations into a scratch database of the
stack's server, and queried through the real application code (Flask test client).
"""

from __future__ import annotations

import uuid

import psycopg
import pytest

from rates import config, migrate
from rates.app import create_app
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
    app = create_app(original_settings)
    response = app.test_client().get(f"/rates?{DOCUMENTED_QUERY}")
    rates = response.get_json()["rates"]
    assert response.status_code == 200
    assert len(rates) == 31
    assert rates[0] == {"count": 3, "day": "2021-01-31", "price": 1154.3333333333333}
    app.extensions["rates.db"].close()
