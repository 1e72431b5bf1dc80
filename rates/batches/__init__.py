"""Batch ingestion of prices: ``POST /batches`` and ``python -m rates ingest``.

One code path for both: the body is read in chunks (gzip decoded on the fly), parsed
incrementally (CSV, NDJSON or a JSON array), validated row by row in Python and streamed into
``COPY prices FROM STDIN`` inside one transaction that also records the batch. Nothing of a
batch is visible until it commits, and a batch with any invalid row commits nothing.

  errors.py   the errors a batch can end with, each with its HTTP status
  body.py     the request body as decoded chunks: gzip, byte limit, sha256
  rows.py     validation of one row, and the error list (first 100 plus the total)
  formats.py  CSV / NDJSON / JSON array parsers yielding COPY lines
  store.py    SQL of the ``batches`` table
  ingest.py   the transaction: idempotency key, COPY, integrity, commit
  auth.py     bearer tokens, compared in constant time
  http.py     the Flask routes
  cli.py      ``python -m rates ingest FILE --key KEY``

docs/batch-ingestion.md describes the guarantees; docs/adr/0001-set-based-price-integrity.md
why prices reference ports through set-based triggers rather than per-row foreign keys.
"""
