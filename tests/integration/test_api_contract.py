"""GET /rates over HTTP against the stack's API and database: the original service's contract."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import requests

from tests.stack import DOCUMENTED_QUERY


def expected_days(stack, orig: str, dest: str, date_from: str, date_to: str) -> dict[str, tuple[int, float]]:
    """Count and average per day, computed independently in SQL from the prices table."""
    with stack.connect() as conn:
        rows = conn.execute(
            "SELECT day, count(*), avg(price) FROM prices WHERE orig_code = %s AND dest_code = %s "
            "AND day BETWEEN %s AND %s GROUP BY day",
            (orig, dest, date_from, date_to),
        ).fetchall()
    return {d.isoformat(): (n, float(avg)) for d, n, avg in rows}


def test_documented_query_has_one_entry_per_day_newest_first(stack):
    response = stack.get(f"/rates?{DOCUMENTED_QUERY}")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    rates = response.json()["rates"]
    days = [r["day"] for r in rates]
    assert days == [(date(2021, 1, 31) - timedelta(n)).isoformat() for n in range(31)]
    assert all(set(r) == {"count", "day", "price"} for r in rates)


def test_counts_and_averages_match_the_prices_table(stack):
    rates = stack.get(f"/rates?{DOCUMENTED_QUERY}").json()["rates"]
    expected = expected_days(stack, "CNGGZ", "EETLL", "2021-01-01", "2021-01-31")
    assert expected, "the generated dump must have prices for CNGGZ -> EETLL"
    for r in rates:
        if r["day"] not in expected:
            assert r == {"count": None, "day": r["day"], "price": None}
            continue
        n, avg = expected[r["day"]]
        assert r["count"] == n
        if n < 3:
            assert r["price"] is None
        else:
            assert r["price"] == pytest.approx(avg, abs=1e-9)


def test_days_with_fewer_than_three_prices_have_null_price(stack):
    with stack.connect() as conn:
        row = conn.execute(
            "SELECT orig_code, dest_code, day, count(*) FROM prices GROUP BY 1, 2, 3 HAVING count(*) < 3 LIMIT 1"
        ).fetchone()
    assert row, "the generated dump must contain route-days with fewer than 3 prices"
    orig, dest, day, n = row
    rates = stack.get(f"/rates?date_from={day}&date_to={day}&orig_code={orig}&dest_code={dest}").json()["rates"]
    assert rates == [{"count": n, "day": day.isoformat(), "price": None}]


def test_days_outside_the_data_still_appear(stack):
    rates = stack.get("/rates?date_from=2020-12-30&date_to=2021-01-02&orig_code=CNGGZ&dest_code=EETLL").json()["rates"]
    assert [r["day"] for r in rates] == ["2021-01-02", "2021-01-01", "2020-12-31", "2020-12-30"]
    assert rates[-1] == {"count": None, "day": "2020-12-30", "price": None}


def test_unknown_but_well_formed_code_gives_null_days(stack):
    rates = stack.get("/rates?date_from=2021-01-01&date_to=2021-01-03&orig_code=ZZZZZ&dest_code=EETLL").json()["rates"]
    assert rates == [{"count": None, "day": f"2021-01-0{d}", "price": None} for d in (3, 2, 1)]


def test_reversed_range_gives_empty_list(stack):
    response = stack.get("/rates?date_from=2021-01-31&date_to=2021-01-01&orig_code=CNGGZ&dest_code=EETLL")
    assert (response.status_code, response.json()) == (200, {"rates": []})


def test_region_slug_covers_ports_of_sub_regions(stack):
    with stack.connect() as conn:
        # Prices from every port under the root region of CNGGZ, computed with an independent query.
        (root,) = conn.execute(
            "WITH RECURSIVE up(slug, parent) AS (SELECT r.slug, r.parent_slug FROM regions r "
            " JOIN ports p ON p.parent_slug = r.slug WHERE p.code = 'CNGGZ' "
            " UNION ALL SELECT r.slug, r.parent_slug FROM regions r JOIN up ON r.slug = up.parent) "
            "SELECT slug FROM up WHERE parent IS NULL"
        ).fetchone()
        ports = [c for (c,) in conn.execute(
            "WITH RECURSIVE down(slug) AS (SELECT %s::text UNION SELECT r.slug FROM regions r "
            " JOIN down ON r.parent_slug = down.slug) "
            "SELECT code FROM ports WHERE parent_slug IN (SELECT slug FROM down)",
            (root,),
        )]
        n, avg = conn.execute(
            "SELECT count(*), avg(price) FROM prices WHERE orig_code = ANY(%s) AND dest_code = 'EETLL' "
            "AND day = '2021-01-15'", (ports,)
        ).fetchone()
    assert len(ports) > 1
    rates = stack.get(f"/rates?date_from=2021-01-15&date_to=2021-01-15&orig_code={root}&dest_code=EETLL").json()
    assert rates["rates"][0]["count"] == n
    assert rates["rates"][0]["price"] == pytest.approx(float(avg), abs=1e-9)


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("date_to=2021-01-31&orig_code=CNGGZ&dest_code=EETLL", "date_from"),
        ("date_from=2021-13-01&date_to=2021-01-31&orig_code=CNGGZ&dest_code=EETLL", "date_from"),
        ("date_from=2021-01-01&date_to=yesterday&orig_code=CNGGZ&dest_code=EETLL", "date_to"),
        ("date_from=2021-01-01&date_to=2021-01-31&dest_code=EETLL", "orig_code"),
        ("date_from=2021-01-01&date_to=2021-01-31&orig_code=CNGGZ&dest_code=EE%27TLL", "dest_code"),
        ("date_from=2000-01-01&date_to=2021-01-31&orig_code=CNGGZ&dest_code=EETLL", "date_to"),
    ],
)
def test_bad_input_is_a_json_400_naming_the_parameter(stack, query, param):
    response = stack.get(f"/rates?{query}")
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"].startswith(f"{param}: ")


def test_other_routes_and_methods_are_json_errors(stack):
    missing = stack.get("/nope")
    assert (missing.status_code, missing.headers["Content-Type"]) == (404, "application/json")
    import requests

    wrong = requests.post(f"{stack.api_url}/rates", timeout=10)
    assert wrong.status_code == 405
    assert "error" in wrong.json()


def test_root_answers_the_original_greeting(stack):
    """The original service answers GET / with this exact body (part of the kept contract)."""
    root = stack.get("/")
    assert (root.status_code, root.headers["Content-Type"]) == (200, "application/json")
    assert root.json() == {"message": "Hello world!"}


def test_health_and_readiness(stack):
    assert stack.get("/healthz").json() == {"status": "ok"}
    assert stack.get("/readyz").json() == {"status": "ready"}


def test_the_etag_is_the_data_version_and_if_none_match_answers_304_until_it_changes(stack):
    url = f"{stack.api_url}/rates?{DOCUMENTED_QUERY}"
    first = requests.get(url, timeout=10)
    tag = first.headers["ETag"]
    with stack.connect() as conn:
        assert tag == f'"{conn.execute("SELECT version FROM data_version").fetchone()[0]}"'
    same = requests.get(url, headers={"If-None-Match": tag}, timeout=10)
    assert (same.status_code, same.content, same.headers["ETag"]) == (304, b"", tag)
    assert requests.get(url, headers={"If-None-Match": '"1", ' + tag}, timeout=10).status_code == 304

    with stack.connect() as conn:  # a write that changes no price still makes a new version
        conn.execute("UPDATE ports SET name = name WHERE code = 'CNGGZ'")
        conn.commit()
    changed = requests.get(url, headers={"If-None-Match": tag}, timeout=10)
    assert changed.status_code == 200 and changed.json() == first.json()
    assert int(changed.headers["ETag"].strip('"')) > int(tag.strip('"'))
    # A copy newer than what this server has (a client that read a replica further ahead):
    # not modified, never an older answer.
    ahead = f'"{int(changed.headers["ETag"].strip(chr(34))) + 1000}"'
    assert requests.get(url, headers={"If-None-Match": ahead}, timeout=10).status_code == 304
