"""rates.reads.service: what RatesService asks the database, and when it answers from the cache."""

from datetime import date

import orjson
import pytest

from rates.db import queries
from rates.errors import DatabaseUnavailable
from rates.reads.service import RatesQuery, RatesService
from tests.fakes import FakeReads

QUERY = RatesQuery(date(2021, 1, 1), date(2021, 1, 31), "CNGGZ", "EETLL")


def test_first_answer_comes_from_the_database_then_from_the_cache():
    reads = FakeReads()
    service = RatesService(reads, cache_size=10)
    first = service.answer(QUERY)
    assert orjson.loads(first) == {"rates": [{"count": 3, "day": "2021-01-31", "price": 1154.5}]}
    assert len(reads.queries) == 1 and reads.version_reads == 0  # a miss needs no version read
    assert service.answer(QUERY) == first
    assert len(reads.queries) == 1 and reads.version_reads == 1  # a hit costs one version read


def test_a_new_data_version_makes_the_cached_answer_stale():
    reads = FakeReads()
    service = RatesService(reads, cache_size=10)
    service.answer(QUERY)
    reads.version, reads.rows = 2, [(2, "2021-01-31", 4, 1000.0)]
    assert orjson.loads(service.answer(QUERY))["rates"][0]["count"] == 4
    assert len(reads.queries) == 2


def test_an_empty_range_is_not_cached():
    reads = FakeReads(rows=[])
    service = RatesService(reads, cache_size=10)
    assert service.answer(QUERY) == b'{"rates":[]}'
    service.answer(QUERY)
    assert len(reads.queries) == 2


def test_without_a_cache_every_answer_is_a_query_and_no_version_is_read():
    reads = FakeReads()
    service = RatesService(reads, cache_size=0)
    service.answer(QUERY)
    service.answer(QUERY)
    assert (len(reads.queries), reads.version_reads) == (2, 0)


@pytest.mark.parametrize(("orig", "dest"), [("CNGGZ", "EETLL"), ("china_main", "EETLL"), ("CNGGZ", "baltic"),
                                            ("china_main", "baltic")])
def test_a_region_slug_selects_the_query_that_expands_it(orig, dest):
    reads = FakeReads()
    RatesService(reads, cache_size=0).answer(RatesQuery(QUERY.date_from, QUERY.date_to, orig, dest))
    sql, params = reads.queries[0]
    assert sql == queries.daily_average(orig.islower(), dest.islower())
    assert params == {"orig": orig, "dest": dest, "date_from": QUERY.date_from, "date_to": QUERY.date_to}


def test_an_unreachable_database_is_raised_as_such():
    reads = FakeReads()
    reads.down = True
    with pytest.raises(DatabaseUnavailable):
        RatesService(reads, cache_size=10).answer(QUERY)


def test_a_client_holding_the_current_version_gets_no_body_and_no_query_runs():
    reads = FakeReads(version=7)
    service = RatesService(reads, cache_size=10)
    assert service.answer_versioned(QUERY).version == 7
    answer = service.answer_versioned(QUERY, seen=7)
    assert (answer.version, answer.body) == (7, None)
    assert (len(reads.queries), reads.version_reads) == (1, 1)


def test_a_client_holding_an_older_version_gets_the_new_answer_and_its_version():
    reads = FakeReads(version=8)
    answer = RatesService(reads, cache_size=0).answer_versioned(QUERY, seen=7)
    assert answer.version == 8 and orjson.loads(answer.body)["rates"][0]["count"] == 3


def test_a_replica_behind_the_clients_version_does_not_send_it_older_data():
    reads = FakeReads(version=5)
    answer = RatesService(reads, cache_size=10).answer_versioned(QUERY, seen=9)
    assert (answer.version, answer.body, len(reads.queries)) == (9, None, 0)


def test_an_empty_range_has_no_version():
    answer = RatesService(FakeReads(rows=[]), cache_size=10).answer_versioned(QUERY)
    assert (answer.version, answer.body) == (None, b'{"rates":[]}')


def test_a_replica_behind_the_cached_version_is_served_the_cached_newer_answer():
    reads = FakeReads(version=9)
    service = RatesService(reads, cache_size=10)
    service.answer_versioned(QUERY)
    reads.version = 8  # the next request reaches a replica that has not replayed version 9 yet
    answer = service.answer_versioned(QUERY)
    assert answer.version == 9 and len(reads.queries) == 1
