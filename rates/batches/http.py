"""HTTP routes of batch ingestion (a Flask blueprint), plugged in by ``register``.

- ``POST /batches``: bearer token, ``Idempotency-Key``, body streamed (see ingest.py).
- ``GET /batches/<batch_id>`` and ``GET /batches?limit=&after=``: committed batches, newest
  first; ``after`` is the ``next_after`` of the previous page. Reads need no token.
"""

from __future__ import annotations

import logging
from typing import BinaryIO

import psycopg
from flask import Blueprint, Flask, Response, request

from rates.batches import store
from rates.batches.auth import BearerAuth, parse_tokens
from rates.batches.errors import BadRequest, BatchError, NotFound
from rates.batches.ingest import Ingestor, Limits
from rates.batches.pool import BatchPool
from rates.batches.uwsgi_input import ChunkedInput, under_uwsgi_chunked
from rates.config import Settings
from rates.db import Database
from rates.responses import json_response

log = logging.getLogger("rates.batches")
ERROR_KEY = "rates.error_kind"  # read by the request metrics (rates.middleware)
MAX_PAGE = 1000
DEFAULT_PAGE = 100


def body_stream(read_timeout: int) -> BinaryIO:
    """The raw request body: to its Content-Length, or to the end of a chunked body."""
    environ = request.environ
    if under_uwsgi_chunked(environ):
        return ChunkedInput.from_uwsgi(read_timeout)  # type: ignore[return-value]
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    if request.content_length is None and (chunked or environ.get("wsgi.input_terminated")):
        return environ["wsgi.input"]
    return request.stream  # type: ignore[return-value]


def _int_arg(name: str, default: int | None, lo: int, hi: int | None = None) -> int | None:
    values = request.args.getlist(name)
    if not values:
        return default
    if len(values) > 1:
        raise BadRequest(f"{name}: given {len(values)} times")
    raw = values[0]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise BadRequest(f"{name}: expected an integer, got {raw[:40]!r}")
    value = int(raw)
    if value < lo or (hi is not None and value > hi):
        raise BadRequest(f"{name}: must be between {lo} and {hi}" if hi else f"{name}: must be >= {lo}")
    return value


def register(app: Flask, db: Database, settings: Settings) -> None:
    """Add the /batches routes to ``app``: writes through a pool of their own, reads through ``db``."""
    auth = BearerAuth(parse_tokens(settings.INGEST_TOKEN))
    if not auth.enabled:
        log.warning("INGEST_TOKEN is not set: POST /batches answers 403 (ingestion disabled)")
    limits = Limits(settings.BATCH_MAX_ROWS, settings.BATCH_MAX_BYTES, settings.BATCH_STATEMENT_TIMEOUT_MS)
    pool = BatchPool(settings)  # writes on connections of their own; reads (GET) use ``db``
    ingestor = Ingestor(pool.connection, limits, lambda: psycopg.connect(settings.conninfo(), autocommit=True))
    app.extensions["rates.batches.pool"] = pool
    bp = Blueprint("batches", __name__)

    @bp.post("/batches")
    def post_batch() -> Response:
        auth.check(request.headers.get("Authorization"))
        outcome = ingestor.ingest(
            body_stream(settings.WEB_TIMEOUT),
            key=request.headers.get("Idempotency-Key"),
            content_type=request.headers.get("Content-Type"),
            content_encoding=request.headers.get("Content-Encoding"),
            content_length=request.content_length,
        )
        response = json_response(outcome.record, outcome.status)
        response.headers["Location"] = f"/batches/{outcome.record['batch_id']}"
        return response

    @bp.get("/batches/<int:batch_id>")
    def get_batch(batch_id: int) -> Response:
        rows = db.fetch_all(store.BY_ID, {"batch_id": batch_id})
        if not rows:
            raise NotFound(f"no committed batch {batch_id}")
        return json_response(store.as_json(rows[0]))

    @bp.get("/batches")
    def list_batches() -> Response:
        limit = _int_arg("limit", DEFAULT_PAGE, 1, MAX_PAGE)
        after = _int_arg("after", None, 1)
        rows = db.fetch_all(store.PAGE, {"limit": limit, "after": after})
        records = [store.as_json(row) for row in rows]
        next_after = records[-1]["batch_id"] if len(records) == limit else None
        return json_response({"batches": records, "next_after": next_after})

    @bp.errorhandler(BatchError)
    def batch_error(exc: BatchError) -> Response:
        request.environ[ERROR_KEY] = f"batch_{exc.status}"
        response = json_response(exc.body(), exc.status)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="rates"'
        elif exc.status == 503:
            response.headers["Retry-After"] = "1"
        if request.method == "POST" and exc.status in (413, 503):
            response.headers["Connection"] = "close"  # the rest of the body was not read
        return response

    app.register_blueprint(bp)
