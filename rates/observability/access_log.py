"""The access log writer: one JSON line per request on stderr, gathered into few writes.

Every write(2) to the container's stderr wakes the container runtime, which copies the bytes
to the log driver: measured here, that costs more CPU than answering a cached request. Like
nginx's ``access_log ... buffer= flush=``, lines are gathered in memory and written together
when the buffer is full or ``LOG_ACCESS_FLUSH`` seconds after the first waiting line, and when
the worker exits. A buffer of 0 writes each line at once.

Each write holds whole lines and at most PIPE_BUF bytes (4096 on Linux), so it is atomic on a
pipe: the lines of several worker processes sharing stderr never interleave. A line longer
than that is written alone, as an unbuffered writer would. A worker killed with SIGKILL loses
at most the lines of its last ``LOG_ACCESS_FLUSH`` seconds; a graceful stop loses none.
"""

from __future__ import annotations

import atexit
import os
import select
import threading
import time
from multiprocessing import util as mp_util

PIPE_BUF = getattr(select, "PIPE_BUF", 4096)


class AccessLogWriter:
    """Thread-safe, fork-aware buffered writer of complete lines to a file descriptor."""

    def __init__(self, fd: int = 2, buffer_bytes: int = PIPE_BUF, flush_seconds: float = 1.0) -> None:
        self.fd = fd
        self.buffer_bytes = min(buffer_bytes, PIPE_BUF)
        self.flush_seconds = flush_seconds
        self._lines: list[bytes] = []
        self._size = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._owner_pid: int | None = None  # the process whose flusher thread is running
        os.register_at_fork(after_in_child=self._forget_parent)

    def _forget_parent(self) -> None:
        # A forked child starts with a free lock and no lines (those belong to the parent).
        self._lock = threading.Lock()
        self._lines = []
        self._size = 0
        self._owner_pid = None

    def write(self, line: bytes) -> None:
        """Queue one complete line (ending with a newline)."""
        if not self.buffer_bytes or len(line) > self.buffer_bytes:
            with self._lock:
                self._flush_locked()  # keep the order of lines
                self._write_all(line)
            return
        with self._lock:
            if self._owner_pid is None:  # first line of this process (reset after a fork)
                self._start_flusher()
            if self._size + len(line) > self.buffer_bytes:
                self._flush_locked()
            self._lines.append(line)
            self._size += len(line)
            if len(self._lines) == 1:
                self._wake.set()  # the flusher times this line's wait

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if self._lines:
            data = b"".join(self._lines)
            self._lines.clear()
            self._size = 0
            self._write_all(data)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.fd, view)
            except InterruptedError:  # pragma: no cover - retried by Python since PEP 475
                continue
            except OSError:
                return  # stderr closed: nowhere to log to, and a request must not fail for it
            view = view[written:]

    def _start_flusher(self) -> None:
        # First line in this process (workers are forked or spawned after import): the thread
        # and the exit hooks belong to the process that writes.
        self._owner_pid = os.getpid()
        self._wake = threading.Event()
        threading.Thread(target=self._flush_periodically, name="access-log-flush", daemon=True).start()
        atexit.register(self.flush)  # interpreter exit (gunicorn workers, spawned processes)
        mp_util.Finalize(self, self.flush, exitpriority=100)  # forked multiprocessing workers (granian)

    def _flush_periodically(self) -> None:
        pid = os.getpid()
        while self._owner_pid == pid:
            self._wake.wait()
            self._wake.clear()
            time.sleep(self.flush_seconds)  # a line waits at most this long
            self.flush()
