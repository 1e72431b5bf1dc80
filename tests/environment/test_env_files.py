""".env has one writer (scripts/init-env) and two readers that must agree: Compose, which consumes
it for the stack, and python-dotenv, through which rates.config and the tests read it.
scripts/base-images, shared by `make up` and `make bootstrap`, stops with one clear line when
there is no base image to use."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from dotenv import dotenv_values

from tests.stack import ROOT

TRICKY = """\
# a comment line, then an empty one

export EXPORTED=yes
SPACED = value with spaces
TRAILING=value # a comment after a space
HASH=value#not-a-comment
SINGLE='single # quoted'
DOUBLE="double \\"escaped\\" # quoted"
PADDED='  padded  '
EMPTY=
EMPTY_QUOTED=""
EQUALS=a=b=c
  INDENTED=ok
URL=postgres://u:p@h:5432/db?sslmode=require
DOLLAR='$NOT_EXPANDED'
EXPANDED=${EXPORTED}-x
"""


def bare_env(**extra: str) -> dict[str, str]:
    """An environment with nothing of the caller's settings: only what finds docker."""
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **extra}


def compose_reads(env_file: Path) -> dict[str, str]:
    """What Compose reads from ``env_file``, without the variables it adds itself."""
    def environment(path: Path) -> dict[str, str]:
        out = subprocess.run(["docker", "compose", "--env-file", str(path), "config", "--environment"], cwd=ROOT,
                             env=bare_env(), capture_output=True, text=True, check=True).stdout
        return dict(line.split("=", 1) for line in out.splitlines())

    empty = env_file.with_name("empty.env")
    empty.write_text("")
    baseline = environment(empty)
    return {k: v for k, v in environment(env_file).items()
            if not k.startswith("DOCKER_CLI_PLUGIN_") and (k not in baseline or baseline[k] != v)}


@pytest.mark.parametrize("source", ["the project's .env.example", "a .env with tricky lines"])
def test_python_dotenv_and_compose_read_the_same_values(tmp_path, source):
    env_file = tmp_path / "test.env"
    if source.startswith("the project"):
        shutil.copy(ROOT / ".env.example", env_file)
    else:
        env_file.write_text(TRICKY)
    python_reads = dotenv_values(env_file)
    assert python_reads, "nothing read"
    assert compose_reads(env_file) == python_reads
    if source.startswith("a .env"):  # the readers agree on what the lines mean, too
        assert python_reads["SPACED"] == "value with spaces" and python_reads["TRAILING"] == "value"
        assert python_reads["DOUBLE"] == 'double "escaped" # quoted' and python_reads["DOLLAR"] == "$NOT_EXPANDED"


@pytest.fixture()
def checkout(tmp_path) -> Path:
    """The files scripts/init-env and scripts/base-images work on, in a folder of their own."""
    for name in ("compose.yaml", ".env.example", "scripts/init-env", "scripts/base-images", "db/rates.sql"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    return tmp_path


def init_env(checkout: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(checkout / "scripts" / "init-env"), *args], env=bare_env(), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_init_env_creates_a_private_env_with_random_secrets(checkout):
    init_env(checkout)
    env_file = checkout / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = dotenv_values(env_file)
    assert len(values["POSTGRES_PASSWORD"]) == 32 and len(values["INGEST_TOKEN"]) == 64
    assert compose_reads(env_file) == values
    first = env_file.read_text()
    assert "left as it is" in init_env(checkout).stdout  # a second run changes nothing
    assert env_file.read_text() == first


def test_init_env_completes_an_older_env_and_keeps_what_is_there(checkout):
    env_file = checkout / ".env"
    env_file.write_text("# mine\nexport POSTGRES_PASSWORD='kept secret'\nAPI_PORT=3999 # my port\n")
    env_file.chmod(0o644)
    out = init_env(checkout).stdout
    assert "appended a random INGEST_TOKEN" in out
    values = dotenv_values(env_file)
    assert (values["POSTGRES_PASSWORD"], values["API_PORT"], len(values["INGEST_TOKEN"])) == ("kept secret", "3999", 64)
    assert env_file.read_text().startswith("# mine\nexport POSTGRES_PASSWORD='kept secret'\nAPI_PORT=3999 # my port\n")
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600

    env_file.write_text("POSTGRES_PASSWORD=\nINGEST_TOKEN=\n")  # no password: random; no token: ingestion off
    init_env(checkout)
    values = dotenv_values(env_file)
    assert len(values["POSTGRES_PASSWORD"]) == 32 and values["INGEST_TOKEN"] == ""


def test_init_env_sets_keys_in_place_or_appends_them_once_with_a_comment(checkout):
    init_env(checkout)
    env_file = checkout / ".env"
    init_env(checkout, "--comment", "why these", "POSTGRES_IMAGE=local/pg:1", "EXTRA=a value with $dollar")
    text = env_file.read_text()
    assert text.count("# why these\n") == 1
    assert text.endswith("\n# why these\nPOSTGRES_IMAGE=local/pg:1\nEXTRA='a value with $dollar'\n")
    init_env(checkout, "POSTGRES_IMAGE=local/pg:2", "API_PORT=3001")  # "# API_PORT=3000" stays a comment
    values = dotenv_values(env_file)
    assert (values["POSTGRES_IMAGE"], values["EXTRA"], values["API_PORT"]) == ("local/pg:2", "a value with $dollar",
                                                                                "3001")
    assert env_file.read_text().count("POSTGRES_IMAGE=local/pg") == 1
    assert compose_reads(env_file) == values
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600


def test_init_env_refuses_a_value_it_cannot_write(checkout):
    proc = subprocess.run([str(checkout / "scripts" / "init-env"), "A=it's"], env=bare_env(), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0 and "A: a value with a single quote" in proc.stderr


def base_images(checkout: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(checkout / "scripts" / "base-images"), "--offline"], env=bare_env(**env),
                          capture_output=True, text=True, timeout=120)


def test_base_images_stop_with_one_line_when_a_stand_in_is_gone(checkout):
    init_env(checkout, "POSTGRES_IMAGE=rates-local/gone:test")
    proc = base_images(checkout, STANDIN_POSTGRES_IMAGE="rates-local/gone:test")
    assert proc.returncode == 1
    assert proc.stderr == ("base images: no image for POSTGRES_IMAGE (rates-local/gone:test does not exist): "
                           "run `sudo make bootstrap`\n")


def test_base_images_stop_with_one_line_without_registry_nor_stand_in(checkout):
    if subprocess.run(["docker", "image", "inspect", "postgres:13.5"], capture_output=True).returncode == 0:
        pytest.skip("the official postgres:13.5 is on this machine: nothing to fall back from")
    init_env(checkout)
    before = (checkout / ".env").read_text()
    proc = base_images(checkout, STANDIN_POSTGRES_IMAGE="rates-local/gone:test")
    assert proc.returncode == 1
    assert proc.stderr == ("base images: no image for POSTGRES_IMAGE (postgres:13.5 cannot be pulled: --offline; "
                           "rates-local/gone:test does not exist): run `sudo make bootstrap`\n")
    assert (checkout / ".env").read_text() == before
