"""``python -m rates serve``: granian serving the WSGI app, in the foreground (the container's
command).

granian parses HTTP and waits on clients in Rust threads, so slow or idle keep-alive clients
hold no Python thread; WEB_THREADS application threads per worker run the app. On SIGTERM it
stops accepting, in-flight requests get WEB_GRACEFUL_TIMEOUT seconds, and it exits 0. granian
replaces this process, so signals reach it directly.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from rates.config import Settings, cpu_count
from rates.observability.logs import QUIET_LOGGERS


def prepare_metrics_dir() -> None:
    """Start with an empty multiprocess metrics folder: old workers' files would be summed."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder, exist_ok=True)


def logging_config(level: str) -> str:
    """A logging dictConfig file so that granian's own lines are JSON like the app's."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    config = {  # granian merges this over its own config: same handler and logger names
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "rates.observability.logs.JsonFormatter"}},
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


def main(settings: Settings) -> int:
    prepare_metrics_dir()
    command = granian_command(settings)
    executable = shutil.which(command[0]) or str(Path(sys.executable).parent / command[0])
    os.execv(executable, command)  # noqa: S606 - replaces this process: signals reach the server
    return 1  # pragma: no cover
