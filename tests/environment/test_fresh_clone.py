"""A second clone on a machine set up once: `make up` works there with no .env and no image
variables, using the official base images or, without a registry, this machine's stand-ins."""

from __future__ import annotations

import os
import stat
import subprocess

from dotenv import dotenv_values

from tests.stack import DOCUMENTED_QUERY, ROOT, Stack, run

STAND_INS = {"POSTGRES_IMAGE": "rates-local/postgres:13-bullseye", "PYTHON_IMAGE": "rates-local/python:3.11-bookworm"}
OFFICIAL = {"POSTGRES_IMAGE": "postgres:13.5", "PYTHON_IMAGE": "python:3.11-slim-bookworm"}


def image_exists(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0


def test_make_up_in_a_fresh_clone(tmp_path):
    clone = tmp_path / "rates"
    run(["git", "clone", "--quiet", str(ROOT), str(clone)])
    assert not (clone / ".env").exists()
    # Its own copy of the stack and its own API image tag (the clone's build must not replace
    # the image the session's stack runs); nothing of the caller's image settings.
    other = Stack(f"{os.environ.get('RATES_TEST_PROJECT', 'rates-test')}-clone",
                  api_port=int(os.environ.get("RATES_TEST_API_PORT", "3180")) + 4,
                  db_port=int(os.environ.get("RATES_TEST_DB_PORT", "5480")) + 4,
                  extra_env={"API_IMAGE": f"{os.environ.get('API_IMAGE', 'rates-api:dev')}-clone"})
    env = {k: v for k, v in other.env.items() if k not in ("POSTGRES_IMAGE", "PYTHON_IMAGE")}
    try:
        proc = subprocess.run(["make", "up"], cwd=clone, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        response = other.get(f"/rates?{DOCUMENTED_QUERY}")
        assert response.status_code == 200 and len(response.json()["rates"]) == 31
        official_here = all(image_exists(image) for image in OFFICIAL.values())  # present, or pulled
    finally:
        subprocess.run(["docker", "compose", "down", "--volumes", "--remove-orphans"], cwd=clone, env=env,
                       capture_output=True)
        subprocess.run(["docker", "image", "rm", other.extra_env["API_IMAGE"]], capture_output=True)
    env_file = clone / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = dotenv_values(env_file)
    if not official_here:  # no registry on this machine: the clone uses and records the stand-ins
        assert {key: values.get(key) for key in STAND_INS} == STAND_INS
        assert "# Local stand-ins of the official base images" in env_file.read_text()
        assert "using the local stand-in" in proc.stdout
