#!/usr/bin/env python3
"""`make audit`: pip-audit the locked dependencies (rates/requirements.txt, tests/requirements.txt)
against known vulnerabilities.

pip-audit reads the pinned versions straight from the lock files (no pip, no install). It asks an
advisory source: PyPI's JSON API (per-version pages with their "vulnerabilities"), else OSV. When
neither answers here (no network, or a mirror that serves package pages without advisories), one
line says so and the exit status is 0: not audited, said so, not a silent pass.
`--require-source` (CI) makes that an error instead. Any vulnerability found: pip-audit's report,
exit status 1.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
LOCKS = [ROOT / "rates" / "requirements.txt", ROOT / "tests" / "requirements.txt"]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^ ;\\]+)", re.M)
TIMEOUT = 10


def a_pin() -> tuple[str, str]:
    """A package and version of the service's lock, to ask the advisory sources about."""
    match = PIN.search(LOCKS[0].read_text())
    assert match, f"no pinned package in {LOCKS[0]}"
    return match.group(1), match.group(2)


def reachable_source() -> tuple[str | None, str]:
    """The advisory source that answers ("pypi" or "osv"), or None and why neither does."""
    name, version = a_pin()
    reasons = []
    url = f"https://pypi.org/pypi/{name}/{version}/json"
    try:
        response = requests.get(url, timeout=TIMEOUT)
        if response.status_code == 200 and "vulnerabilities" in response.json():
            return "pypi", ""
        reasons.append(f"{url}: HTTP {response.status_code}, no advisories")
    except (requests.RequestException, ValueError) as exc:
        reasons.append(f"{url}: {type(exc).__name__}")
    url = "https://api.osv.dev/v1/query"
    try:
        response = requests.post(url, json={"package": {"name": name, "ecosystem": "PyPI"}, "version": version},
                                 timeout=TIMEOUT)
        if response.status_code == 200:
            return "osv", ""
        reasons.append(f"{url}: HTTP {response.status_code}")
    except requests.RequestException as exc:
        reasons.append(f"{url}: {type(exc).__name__}")
    return None, "; ".join(reasons)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--require-source", action="store_true", help="an unreachable advisory source is an error")
    args = parser.parse_args()
    source, why = reachable_source()
    if source is None:
        print(f"audit: NOT AUDITED, no advisory source reachable from here ({why})",
              file=sys.stderr if args.require_source else sys.stdout)
        return 2 if args.require_source else 0
    command = [str(Path(sys.executable).parent / "pip-audit"), "--disable-pip", "--strict", "--progress-spinner", "off",
               "--vulnerability-service", source, *(arg for lock in LOCKS for arg in ("-r", str(lock)))]
    print(f"audit: {' '.join(command[1:])}")
    return subprocess.run(command, cwd=ROOT, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
