"""SQL of the ``batches`` table (db/migrations/0004_batches.sql) and its JSON form."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

COLUMNS = "batch_id, key, rows, sha256, received_at, committed_at, duration_ms"
FIELDS = tuple(COLUMNS.split(", "))

# Opens a batch's transaction: its backend (for the watchdog), its start, its time limit, and
# commits that wait until the synchronous standbys (if any) have applied them: a batch answered
# 201 is on them and visible to every later read through them.
BEGIN = """SELECT pg_backend_pid(), now(), set_config('statement_timeout', %s, true),
                  set_config('synchronous_commit', 'remote_apply', true)"""

# Then the key. A concurrent transaction holding the same key makes this wait on the unique
# index until it ends; if it committed, nothing is inserted here.
START = "INSERT INTO public.batches (key) VALUES (%(key)s) ON CONFLICT (key) DO NOTHING RETURNING batch_id"

# Last statement before COMMIT: the batch's figures.
FINISH = f"""
WITH t AS (SELECT clock_timestamp() AS now)
UPDATE public.batches
SET rows = %(rows)s, sha256 = %(sha256)s, committed_at = t.now,
    duration_ms = floor(extract(epoch FROM t.now - received_at) * 1000)::bigint
FROM t
WHERE batch_id = %(batch_id)s
RETURNING {COLUMNS}
"""

# The record of a batch committed before, locked: the lock is written to the WAL, so the replay's
# own commit waits for the synchronous standbys, and that wait covers the batch's commit.
BY_KEY = f"SELECT {COLUMNS} FROM public.batches WHERE key = %(key)s AND committed_at IS NOT NULL FOR UPDATE"
BY_ID = f"SELECT {COLUMNS} FROM public.batches WHERE batch_id = %(batch_id)s AND committed_at IS NOT NULL"
# Newest first, by arrival (batch_id); ``after`` is the last batch_id of the previous page.
PAGE = f"""
SELECT {COLUMNS} FROM public.batches
WHERE committed_at IS NOT NULL AND (%(after)s::bigint IS NULL OR batch_id < %(after)s::bigint)
ORDER BY batch_id DESC
LIMIT %(limit)s
"""

PORT_CODES = "SELECT code FROM public.ports"
COPY_PRICES = "COPY public.prices (orig_code, dest_code, day, price) FROM STDIN"


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def as_json(row: tuple[Any, ...]) -> dict[str, Any]:
    """A ``batches`` row (COLUMNS order) as the API returns it."""
    record = dict(zip(FIELDS, row, strict=True))
    record["received_at"] = _timestamp(record["received_at"])
    record["committed_at"] = _timestamp(record["committed_at"])
    return record
