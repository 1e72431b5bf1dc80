"""The HA stack of the environment tests: started once, with its monitoring (short intervals), for
test_ha_alerts.py (which runs first, on a fresh cluster) and test_ha_faults.py; removed after the
last environment test (RATES_TEST_KEEP=1 keeps it)."""

from __future__ import annotations

import os

import pytest

from tests.monitoring import FAST, ports
from tools.ha import HaStack

KEEP = os.environ.get("RATES_TEST_KEEP") == "1"


@pytest.fixture(scope="package")
def ha() -> HaStack:
    port = int(os.environ.get("RATES_TEST_HA_PORT", "3400"))
    stack = HaStack(project=os.environ.get("RATES_TEST_HA_PROJECT", "rates-ha-test"), api_port=port,
                    write_port=port + 2200, read_port=port + 2201, stats_port=port + 5104,
                    extra_env={"MONITORING": "1", **FAST, **ports(port, prefix="HA_")})
    stack.compose("down", "--volumes", "--remove-orphans")
    stack.make("up-ha")
    yield stack
    if not KEEP:
        stack.compose("down", "--volumes", "--remove-orphans")
