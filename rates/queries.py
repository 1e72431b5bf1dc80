"""SQL of the read path. Every input reaches the database as a bound parameter."""

# Average price per day for a route. ``orig`` and ``dest`` are each a port code or a region
# slug; a slug stands for every port of that region and of all its sub-regions. Days without
# prices still appear (count and price NULL); price is NULL when a day has fewer than 3 prices.
# The route filter uses the index prices(orig_code, dest_code, day) from the first migration.
DAILY_AVERAGE = """
WITH RECURSIVE
orig_regions(slug) AS (
    SELECT slug FROM regions WHERE slug = %(orig)s
    UNION
    SELECT r.slug FROM regions r JOIN orig_regions t ON r.parent_slug = t.slug
),
dest_regions(slug) AS (
    SELECT slug FROM regions WHERE slug = %(dest)s
    UNION
    SELECT r.slug FROM regions r JOIN dest_regions t ON r.parent_slug = t.slug
),
daily AS (
    SELECT p.day, count(*) AS n, avg(p.price)::float8 AS average
    FROM prices p
    WHERE p.orig_code IN (
              SELECT %(orig)s::text
              UNION ALL SELECT code FROM ports WHERE parent_slug IN (SELECT slug FROM orig_regions))
      AND p.dest_code IN (
              SELECT %(dest)s::text
              UNION ALL SELECT code FROM ports WHERE parent_slug IN (SELECT slug FROM dest_regions))
      AND p.day BETWEEN %(date_from)s AND %(date_to)s
    GROUP BY p.day
)
SELECT to_char(d.day, 'YYYY-MM-DD'), daily.n::int, CASE WHEN daily.n >= 3 THEN daily.average END
FROM generate_series(%(date_from)s::date, %(date_to)s::date, interval '1 day') AS d(day)
LEFT JOIN daily ON daily.day = d.day::date
ORDER BY d.day DESC
"""
