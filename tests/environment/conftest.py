"""The HA stack of the environment tests: started once, with its monitoring (short intervals), for
test_ha_alerts.py (which runs first, on a fresh cluster) and test_ha_faults.py; both run after the
other environment tests, so the stack is removed as soon as they are done (RATES_TEST_KEEP=1
keeps it)."""

from __future__ import annotations

import os

import pytest

from tests.monitoring import FAST, ports
from tools.ha import HaStack

KEEP = os.environ.get("RATES_TEST_KEEP") == "1"


def pytest_collection_modifyitems(items):
    """The HA stack's tests last (in their own order): tests/conftest.py's sort by tier is stable."""
    items.sort(key=lambda item: item.path.name.startswith("test_ha_"))


@pytest.fixture(scope="package")
def ha() -> HaStack:
    port = int(os.environ.get("RATES_TEST_HA_PORT", "3400"))
    stack = HaStack(project=os.environ.get("RATES_TEST_HA_PROJECT", "rates-ha-test"), api_port=port,
                    write_port=port + 2200, read_port=port + 2201, stats_port=port + 5104,
                    extra_env={"MONITORING": "1", **FAST, **ports(port, prefix="HA_")})
    stack.down()
    stack.make("up-ha")
    yield stack
    if not KEEP:
        stack.down()
