#!/usr/bin/env python3
"""Benchmark of the environment (a script printing figures, not a test).

Measures on this machine, in one run, with a throw-away compose project:
  1. the first build of the API image (no layer cache, base image present);
  2. `make up` from a wiped volume with the image built (db init + dump load + API healthy);
  3. `make up` again on the running stack (nothing to do);
  4. baseline: `docker compose up --wait db` alone from a wiped volume (the database's own start);
and prints the sizes of the API image and of the migrate image (the API's plus psql).
Target: (2) <= 20 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "COMPOSE_PROJECT_NAME": "rates-bench", "API_PORT": "3190", "DB_PUBLISH_PORT": "5490"}


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, cwd=ROOT, env=ENV, check=True, capture_output=True, text=True).stdout


def timed(*cmd: str) -> float:
    started = time.perf_counter()
    sh(*cmd)
    return time.perf_counter() - started


def wipe() -> None:
    sh("docker", "compose", "down", "--volumes", "--remove-orphans")


def main() -> int:
    sh("scripts/init-env")
    sh("scripts/stage-build-ca")
    services = json.loads(sh("docker", "compose", "config", "--format", "json"))["services"]
    images = {name: services[name]["image"] for name in ("api", "migrate")}
    figures: list[tuple[str, float]] = []
    try:
        wipe()
        build = timed("docker", "compose", "build", "--no-cache", "api")
        figures.append(("first build of the API image (--no-cache)", build))
        figures.append(("first build of the migrate image (--no-cache)",
                        timed("docker", "compose", "build", "--no-cache", "migrate")))
        db_alone = timed("docker", "compose", "up", "-d", "--wait", "db")
        figures.append(("baseline: db alone from an empty volume", db_alone))
        wipe()
        figures.append(("make up, image built, empty volume", timed("scripts/up")))
        figures.append(("make up again, stack running", timed("scripts/up")))
        sh("docker", "compose", "down")
        figures.append(("make up, image built, volume kept", timed("scripts/up")))
    finally:
        wipe()
    sizes = {name: int(sh("docker", "image", "inspect", "--format", "{{.Size}}", image))
             for name, image in images.items()}
    baseline = figures[2][1]
    print(f"{'measure':<45} {'seconds':>8} {'x baseline':>11}")
    for name, seconds in figures:
        print(f"{name:<45} {seconds:8.1f} {seconds / baseline:11.2f}")
    for name, image in images.items():
        print(f"{name} image {image}: {sizes[name] / 1e6:.0f} MB")
    up = figures[3][1]
    print(f"target make up <= 20 s: {'met' if up <= 20 else 'MISSED'} ({up:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
