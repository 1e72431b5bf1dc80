"""``python -m rates ingest FILE --key KEY``: one batch through the same code as POST /batches.

The command connects to the database directly (the settings' DB_* variables), so it needs no
bearer token: whoever can run it can reach the database already. It prints the batch record as
JSON and exits 0 (201 committed now, or 200 committed before with the same content), or prints
the error as JSON on stderr and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import ExitStack
from typing import BinaryIO

import psycopg

from rates import config
from rates.batches.errors import BatchError
from rates.batches.ingest import Ingestor, Limits
from rates.logs import configure_logging

TYPES = {".csv": "text/csv", ".ndjson": "application/x-ndjson", ".jsonl": "application/x-ndjson",
         ".json": "application/json"}


def infer(name: str) -> tuple[str | None, str | None]:
    """(content type, content encoding) from a file name such as prices.csv.gz."""
    base, encoding = name.lower(), None
    if base.endswith(".gz"):
        base, encoding = base[:-3], "gzip"
    content_type = next((t for ext, t in TYPES.items() if base.endswith(ext)), None)
    return content_type, encoding


def run(args: argparse.Namespace) -> int:
    settings = config.get()
    configure_logging(settings.LOG_LEVEL)
    name = args.filename or (args.file if args.file != "-" else "")
    content_type, encoding = infer(name)
    content_type = args.content_type or content_type
    encoding = args.content_encoding or encoding
    if content_type is None:
        print("ingest: cannot tell the format from the name; pass --content-type", file=sys.stderr)
        return 1
    limits = Limits(settings.BATCH_MAX_ROWS, settings.BATCH_MAX_BYTES, settings.BATCH_STATEMENT_TIMEOUT_MS)
    ingestor = Ingestor(lambda: psycopg.connect(settings.conninfo()), limits)
    with ExitStack() as stack:
        stream: BinaryIO
        if args.file == "-":
            stream, length = sys.stdin.buffer, None
        else:
            try:
                stream = stack.enter_context(open(args.file, "rb"))
            except OSError as exc:
                print(f"ingest: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
                return 1
            length = os.fstat(stream.fileno()).st_size
        try:
            outcome = ingestor.ingest(
                stream, key=args.key, content_type=content_type, content_encoding=encoding, content_length=length
            )
        except BatchError as exc:
            json.dump({"status": exc.status, **exc.body()}, sys.stderr, indent=2)
            print(file=sys.stderr)
            return 1
    json.dump({"status": outcome.status, **outcome.record}, sys.stdout, indent=2)
    print()
    return 0
