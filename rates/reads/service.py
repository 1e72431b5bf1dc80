"""Answers a /rates query, from the exact cache when the data has not changed since.

Every answer carries the data version it was computed at, which the API sends as its ETag: a
client (or a CDN) that sends back the version it holds gets "not modified" for the price of one
single-row read while that version is still current, and also when the replica it reached is
behind the version it holds, so that a client never goes back in time.
"""

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


@dataclass(frozen=True)
class Answer:
    """The body and the data version it was computed at (None for an empty range, which has no
    row to carry it). No body: the client's copy, at ``version``, is current (HTTP 304)."""

    version: int | None
    body: bytes | None


def render_rates(rows: list[tuple]) -> bytes:
    """The response body: rows are (data version, day, count, average)."""
    return orjson.dumps({"rates": [{"count": n, "day": day, "price": price} for _, day, n, price in rows]})


class RatesService:
    """Cached answers are never served once the data version changed (rates.reads.cache)."""

    def __init__(self, db: ReadPool, cache_size: int) -> None:
        self.db = db
        self.cache = VersionedCache(cache_size)

    def answer(self, q: RatesQuery) -> bytes:
        return self.answer_versioned(q).body or b""

    def answer_versioned(self, q: RatesQuery, seen: int | None = None) -> Answer:
        """The answer to ``q``; none (body None) when ``seen``, the data version of the client's
        copy, is the current version or newer (a replica behind it must not answer older data)."""
        key = (q.orig, q.dest, q.date_from, q.date_to)
        cached = self.cache.enabled and self.cache.has(key)
        if seen is not None or cached:
            version = self.db.data_version()
            if seen is not None and seen >= version:
                return Answer(seen, None)
            if cached:
                entry = self.cache.get(key, version)
                if entry is not None:
                    metrics.child(metrics.CACHE, "hit").inc()
                    return Answer(*entry)
                metrics.child(metrics.CACHE, "stale").inc()
        if self.cache.enabled and not cached:
            metrics.child(metrics.CACHE, "miss").inc()
        sql = queries.daily_average(rules.is_region_slug(q.orig), rules.is_region_slug(q.dest))
        rows = self.db.fetch_all(sql, {"orig": q.orig, "dest": q.dest, "date_from": q.date_from, "date_to": q.date_to})
        if not rows:  # an empty range has no row to carry the version: not cached, no ETag
            return Answer(None, render_rates(rows))
        body = render_rates(rows)
        self.cache.put(key, rows[0][0], body)
        return Answer(rows[0][0], body)
