"""The monitoring's files agree with each other and with the service, without running anything:
every alert documented and unit-tested both ways, every dashboard well formed, every metric of
the service they name really exported, every scrape target a service of the compose files.

(promtool and amtool check the same files, and a live Prometheus answers every dashboard query,
in tests/environment/test_monitoring.py.)
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from rates.api import scrape
from rates.observability import batch_metrics
from tests.monitoring import (
    DASHBOARDS,
    MONITORING,
    ROOT,
    RULES,
    RUNBOOK,
    alert_rules,
    dashboards,
    panel_queries,
    rule_test_cases,
)

PANEL_TYPES = {"timeseries", "stat", "table", "gauge", "bargauge", "text"}
GRAFANA = MONITORING / "grafana"
DATASOURCE = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
SEVERITIES = {"page", "ticket"}


class _ComposeLoader(yaml.SafeLoader):
    """YAML of compose files: their tags (!override, !reset) read as plain values."""


_ComposeLoader.add_multi_constructor("!", lambda loader, suffix, node: (
    loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else
    loader.construct_mapping(node) if isinstance(node, yaml.MappingNode) else loader.construct_scalar(node)))


def compose_services(*names: str) -> set[str]:
    return {service for name in names
            for service in yaml.load((ROOT / name).read_text(), Loader=_ComposeLoader)["services"]}  # noqa: S506


def anchors(markdown: str) -> set[str]:
    """The anchors a code host makes of the headings: lower case, punctuation dropped, - for spaces."""
    return {re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            for line in markdown.splitlines() if line.startswith("#")}


def service_metric_names() -> set[str]:
    """Every series name the service exports: its registered metrics (with their _total, _bucket...
    samples) and what /metrics samples at each scrape."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    names = {family.name + suffix for family in REGISTRY.collect() for suffix in suffixes.get(family.type, ("",))}
    names |= {name for name, _, _ in scrape.sampled(_FakeComponents())} | {batch_metrics.OLDEST_AGE}
    return {name for name in names if name.startswith("rates_")}


class _FakeReads:
    def ping(self, timeout: float) -> None: ...

    def data_version(self) -> int:
        return 1


class _FakeComponents:
    reads = _FakeReads()

    class ingestor:  # noqa: N801 - the attribute scrape.sampled reads
        class limits:  # noqa: N801
            statement_timeout_ms = 1000


def referenced_service_metrics(text: str) -> set[str]:
    return set(re.findall(r"\b(rates_[a-z_]+)\b", text))


# ---- alerts -------------------------------------------------------------------------------------

ALERTS = alert_rules()


def test_there_are_alerts_for_what_the_design_asks():
    expected = {"RatesAvailabilityBudgetBurn", "RatesLatencyBudgetBurn", "RatesNotReady", "BatchFailureRatioHigh",
                "BatchOpenTooLong", "HaNoPrimary", "HaFailover", "HaReplicationLagging", "HaNoSynchronousStandby",
                "PostgresConnectionsSaturated", "DiskSpaceLow", "DiskFillingUp", "TargetDown"}
    assert expected <= set(ALERTS), expected - set(ALERTS)


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_each_alert_has_a_severity_a_summary_and_a_runbook_paragraph(name):
    rule = ALERTS[name]
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    path, _, anchor = rule["annotations"]["runbook"].partition("#")
    assert path == "docs/runbook.md" and anchor == name.lower()
    assert anchor in anchors(RUNBOOK.read_text()), f"docs/runbook.md has no heading {name}"


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_each_alert_has_a_case_where_it_fires_and_one_where_it_does_not(name):
    assert rule_test_cases().get(name) == {True, False}, f"{name}: promtool cases {rule_test_cases().get(name)}"


def test_every_rule_file_is_unit_tested():
    tested = {Path(f).name for path in (MONITORING / "prometheus/tests").glob("*.yml")
              for f in yaml.safe_load(path.read_text())["rule_files"]}
    assert tested == {path.name for path in RULES.glob("*.yml")}


def test_the_checks_see_what_they_look_for():
    assert anchors("# Runbook\n### RatesNotReady\n## Service level objectives (SLOs)") == {
        "runbook", "ratesnotready", "service-level-objectives-slos"}
    assert referenced_service_metrics('sum(rate(rates_http_requests_total{x="rates_y"}[5m])) / pg_up') == {
        "rates_http_requests_total", "rates_y"}


# ---- dashboards ---------------------------------------------------------------------------------

DASHBOARD_FILES = dashboards()


def test_there_are_dashboards_and_their_provisioning():
    assert {"rates-slo.json", "rates-api.json", "rates-ingestion.json", "rates-postgres.json", "rates-ha.json"} <= set(
        DASHBOARD_FILES)
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/rates.yml").read_text())["providers"][0]
    grafana = yaml.load((ROOT / "compose.monitoring.yaml").read_text(), Loader=_ComposeLoader)["services"]["grafana"]  # noqa: S506
    assert f"./{DASHBOARDS.relative_to(ROOT)}:{provider['options']['path']}:ro" in grafana["volumes"]
    assert DATASOURCE["url"] == "http://prometheus:9090"


@pytest.mark.parametrize("name", sorted(DASHBOARD_FILES))
def test_each_dashboard_is_well_formed(name):
    board = DASHBOARD_FILES[name]
    assert board["uid"] == name.removesuffix(".json") and board["title"] and board["description"]
    assert isinstance(board["schemaVersion"], int) and board["panels"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        where = f"{name}: {panel.get('title')!r}"
        assert panel["type"] in PANEL_TYPES, where
        assert panel["title"] and panel["description"], where
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE["uid"]}, where
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in "hwxy") and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, where
        taken = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not taken & cells, f"{where} overlaps another panel"
        cells |= taken
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), where
        assert all(target["expr"].strip() and target["datasource"]["uid"] == DATASOURCE["uid"]
                   for target in panel["targets"]), where


def test_dashboard_uids_are_unique():
    uids = [board["uid"] for board in DASHBOARD_FILES.values()]
    assert len(uids) == len(set(uids))


def test_every_service_metric_named_by_a_dashboard_or_a_rule_is_exported():
    text = "\n".join(expr for board in DASHBOARD_FILES.values() for _, expr in panel_queries(board))
    text += "\n".join(path.read_text() for path in RULES.glob("*.yml"))
    unknown = referenced_service_metrics(text) - service_metric_names()
    assert unknown == set(), f"named but not exported by the service: {sorted(unknown)}"


def test_the_service_exports_its_batch_and_readiness_metrics():
    assert {"rates_batches_total", "rates_batch_rows_total", "rates_batch_bytes_total",
            "rates_batch_duration_seconds_bucket", "rates_batches_in_progress", "rates_batch_oldest_open_seconds",
            "rates_ready", "rates_data_version", "rates_cache_requests_total"} <= service_metric_names()


# ---- configurations -----------------------------------------------------------------------------

def ha_nodes_services(nodes: int) -> set[str]:
    """The services scripts/ha-nodes adds to the HA stack and its monitoring for HA_PG_NODES."""
    generated = subprocess.run(["scripts/ha-nodes", "monitoring"], cwd=ROOT, capture_output=True, text=True,
                               env={**os.environ, "HA_PG_NODES": str(nodes)}, check=True).stdout
    return set(yaml.load(generated, Loader=_ComposeLoader)["services"])  # noqa: S506


@pytest.mark.parametrize(("config", "compose", "nodes"), [
    ("prometheus.yml", ("compose.yaml", "compose.monitoring.yaml"), 0),
    ("prometheus-ha.yml", ("compose.ha.yaml", "compose.monitoring-ha.yaml"), 2),
    ("prometheus-ha.yml", ("compose.ha.yaml", "compose.monitoring-ha.yaml"), 5),
])
def test_every_scrape_target_is_a_service_of_its_stack(config, compose, nodes):
    text = (MONITORING / "prometheus" / config).read_text()
    for name in ("SCRAPE_INTERVAL", "SCRAPE_TIMEOUT", "EVALUATION_INTERVAL"):
        text = text.replace(f"@{name}@", "1s")
    # As ./start writes them: a Patroni and an exporter target per node.
    for name, prefix, port in (("PATRONI_TARGETS", "pg", 8008), ("EXPORTER_TARGETS", "postgres-exporter-pg", 9187)):
        text = text.replace(f'"@{name}@"', ", ".join(f'"{prefix}{i}:{port}"' for i in range(1, nodes + 1)))
    prometheus = yaml.safe_load(text)
    hosts = {target.split(":")[0] for job in prometheus["scrape_configs"] for group in job.get("static_configs", [])
             for target in group["targets"]}
    # Names resolved through Docker's DNS (a scaled service: an address per container).
    hosts |= {name for job in prometheus["scrape_configs"] for sd in job.get("dns_sd_configs", [])
              for name in sd["names"]}
    hosts |= {target.split(":")[0] for am in prometheus["alerting"]["alertmanagers"]
              for group in am["static_configs"] for target in group["targets"]}
    services = compose_services(*compose) | (ha_nodes_services(nodes) if nodes else set())
    assert hosts - {"localhost"} <= services
    jobs = {job["job_name"] for job in prometheus["scrape_configs"]}
    assert {"rates-api", "postgres", "disk", "alertmanager", "prometheus"} <= jobs
    if nodes:
        assert {f"pg{nodes}", f"postgres-exporter-pg{nodes}"} <= hosts


def test_alertmanager_routes_to_receivers_it_defines_and_the_sink_is_a_service():
    text = (MONITORING / "alertmanager" / "alertmanager.yml").read_text()
    config = yaml.safe_load(re.sub(r"@\w+@", "1s", text))
    receivers = {r["name"] for r in config["receivers"]}
    routed = {config["route"]["receiver"], *(r["receiver"] for r in config["route"]["routes"])}
    assert routed <= receivers
    hosts = {re.match(r"http://([^:/]+)", c["url"]).group(1) for r in config["receivers"] for c in r["webhook_configs"]}
    assert hosts <= compose_services("compose.yaml", "compose.monitoring.yaml")
    assert {rule["labels"]["severity"] for rule in ALERTS.values()} <= {"page", "ticket"}
