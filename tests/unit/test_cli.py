"""python -m rates: the command line's own logic, and how it stops on a bad configuration."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rates.__main__ import infer_type

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("prices.csv", ("text/csv", None)),
        ("data/Prices.CSV.gz", ("text/csv", "gzip")),
        ("p.ndjson", ("application/x-ndjson", None)),
        ("p.jsonl.gz", ("application/x-ndjson", "gzip")),
        ("p.json", ("application/json", None)),
        ("p.txt", (None, None)),
        ("", (None, None)),
    ],
)
def test_cli_infers_the_type_from_the_file_name(name, expected):
    assert infer_type(name) == expected


def run_python(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter in an empty folder (no .env), with only the given settings."""
    environ = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "RATES_SECRETS_DIR": str(tmp_path), **env}
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=environ, capture_output=True, text=True,
                          timeout=60)


def test_config_command_prints_the_settings_with_secrets_masked(tmp_path):
    proc = run_python(tmp_path, "-m", "rates", "config", DB_PASSWORD="hunter2", WEB_KEEPALIVE="off")
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert (printed["DB_PASSWORD"], printed["WEB_KEEPALIVE"], printed["DB_PORT"]) == ("***", False, 5432)


@pytest.mark.parametrize("args", [["-m", "rates", "config"], ["-m", "rates", "serve"], ["rates/wsgi.py"]])
def test_bad_configuration_stops_start_up_with_one_line_naming_the_variable(tmp_path, args):
    args = [str(ROOT / args[0]), *args[1:]] if args[0].endswith(".py") else args
    proc = run_python(tmp_path, *args, DB_PORT="five")
    assert proc.returncode in (2, 3)
    assert proc.stderr.strip().splitlines()[-1] == "configuration error: DB_PORT: expected an integer, got 'five'"


@pytest.fixture()
def healthz_server():
    """A local HTTP server answering 200 on /healthz; its port."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


PROBE = "import sys; from rates.__main__ import main; print(main(['healthcheck']), 'rates.config' in sys.modules)"


def test_healthcheck_probes_the_url_serve_noted_without_loading_the_configuration(tmp_path, healthz_server):
    (tmp_path / f"rates-serve-{os.getuid()}.url").write_text(f"http://127.0.0.1:{healthz_server}\n")
    proc = run_python(tmp_path, "-c", PROBE, TMPDIR=str(tmp_path), WEB_BIND="127.0.0.1:1")
    assert proc.stdout.split() == ["0", "False"], proc.stderr


def test_healthcheck_without_serve_asks_the_configuration(tmp_path, healthz_server):
    proc = run_python(tmp_path, "-c", PROBE, TMPDIR=str(tmp_path), WEB_BIND=f"127.0.0.1:{healthz_server}")
    assert proc.stdout.split() == ["0", "True"], proc.stderr
    proc = run_python(tmp_path, "-m", "rates", "healthcheck", TMPDIR=str(tmp_path), WEB_BIND="127.0.0.1:1")
    assert proc.returncode == 1 and "healthcheck: http://127.0.0.1:1/healthz" in proc.stderr
