"""Command line: ``python -m rates COMMAND``.

  migrate         create the database if needed, load the dump once, apply migrations
  generate-dump   write the project's generated dump (see rates.dumpgen)
  config          check the configuration and print every setting (secrets masked)
  healthcheck     exit 0 when the local API answers /healthz (container HEALTHCHECK)
  serve           run the HTTP server named by WEB_SERVER (uWSGI, granian or gunicorn)
  ingest          load a batch of prices from a file, like POST /batches
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import urllib.request

from rates import config
from rates.logs import configure_logging

log = logging.getLogger("rates")


def cmd_migrate(_: argparse.Namespace) -> int:
    from rates import migrate, sqldump

    settings = config.get()
    configure_logging(settings.LOG_LEVEL)
    try:
        migrate.run(settings)
    except (migrate.MigrationError, sqldump.DumpError) as exc:
        log.error("migration failed: %s", exc)
        return 1
    return 0


def cmd_generate_dump(args: argparse.Namespace) -> int:
    from rates import dumpgen

    return dumpgen.main(args.rest) or 0


def cmd_config(_: argparse.Namespace) -> int:
    settings = config.get()
    json.dump(settings.redacted(), sys.stdout, indent=2, default=str)
    print()
    return 0


def cmd_healthcheck(args: argparse.Namespace) -> int:
    port = config.get().WEB_BIND.rsplit(":", 1)[-1]
    url = f"http://127.0.0.1:{port}{args.path}"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1


def cmd_serve(_: argparse.Namespace) -> int:
    from rates import serve

    return serve.main(config.get())


def cmd_ingest(args: argparse.Namespace) -> int:
    from rates.batches import cli

    return cli.run(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rates", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create the database, load the dump once, apply migrations").set_defaults(
        func=cmd_migrate
    )
    gen = sub.add_parser("generate-dump", help="write the generated dump", add_help=False)
    gen.add_argument("rest", nargs=argparse.REMAINDER)
    gen.set_defaults(func=cmd_generate_dump)
    sub.add_parser("config", help="print the effective settings").set_defaults(func=cmd_config)
    hc = sub.add_parser("healthcheck", help="probe the local API")
    hc.add_argument("--path", default="/healthz")
    hc.add_argument("--timeout", type=float, default=3.0)
    hc.set_defaults(func=cmd_healthcheck)
    sub.add_parser("serve", help="run the HTTP server (WEB_SERVER)").set_defaults(func=cmd_serve)
    ing = sub.add_parser("ingest", help="load a batch of prices (CSV, NDJSON, JSON; .gz) like POST /batches")
    ing.add_argument("file", help="the batch file, or - for standard input")
    ing.add_argument("--key", required=True, help="the batch's idempotency key (the Idempotency-Key header)")
    ing.add_argument("--content-type", help="text/csv, application/x-ndjson or application/json (default: by name)")
    ing.add_argument("--content-encoding", choices=["gzip", "identity"], help="default: gzip for a name ending in .gz")
    ing.add_argument("--filename", help="name to take the type from when FILE is - (standard input)")
    ing.set_defaults(func=cmd_ingest)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except config.ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
