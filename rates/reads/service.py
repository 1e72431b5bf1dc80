"""Answers a /rates query, from the exact cache when the data has not changed since."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import orjson

from rates import rules
from rates.db import queries
from rates.db.pools import ReadPool
from rates.observability import metrics
from rates.reads.cache import VersionedCache


@dataclass(frozen=True)
class RatesQuery:
    date_from: date
    date_to: date
    orig: str
    dest: str


def render_rates(rows: list[tuple]) -> bytes:
    """The response body: rows are (data version, day, count, average)."""
    return orjson.dumps({"rates": [{"count": n, "day": day, "price": price} for _, day, n, price in rows]})


class RatesService:
    """Cached answers are served only at the data version they were computed at (rates.reads.cache)."""

    def __init__(self, db: ReadPool, cache_size: int) -> None:
        self.db = db
        self.cache = VersionedCache(cache_size)

    def answer(self, q: RatesQuery) -> bytes:
        key = (q.orig, q.dest, q.date_from, q.date_to)
        if self.cache.enabled:
            if self.cache.has(key):
                body = self.cache.get(key, self.db.data_version())
                if body is not None:
                    metrics.child(metrics.CACHE, "hit").inc()
                    return body
                metrics.child(metrics.CACHE, "stale").inc()
            else:
                metrics.child(metrics.CACHE, "miss").inc()
        sql = queries.daily_average(rules.is_region_slug(q.orig), rules.is_region_slug(q.dest))
        rows = self.db.fetch_all(sql, {"orig": q.orig, "dest": q.dest, "date_from": q.date_from, "date_to": q.date_to})
        body = render_rates(rows)
        if rows:  # an empty range has no row to carry the version: not cached
            self.cache.put(key, rows[0][0], body)
        return body
