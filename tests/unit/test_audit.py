"""`make audit` (scripts/audit.py) where no advisory source answers: one line saying the
dependencies were not audited and exit 0, or, with --require-source (CI), an error. The
sources are made unreachable for real: every HTTPS request goes to a proxy that is not there."""

from __future__ import annotations

import os
import subprocess
import sys

from rates.config import PROJECT_DIR


def audit(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "NO_PROXY": ""}
    return subprocess.run([sys.executable, str(PROJECT_DIR / "scripts" / "audit.py"), *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_no_advisory_source_is_one_line_and_no_failure():
    proc = audit()
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("audit: NOT AUDITED, no advisory source reachable from here (")
    assert "pypi.org" in lines[0] and "api.osv.dev" in lines[0]


def test_ci_makes_an_unreachable_source_an_error():
    proc = audit("--require-source")
    assert proc.returncode == 2 and "NOT AUDITED" in proc.stderr
