"""SQL of the read path. Every input reaches the database as a bound parameter."""

from __future__ import annotations

# Ports of a region and of all its sub-regions (regions.parent_slug), as an array: the planner
# evaluates it once and probes the route index with `= ANY(...)`.
_PORTS_UNDER = """ARRAY(
        WITH RECURSIVE tree(slug) AS (
            SELECT slug FROM regions WHERE slug = %({param})s
            UNION
            SELECT r.slug FROM regions r JOIN tree t ON r.parent_slug = t.slug
        )
        SELECT code FROM ports WHERE parent_slug IN (SELECT slug FROM tree))"""

# Average price per day for a route; one row per day of the range, newest first. Days without
# prices have count and price NULL; price is NULL when a day has fewer than 3 prices. The route
# filter uses the index prices(orig_code, dest_code, day) from the first migration. Each row
# also carries the data version of the statement's snapshot (see rates.reads.cache).
_DAILY_AVERAGE = """
SELECT (SELECT version FROM data_version), to_char(d.day, 'YYYY-MM-DD'), a.n, CASE WHEN a.n >= 3 THEN a.average END
FROM generate_series(%(date_from)s::date, %(date_to)s::date, interval '1 day') AS d(day)
LEFT JOIN (
    SELECT p.day, count(*)::int AS n, avg(p.price)::float8 AS average
    FROM prices p
    WHERE {orig_filter} AND {dest_filter} AND p.day BETWEEN %(date_from)s AND %(date_to)s
    GROUP BY p.day
) a ON a.day = d.day::date
ORDER BY d.day DESC
"""


def _filter(column: str, param: str, is_region: bool) -> str:
    if is_region:
        return f"p.{column} = ANY({_PORTS_UNDER.format(param=param)})"
    return f"p.{column} = %({param})s"


# The four shapes: a port code is matched directly; a region slug through its ports.
DAILY_AVERAGE_BY_SHAPE = {
    (orig_region, dest_region): _DAILY_AVERAGE.format(
        orig_filter=_filter("orig_code", "orig", orig_region),
        dest_filter=_filter("dest_code", "dest", dest_region),
    )
    for orig_region in (False, True)
    for dest_region in (False, True)
}
DAILY_AVERAGE = DAILY_AVERAGE_BY_SHAPE[False, False]


def daily_average(orig_is_region: bool, dest_is_region: bool) -> str:
    """The /rates query for a port code or a region slug on each side."""
    return DAILY_AVERAGE_BY_SHAPE[orig_is_region, dest_is_region]
