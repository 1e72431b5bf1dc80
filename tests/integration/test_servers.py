"""Both ways to serve the API, started for real on this machine: granian (`python -m rates serve`,
the container's command) and gunicorn from the rates folder (the original run instruction). Each
serves the API, and on SIGTERM exits 0 having written every access line, including those still
gathered in a worker's buffer."""

from __future__ import annotations

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


@pytest.mark.parametrize("server", list(SERVERS))
def test_server_serves_and_flushes_buffered_access_lines_on_sigterm(stack, tmp_path, server):
    command, folder, offset = SERVERS[server]
    port = stack.api_port + 20 + offset
    env = {
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
