"""Both ways to serve the API, started for real on this machine: granian (`python -m rates serve`,
the container's command) and gunicorn from the rates folder (the original run instruction). Each
serves the API, and on SIGTERM exits 0 having written every access line, including those still
gathered in a worker's buffer."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.stack import DOCUMENTED_QUERY, ROOT, dotenv_password

SERVERS = {  # command, working folder, offset of its port from the stack's API port
    "granian": (lambda port: [sys.executable, "-m", "rates", "serve"], ROOT, 11),
    "gunicorn": (lambda port: ["gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "wsgi"], ROOT / "rates", 12),
}


def server_env(stack, tmp_path: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "RATES_ENV_FILE": "/dev/null",
        "WEB_BIND": f"127.0.0.1:{port}",
        "WEB_WORKERS": "2",
        "DB_HOST": "127.0.0.1",
        "DB_PORT": str(stack.db_port),
        "DB_PASSWORD": dotenv_password(),
        # Lines wait up to a minute in the buffer: only the flush at exit can write them in time.
        "LOG_ACCESS_FLUSH": "60",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "TMPDIR": str(tmp_path),  # where `serve` notes its URL for `healthcheck`
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }


@pytest.mark.parametrize("server", list(SERVERS))
def test_server_serves_and_flushes_buffered_access_lines_on_sigterm(stack, tmp_path, server):
    command, folder, offset = SERVERS[server]
    port = stack.api_port + 20 + offset
    env = server_env(stack, tmp_path, port)
    err = tmp_path / "server.log"
    proc = subprocess.Popen(command(port), cwd=folder, env=env,
                            stdout=subprocess.DEVNULL, stderr=err.open("w"))
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(base, proc, err)
        if server == "granian":  # the container's healthcheck probes the URL `serve` noted, no configuration
            assert (tmp_path / f"rates-serve-{os.getuid()}.url").read_text() == f"{base}\n"
            probe = subprocess.run([sys.executable, "-m", "rates", "healthcheck"], cwd=ROOT, timeout=30,
                                   env={**env, "WEB_BIND": "127.0.0.1:1"}, capture_output=True, text=True)
            assert probe.returncode == 0, probe.stderr
        ids = [f"{server.lower()}-{uuid.uuid4().hex}" for _ in range(6)]
        session = requests.Session()
        for request_id in ids:
            response = session.get(f"{base}/rates?{DOCUMENTED_QUERY}", headers={"X-Request-ID": request_id},
                                   timeout=10)
            assert response.status_code == 200 and len(response.json()["rates"]) == 31
            assert response.headers["X-Request-ID"] == request_id
        session.close()
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=60) == 0, err.read_text()[-3000:]
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 60 s after SIGTERM:\n{err.read_text()[-3000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    logged = {}
    for line in err.read_text().splitlines():
        if '"rates.access"' in line:
            entry = json.loads(line)  # whole lines: never two workers' lines interleaved
            logged[entry["request_id"]] = entry
    missing = [request_id for request_id in ids if request_id not in logged]
    assert not missing, f"access lines missing after SIGTERM: {missing}\n{err.read_text()[-3000:]}"
    assert all(logged[request_id]["status"] == 200 for request_id in ids)


def wait_for(base: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the server did not answer within 30 s"
        time.sleep(0.3)


def tgkill(pid: int, tid: int, signum: int) -> None:
    """Send a signal to one thread of another process (what the kernel may do by itself when a
    signal is sent to the process)."""
    number = {"x86_64": 234, "aarch64": 131}.get(os.uname().machine)
    if number is None:
        pytest.skip(f"tgkill's system call number is not known here ({os.uname().machine})")
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.syscall(number, pid, tid, signum) == 0, os.strerror(ctypes.get_errno())


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_a_granian_worker_stops_when_its_sigterm_lands_on_another_thread(stack, tmp_path):
    """The kernel may give a signal sent to a worker to any of its threads; granian's worker
    waits for it in the main thread. Sent to another thread, it must still stop the worker at
    once, its buffered access lines written (rates.serve.wake_main_thread_on_stop_signals)."""
    port = stack.api_port + 20 + 13
    env = server_env(stack, tmp_path, port)
    err = tmp_path / "server.log"
    proc = subprocess.Popen([sys.executable, "-m", "rates", "serve"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=err.open("w"))
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(base, proc, err)
        ids = [f"thread-{uuid.uuid4().hex}" for _ in range(4)]
        for request_id in ids:
            assert requests.get(f"{base}/rates?{DOCUMENTED_QUERY}", headers={"X-Request-ID": request_id},
                                timeout=10).status_code == 200
        workers = children(proc.pid)
        assert len(workers) == 2, workers
        for worker in workers:
            thread = next(int(t.name) for t in Path(f"/proc/{worker}/task").iterdir() if int(t.name) != worker)
            tgkill(worker, thread, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{worker}/status").exists() and "zombie" not in
                  Path(f"/proc/{worker}/status").read_text() for worker in workers):
            assert time.monotonic() < deadline, f"a worker ignored its SIGTERM for 10 s:\n{err.read_text()[-3000:]}"
            time.sleep(0.1)
        # granian starts new workers in their place: stop it once they are up (a SIGTERM that
        # meets a worker still booting can wait for the kill timeout, a race of its own).
        while err.read_text().count('"Started worker-') < 4:
            assert time.monotonic() < deadline + 30, f"no new workers:\n{err.read_text()[-3000:]}"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    logged = {json.loads(line).get("request_id") for line in err.read_text().splitlines() if '"rates.access"' in line}
    assert set(ids) <= logged, f"access lines lost:\n{err.read_text()[-3000:]}"
