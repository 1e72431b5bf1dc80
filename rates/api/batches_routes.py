"""The /batches routes (a Flask blueprint), over the ingestor and the read pool of Components.

- ``POST /batches``: bearer token, ``Idempotency-Key``, body streamed (rates.batches.ingest).
- ``GET /batches/<batch_id>`` and ``GET /batches?limit=&after=``: committed batches, newest
  first; ``after`` is the ``next_after`` of the previous page. Reads need the token too: the
  records show idempotency keys, which often name customers or files.
"""

from __future__ import annotations

import logging
from typing import BinaryIO

from flask import Blueprint, Response, request

from rates.api.auth import BearerAuth, parse_tokens
from rates.api.params import bounded_int, query_arguments
from rates.api.responses import json_response
from rates.batches import store
from rates.components import Components
from rates.errors import NotFound

log = logging.getLogger("rates.batches")
MAX_PAGE = 1000
DEFAULT_PAGE = 100
MAX_BATCH_ID = 2**63 - 1


def body_stream() -> BinaryIO:
    """The raw request body: to its Content-Length, or to the end of a chunked body."""
    environ = request.environ
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    if request.content_length is None and (chunked or environ.get("wsgi.input_terminated")):
        return environ["wsgi.input"]
    return request.stream  # type: ignore[return-value]


def blueprint(components: Components) -> Blueprint:
    auth = BearerAuth(parse_tokens(components.settings.INGEST_TOKEN))
    if not auth.enabled:
        log.warning("INGEST_TOKEN is not set: POST /batches answers 403 (ingestion disabled)")
    ingestor, reads = components.ingestor, components.reads
    bp = Blueprint("batches", __name__)

    @bp.post("/batches")
    def post_batch() -> Response:
        auth.check(request.headers.get("Authorization"))
        outcome = ingestor.ingest(
            body_stream(),
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
        auth.check(request.headers.get("Authorization"))
        rows = reads.fetch_all(store.BY_ID, {"batch_id": batch_id}) if batch_id <= MAX_BATCH_ID else []
        if not rows:
            raise NotFound(f"no committed batch {batch_id}")
        return json_response(store.as_json(rows[0]))

    @bp.get("/batches")
    def list_batches() -> Response:
        auth.check(request.headers.get("Authorization"))
        args = query_arguments(request.query_string.decode("latin-1"))
        limit = bounded_int(args, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
        after = bounded_int(args, "after", None, 1, MAX_BATCH_ID)
        rows = reads.fetch_all(store.PAGE, {"limit": limit, "after": after})
        records = [store.as_json(row) for row in rows]
        next_after = records[-1]["batch_id"] if len(records) == limit else None
        return json_response({"batches": records, "next_after": next_after})

    return bp
