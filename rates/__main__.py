"""Command line: ``python -m rates COMMAND``.

  migrate      create the database if needed, load the dump once (psql), apply migrations
  config       check the configuration and print every setting (secrets masked)
  healthcheck  exit 0 when the local API answers /healthz (container HEALTHCHECK)
  serve        run the HTTP server (granian)
  ingest       load a batch of prices from a file, through the same code as POST /batches
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from rates.errors import ServiceError
from rates.observability.logs import configure_logging

if TYPE_CHECKING:
    from rates.config import Settings

log = logging.getLogger("rates")
TYPES = {".csv": "text/csv", ".ndjson": "application/x-ndjson", ".jsonl": "application/x-ndjson",
         ".json": "application/json"}
# `serve` notes here the URL it serves, so that `healthcheck` (the container's, every 5 s) loads
# no configuration: importing rates.config (pydantic) costs three times the probe itself.
SERVE_URL_FILE = Path(tempfile.gettempdir()) / f"rates-serve-{os.getuid()}.url"


def load_settings() -> Settings:
    """The configuration, imported on first use (see SERVE_URL_FILE)."""
    from rates import config

    return config.get()


def cmd_migrate(_: argparse.Namespace) -> int:
    from rates.db import migrate

    settings = load_settings()
    configure_logging(settings.LOG_LEVEL)
    try:
        migrate.run(settings)
    except migrate.MigrationError as exc:
        returncode = getattr(exc.__cause__, "returncode", None)
        extra = {} if returncode is None else {"psql_exit_code": returncode}
        log.error("migration failed: %s", exc, extra=extra)
        return 1
    return 0


def cmd_config(_: argparse.Namespace) -> int:
    json.dump(load_settings().redacted(), sys.stdout, indent=2, default=str)
    print()
    return 0


def cmd_healthcheck(args: argparse.Namespace) -> int:
    try:
        url = SERVE_URL_FILE.read_text(encoding="utf-8").strip() + args.path
    except OSError:  # no server started by `serve` here: ask the configuration
        url = f"http://127.0.0.1:{load_settings().WEB_BIND.rsplit(':', 1)[-1]}{args.path}"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:  # noqa: S310 - loopback http
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1


def cmd_serve(_: argparse.Namespace) -> int:
    from rates import serve

    current = load_settings()
    try:
        SERVE_URL_FILE.write_text(f"http://127.0.0.1:{current.WEB_BIND.rsplit(':', 1)[-1]}\n", encoding="utf-8")
    except OSError as exc:  # the healthcheck then loads the configuration itself
        log.warning("cannot write %s: %s", SERVE_URL_FILE, exc.strerror)
    return serve.main(current)


def infer_type(name: str) -> tuple[str | None, str | None]:
    """(content type, content encoding) from a file name such as prices.csv.gz."""
    base, encoding = name.lower(), None
    if base.endswith(".gz"):
        base, encoding = base[:-3], "gzip"
    return next((t for ext, t in TYPES.items() if base.endswith(ext)), None), encoding


def cmd_ingest(args: argparse.Namespace) -> int:
    """One batch, straight to the database (DB_* settings: no bearer token needed). Prints the
    batch record and exits 0 (committed now, or before with the same content), or prints the
    error body on stderr and exits 1."""
    from rates.components import Components

    settings = load_settings()
    configure_logging(settings.LOG_LEVEL)
    content_type, encoding = infer_type(args.filename or (args.file if args.file != "-" else ""))
    content_type, encoding = args.content_type or content_type, args.content_encoding or encoding
    if content_type is None:
        print("ingest: cannot tell the format from the name; pass --content-type", file=sys.stderr)
        return 1
    components = Components.build(settings)
    with ExitStack() as stack:
        stack.callback(components.close)
        stream: BinaryIO = sys.stdin.buffer
        length = None
        if args.file != "-":
            try:
                stream = stack.enter_context(open(args.file, "rb"))  # noqa: SIM115 - closed by the stack
            except OSError as exc:
                print(f"ingest: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
                return 1
            length = os.fstat(stream.fileno()).st_size
        try:
            outcome = components.ingestor.ingest(
                stream, key=args.key, content_type=content_type, content_encoding=encoding, content_length=length)
        except ServiceError as exc:
            print(json.dumps({"status": exc.status, **exc.body()}, indent=2), file=sys.stderr)
            return 1
    print(json.dumps({"status": outcome.status, **outcome.record}, indent=2))
    return 0


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rates", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create the database, load the dump once, apply migrations").set_defaults(
        func=cmd_migrate)
    sub.add_parser("config", help="print the effective settings").set_defaults(func=cmd_config)
    hc = sub.add_parser("healthcheck", help="probe the local API")
    hc.add_argument("--path", default="/healthz")
    hc.add_argument("--timeout", type=float, default=3.0)
    hc.set_defaults(func=cmd_healthcheck)
    sub.add_parser("serve", help="run the HTTP server (granian)").set_defaults(func=cmd_serve)
    ing = sub.add_parser("ingest", help="load a batch of prices (CSV, NDJSON, JSON; .gz) like POST /batches")
    ing.add_argument("file", help="the batch file, or - for standard input")
    ing.add_argument("--key", required=True, help="the batch's idempotency key (the Idempotency-Key header)")
    ing.add_argument("--content-type", help="text/csv, application/x-ndjson or application/json (default: by name)")
    ing.add_argument("--content-encoding", choices=["gzip", "identity"], help="default: gzip for a name ending in .gz")
    ing.add_argument("--filename", help="name to take the type from when FILE is - (standard input)")
    ing.set_defaults(func=cmd_ingest)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:
        from rates.config import ConfigError  # loaded already when it is one

        if not isinstance(exc, ConfigError):
            raise
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
