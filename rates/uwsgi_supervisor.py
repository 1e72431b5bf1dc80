"""Runs uWSGI as a child and hands it SIGTERM only once it can stop gracefully.

uWSGI installs its graceful-stop handler (``--hook-master-start unix_signal:15
gracefully_kill_them_all``) when its master loop starts, and a graceful stop requested before
its workers accept connections leaves the master waiting for ever (measured with uWSGI 2.0.30:
SIGTERM or the master FIFO's ``q`` in the first half second of start-up). So this process stays
in front: uWSGI reports its first worker accepting by writing a file (``--hook-accepting1-once``);
a SIGTERM or SIGINT received before that waits for it, then goes to uWSGI, whose exit status
becomes this process's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

FORWARDED = (signal.SIGTERM, signal.SIGINT)


class UwsgiSupervisor:
    def __init__(self, command: list[str]) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="rates-uwsgi-"))
        self.ready_file = self.folder / "accepting"
        self.command = [*command, "--hook-accepting1-once", f"write:{self.ready_file} 1"]
        self.child: subprocess.Popen | None = None

    def run(self) -> int:
        for signum in FORWARDED:
            signal.signal(signum, self._on_signal)
        self.child = subprocess.Popen(self.command)  # noqa: S603 - our own command line
        try:
            code = self.child.wait()
        finally:
            self.ready_file.unlink(missing_ok=True)
            self.folder.rmdir()
        return code if code >= 0 else 128 - code  # killed by a signal: shell convention

    @property
    def ready(self) -> bool:
        return self.ready_file.exists()

    def _on_signal(self, signum: int, _frame: object) -> None:
        threading.Thread(target=self._forward_when_ready, args=(signum,), daemon=True).start()

    def _forward_when_ready(self, signum: int) -> None:
        child = self.child
        while child is not None and child.poll() is None and not self.ready:
            time.sleep(0.05)
        if child is not None and child.poll() is None:
            os.kill(child.pid, signum)


def run(command: list[str]) -> int:
    return UwsgiSupervisor(command).run()
