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
import signal
import sys
import tempfile
import threading
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


def wake_main_thread_on_stop_signals() -> None:
    """In a granian worker: make a stop signal (SIGTERM, SIGINT) run its handler whichever
    thread the kernel gives it to.

    granian's WSGI worker waits for its stop in the main thread, blocked on a lock, and Python
    runs signal handlers in the main thread only, when it runs. The kernel delivers a signal
    sent to the process to any thread that does not block it: given to one of granian's Rust
    threads or a pool thread, the handler waits for a main thread that never wakes, so the
    worker ignores the stop and is killed after WEB_GRACEFUL_TIMEOUT, losing its buffered access
    lines (tests/integration/test_servers.py sends SIGTERM to such a thread). Python's C-level
    handler writes each signal's number to the wakeup fd, from any thread: a daemon thread reads
    it and interrupts the main thread with SIGURG (a handler that does nothing), and the main
    thread then runs the stop signal's pending handler. A handler that already ran does not run
    again (granian's stop channel holds one message: a second would block its worker).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.signal(signal.SIGURG, lambda signum, frame: None)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    main = threading.main_thread().ident

    def wake() -> None:
        while True:
            if {signal.SIGTERM, signal.SIGINT} & set(os.read(read_end, 64)):
                signal.pthread_kill(main, signal.SIGURG)

    threading.Thread(target=wake, name="stop-signal-wake", daemon=True).start()


def main(settings: Settings) -> int:
    prepare_metrics_dir()
    command = granian_command(settings)
    executable = shutil.which(command[0]) or str(Path(sys.executable).parent / command[0])
    os.execv(executable, command)  # noqa: S606 - replaces this process: signals reach the server
    return 1  # pragma: no cover
