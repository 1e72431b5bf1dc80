""".env.example, rates/config.py and compose.yaml agree: every variable documented with its default,
each default in one place (the service's in config.py, the stack's in compose.yaml)."""

from __future__ import annotations

import re

import pytest

from rates import config
from rates.config import Settings

ROOT = config.PROJECT_DIR
ASSIGNMENT = re.compile(r"^(?:# )?([A-Z][A-Z0-9_]*)=(.*)$")
COMPOSE_REFERENCE = re.compile(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)(?::?-([^}]*))?\}")  # $${X} is no reference
SCRIPT_DEFAULT = re.compile(r"\$\{([A-Z][A-Z0-9_]*):-([^}]*)\}")
# Settings the stack sets itself rather than passing through from .env.
FIXED_BY_THE_STACK = {"DB_HOST", "DB_PORT", "DB_READ_HOST", "DB_READ_PORT", "DB_USER", "DB_PASSWORD", "WEB_BIND",
                      "MIGRATE_DUMP_PATH", "MIGRATE_DIR", "INGEST_TOKEN", "DB_READ_USER", "DB_READ_PASSWORD",
                      "DB_INGEST_USER", "DB_INGEST_PASSWORD"}
# Read by rates/config.py to find its sources, not settings themselves.
LOADER = {"RATES_ENV_FILE": config.DEFAULT_ENV_FILE, "RATES_SECRETS_DIR": config.DEFAULT_SECRETS_DIR}


def documented(text: str) -> dict[str, str]:
    """NAME -> default of every variable line (`NAME=value` or `# NAME=value`) of an .env.example."""
    found = {}
    for line in text.splitlines():
        if match := ASSIGNMENT.match(line):
            name, value = match.groups()
            assert name not in found, f"{name} is listed twice"
            found[name] = value
    return found


def undescribed(text: str) -> list[str]:
    """Variables whose block (lines between blank lines) has no prose comment before them."""
    missing, described = [], False
    for line in text.splitlines():
        if not line.strip():
            described = False
        elif ASSIGNMENT.match(line):
            missing += [] if described else [ASSIGNMENT.match(line).group(1)]
        elif line.startswith("#"):
            described = True
    return missing


EXAMPLE = (ROOT / ".env.example").read_text()
# The default stack, the highly available one and their monitoring: one default per variable.
COMPOSE = "\n".join((ROOT / name).read_text() for name in (
    "compose.yaml", "compose.ha.yaml", "compose.monitoring.yaml", "compose.monitoring-ha.yaml"))
VARIABLES = documented(EXAMPLE)
# (NAME, default or "") of each ${NAME:-default} in compose.yaml, comment lines left out.
REFERENCE_LIST = COMPOSE_REFERENCE.findall("\n".join(
    line for line in COMPOSE.splitlines() if not line.lstrip().startswith("#")))
REFERENCES = dict(REFERENCE_LIST)


def test_helpers_find_assignments_blocks_and_references():
    text = "# About A.\n# A=1\nB=\n\n# C=3\n"
    assert documented(text) == {"A": "1", "B": "", "C": "3"}
    assert undescribed(text) == ["C"]
    assert COMPOSE_REFERENCE.findall("x: ${A:-1} ${B:-} ${C} $${D}") == [("A", "1"), ("B", ""), ("C", "")]


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_setting_is_documented_with_its_default(name):
    assert name in VARIABLES, f"{name} is missing from .env.example"
    default = Settings.model_fields[name].default
    assert getattr(Settings(**{name: VARIABLES[name]}), name) == getattr(Settings(), name), (
        f".env.example says {name}={VARIABLES[name]}, rates/config.py's default is {default!r}")


def test_every_variable_is_described():
    assert undescribed(EXAMPLE) == []


def test_compose_states_no_default_of_a_service_setting():
    """The service's defaults live in config.py only: compose passes ${NAME:-} through."""
    restated = {name: default for name, default in REFERENCES.items() if name in Settings.model_fields and default}
    assert restated == {}


def test_every_setting_reaches_the_stack_or_is_fixed_by_it():
    for name in Settings.model_fields:
        if name in FIXED_BY_THE_STACK:
            continue
        assert re.search(rf"^\s+{name}: \$\{{{name}:-\}}$", COMPOSE, re.M), f"compose.yaml does not pass {name} through"


def test_compose_variables_are_documented_with_compose_defaults():
    assert len(set(REFERENCE_LIST)) == len(REFERENCES), f"one variable, two defaults in compose.yaml: {REFERENCE_LIST}"
    for name, default in REFERENCES.items():
        assert name in VARIABLES, f"compose.yaml uses {name}, .env.example does not list it"
        if name not in Settings.model_fields:
            assert VARIABLES[name] == default, f"{name}: .env.example {VARIABLES[name]!r}, compose.yaml {default!r}"


def test_other_variables_have_the_default_their_reader_has():
    scripts = {name: default for path in (ROOT / "scripts").iterdir() if path.is_file()
               for name, default in SCRIPT_DEFAULT.findall(path.read_text())}
    project_name = re.search(r"^name: (\S+)", COMPOSE, re.M).group(1)
    for name, value in VARIABLES.items():
        if name in Settings.model_fields or name in REFERENCES:
            continue
        if name in LOADER:
            assert value == LOADER[name], name
        elif name == "COMPOSE_PROJECT_NAME":
            assert value == project_name
        elif name.endswith("_PASSWORD"):  # required, written by scripts/init-env
            assert value == ""
        else:
            assert scripts.get(name) == value, f"{name}={value}: no script reads it with that default"
