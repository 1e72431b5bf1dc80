"""`gunicorn -b :PORT wsgi` run from the rates folder still serves the API, as it always did."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.inflight import requests_in_flight
from tests.stack import DOCUMENTED_QUERY, ROOT, dotenv_password


def test_gunicorn_from_the_rates_folder(stack, tmp_path):
    port = stack.api_port + 10
    env = {
        **os.environ,
        "DB_HOST": "127.0.0.1",
        "DB_PORT": str(stack.db_port),
        "DB_PASSWORD": dotenv_password(),
        "DB_STATEMENT_TIMEOUT_MS": "30000",  # the held requests wait on a lock meanwhile
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    log = (tmp_path / "gunicorn.log").open("w")
    # -w 4: sync workers serve one request each, and three are held in flight below.
    proc = subprocess.Popen(["gunicorn", "-w", "4", "-b", f"127.0.0.1:{port}", "wsgi"], cwd=ROOT / "rates", env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/rates?{DOCUMENTED_QUERY}", timeout=5)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, (tmp_path / "gunicorn.log").read_text()
                assert time.monotonic() < deadline, "gunicorn did not start within 30 s"
                time.sleep(0.3)
        assert response.status_code == 200
        assert len(response.json()["rates"]) == 31

        # SIGTERM with requests in flight: they complete, new connections are refused, exit 0.
        # At least one held in the database; a worker may have accepted the others and queued them.
        with requests_in_flight(stack.conninfo(), f"http://127.0.0.1:{port}", count=3, min_waiting=1) as results:
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert not_served(port), "a request sent after SIGTERM was served"
        assert proc.wait(timeout=40) == 0, (tmp_path / "gunicorn.log").read_text()
        assert [r[0] if isinstance(r, tuple) else r for r in results] == [200, 200, 200]
    finally:
        if proc.poll() is None:
            proc.kill()


def not_served(port: int) -> bool:
    """gunicorn closes its listener at once; busy workers still hold theirs until they exit, so
    a new connection is either refused or left unanswered, never served."""
    try:
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
    except (requests.ConnectionError, requests.Timeout):
        return True
    return False


def test_bad_configuration_stops_start_up_naming_the_variable(tmp_path):
    env = {**os.environ, "WEB_WORKERS": "many", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(["gunicorn", "-b", "127.0.0.1:0", "wsgi"], cwd=ROOT / "rates", env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "WEB_WORKERS: expected an integer, got 'many'" in proc.stderr
