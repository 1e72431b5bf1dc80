"""Test tiers and the session's stack.

Tiers run in order: unit (no Docker), then integration (against one stack started for the
session from nothing), then environment (tests that stop, restart and reset stacks).
The test stack is its own compose project on its own ports, so it never touches the stack a
developer runs with `make up`. RATES_TEST_KEEP=1 leaves it running after the session.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.stack import ROOT, Stack, run

TIERS = ("unit", "integration", "environment")


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = item.path.relative_to(ROOT / "tests").parts[0]
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))
    items.sort(key=lambda item: TIERS.index(item.path.relative_to(ROOT / "tests").parts[0])
               if item.path.relative_to(ROOT / "tests").parts[0] in TIERS else len(TIERS))


def _docker_available() -> bool:
    return shutil.which("docker") is not None and run(["docker", "info"], check=False).returncode == 0


@pytest.fixture(scope="session")
def stack() -> Stack:
    """The session's stack, started from nothing with `make up`."""
    if not _docker_available():
        pytest.fail("Docker is not available: run `make bootstrap` (as root) first")
    s = Stack(
        project=os.environ.get("RATES_TEST_PROJECT", "rates-test"),
        api_port=int(os.environ.get("RATES_TEST_API_PORT", "3180")),
        db_port=int(os.environ.get("RATES_TEST_DB_PORT", "5480")),
    )
    s.compose("down", "--volumes", "--remove-orphans")
    s.make("env")
    s.make("up")
    yield s
    if os.environ.get("RATES_TEST_KEEP") != "1":
        s.compose("down", "--volumes", "--remove-orphans")


@pytest.fixture(scope="session")
def pg_conninfo(stack: Stack) -> str:
    """Superuser conninfo to the stack's server (maintenance database), for scratch databases."""
    return stack.conninfo("postgres")
