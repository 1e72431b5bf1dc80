"""`gunicorn -b :PORT wsgi` run from the rates folder still serves the API, as it always did."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.stack import DOCUMENTED_QUERY, ROOT, dotenv_password


def test_gunicorn_from_the_rates_folder(stack, tmp_path):
    port = stack.api_port + 10
    env = {
        **os.environ,
        "DB_HOST": "127.0.0.1",
        "DB_PORT": str(stack.db_port),
        "DB_PASSWORD": dotenv_password(),
        "WEB_WORKERS": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    log = (tmp_path / "gunicorn.log").open("w")
    proc = subprocess.Popen(["gunicorn", "-b", f"127.0.0.1:{port}", "wsgi"], cwd=ROOT / "rates", env=env,
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
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0, (tmp_path / "gunicorn.log").read_text()


def test_bad_configuration_stops_start_up_naming_the_variable(tmp_path):
    env = {**os.environ, "WEB_WORKERS": "many", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(["gunicorn", "-b", "127.0.0.1:0", "wsgi"], cwd=ROOT / "rates", env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "WEB_WORKERS: expected an integer, got 'many'" in proc.stderr
