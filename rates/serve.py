"""``python -m rates serve``: start the HTTP server the configuration names, in the foreground.

granian (the default) serves the WSGI app from Rust threads: HTTP parsing and waiting on
clients cost no Python thread, so slow or idle keep-alive clients hold nothing. uWSGI
(WEB_SERVER=UWSGI) parses HTTP in C and runs each request start to end on the thread that
accepted it, which costs about a fifth less CPU per cached request, but a thread stays with its
connection while the client is idle: it belongs behind a proxy that bounds connections
(docs/read-path-performance.md). gunicorn (WEB_SERVER=GUNICORN, or `gunicorn -b :3000 wsgi`
from the rates folder) is the original pre-fork server.
All stop gracefully on SIGTERM: no new connection is accepted and in-flight requests get
WEB_GRACEFUL_TIMEOUT seconds to finish; the process then exits 0. granian and gunicorn replace
this process; uWSGI runs under rates.uwsgi_supervisor, which hands it the signal safely.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from rates import uwsgi_supervisor
from rates.config import Settings, cpu_count
from rates.logs import QUIET_LOGGERS

PACKAGE_DIR = Path(__file__).resolve().parent


def prepare_metrics_dir() -> None:
    """Start with an empty multiprocess metrics folder: old workers' files would be summed."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder, exist_ok=True)


def logging_config(level: str) -> str:
    """A logging dictConfig file so that the server's own lines are JSON like the app's."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    config = {  # granian merges this over its own config: same handler and logger names
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "rates.logs.JsonFormatter"}},
        "handlers": {"console": handler, "access": handler},
        "loggers": {
            "_granian": {"handlers": ["console"], "level": level, "propagate": False},
            "granian.access": {"handlers": ["access"], "level": level, "propagate": False},
            **{name: {"level": quiet} for name, quiet in QUIET_LOGGERS.items()},
        },
        "root": {"handlers": ["console"], "level": level},
    }
    fd, path = tempfile.mkstemp(prefix="rates-logging-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(config, fh)
    return path


def granian_command(s: Settings) -> list[str]:
    host, _, port = s.WEB_BIND.rpartition(":")
    return [
        "granian", "--interface", "wsgi", "--no-ws",
        "--host", host or "0.0.0.0", "--port", port,  # noqa: S104 - inside a container
        "--workers", str(s.WEB_WORKERS or cpu_count()),
        "--blocking-threads", str(s.WEB_THREADS),
        # On SIGTERM, in-flight requests get this long before the workers are killed.
        "--workers-kill-timeout", str(s.WEB_GRACEFUL_TIMEOUT),
        "--http1-keep-alive" if s.WEB_KEEPALIVE else "--no-http1-keep-alive",
        "--respawn-failed-workers",
        "--log-level", s.LOG_LEVEL.lower(),
        "--log-config", logging_config(s.LOG_LEVEL),
        "rates.wsgi:application",
    ]


def listen_backlog(wanted: int = 1024) -> int:
    """The accept queue for bursts, within the kernel's cap (uWSGI refuses to start above it)."""
    try:
        cap = int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        return 128
    return max(1, min(wanted, cap))


def uwsgi_command(s: Settings) -> list[str]:
    host, _, port = s.WEB_BIND.rpartition(":")
    return [
        "uwsgi", "--strict",  # an unknown option is an error, not a warning
        # HTTP/1.1 with keep-alive when WEB_KEEPALIVE > 0, straight to the workers (no router).
        "--http11-socket" if s.WEB_KEEPALIVE else "--http-socket", f"{host or '0.0.0.0'}:{port}",  # noqa: S104
        "--http-chunked-input",  # chunked request bodies (POST /batches) reach the app as a stream
        "--chunked-input-limit", str(8 * 1024 * 1024),  # largest single chunk of such a body
        "--listen", str(listen_backlog()),
        "--master", "--processes", str(s.WEB_WORKERS or cpu_count()), "--threads", str(s.WEB_THREADS),
        "--enable-threads",  # the pools' and the access log's background threads run
        # The app is imported once, in the master, before the workers are forked (no
        # --lazy-apps): workers accept as soon as they exist and share the imported code.
        # Database pools open lazily, so each worker opens its own.
        "--single-interpreter", "--need-app",  # fail at start if the app cannot be imported
        "--thunder-lock",  # one worker at a time waits in accept(): no wake-up of all on each connection
        "--socket-timeout", str(s.WEB_TIMEOUT),  # a client read or write blocks at most this long
        "--buffer-size", "65535",  # request line and headers (the most uWSGI allows)
        # SIGTERM: stop accepting, let in-flight requests finish, then exit 0 (delivered by
        # rates.uwsgi_supervisor once uWSGI can act on it).
        "--hook-master-start", "unix_signal:15 gracefully_kill_them_all",
        "--worker-reload-mercy", str(s.WEB_GRACEFUL_TIMEOUT), "--reload-mercy", str(s.WEB_GRACEFUL_TIMEOUT),
        "--no-orphans",
        # One access line per request comes from rates.middleware. No --log-encoder: it would
        # route every worker's stderr through the master, a copy per line; uWSGI's own few
        # lifecycle lines (start-up, worker spawns, shutdown) stay plain text.
        "--disable-logging",
        "--module", "rates.wsgi:application",
    ]


def gunicorn_command(s: Settings) -> list[str]:
    return ["gunicorn", "-c", str(PACKAGE_DIR / "gunicorn.conf.py"), "rates.wsgi"]


def main(settings: Settings) -> int:
    prepare_metrics_dir()
    command = {"UWSGI": uwsgi_command, "GRANIAN": granian_command, "GUNICORN": gunicorn_command}[
        settings.WEB_SERVER](settings)
    executable = shutil.which(command[0]) or str(Path(sys.executable).parent / command[0])
    if settings.WEB_SERVER == "UWSGI":
        return uwsgi_supervisor.run([executable, *command[1:]])
    os.execv(executable, command)  # noqa: S606 - replaces this process: signals reach the server
    return 1  # pragma: no cover
