"""Batch ingestion of prices: ``POST /batches`` and ``python -m rates ingest``.

One code path for both: the body is read in chunks (gzip decoded on the fly), parsed
incrementally (CSV, NDJSON or a JSON array), validated row by row in Python and streamed into
``COPY prices FROM STDIN`` inside one transaction that also records the batch. Nothing of a
batch is visible until it commits, and a batch with any invalid row commits nothing.

  body.py        the request body as decoded chunks: gzip, byte limit, sha256
  items.py       what the parsers yield: (line, row) items, a syntax problem as a Problem
  formats.py     the CSV and NDJSON parsers (and the media types); they only parse
  json_array.py  the JSON array parser, element by element
  rows.py        validation of one row against rates/rules.py, and the error list
  copy_blocks.py the one consumer of the items: validates, counts rows, collects the errors
                 (first 100 plus the total), yields blocks of COPY text
  store.py       SQL of the ``batches`` table
  ingest.py      the transaction: idempotency key, COPY, integrity, commit
  watchdog.py    ends a transaction that outlives its deadline (a silent client)

Elsewhere: the errors a batch can end with, each with its HTTP status (rates/errors.py); the
bearer tokens and the Flask routes (rates/api/auth.py, rates/api/batches_routes.py);
``python -m rates ingest FILE --key KEY`` (rates/__main__.py).

docs/batch-ingestion.md describes the guarantees; docs/adr/0001-set-based-price-integrity.md
why prices reference ports through set-based triggers rather than per-row foreign keys.
"""
