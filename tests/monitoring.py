"""The monitoring seen from the tests: its files (rules, dashboards), Prometheus's HTTP API and
the alert sink of a running stack."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from tools.ha import wait_until

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "deploy" / "monitoring"
RULES = MONITORING / "prometheus" / "rules"
RULE_TESTS = MONITORING / "prometheus" / "tests"
DASHBOARDS = MONITORING / "grafana" / "dashboards"
RUNBOOK = ROOT / "docs" / "runbook.md"
# Short intervals for the tests: a scrape and an evaluation every second, notifications at once.
FAST = {"PROMETHEUS_SCRAPE_INTERVAL": "1s", "PROMETHEUS_SCRAPE_TIMEOUT": "1s", "PROMETHEUS_EVALUATION_INTERVAL": "1s",
        "ALERTMANAGER_GROUP_WAIT": "1s", "ALERTMANAGER_GROUP_INTERVAL": "1s", "ALERTMANAGER_REPEAT_INTERVAL": "1h"}
PORT_OFFSET = 6100  # the monitoring's ports in the tests: the API's port + 6100, + 6101, + 6102


def ports(api_port: int, prefix: str = "") -> dict[str, str]:
    """PROMETHEUS_PORT, ALERTMANAGER_PORT, ALERT_SINK_PORT (with ``prefix``, e.g. HA_) from an API port."""
    names = ("PROMETHEUS_PORT", "ALERTMANAGER_PORT", "ALERT_SINK_PORT")
    return {prefix + name: str(api_port + PORT_OFFSET + i) for i, name in enumerate(names)}


# ---- the files --------------------------------------------------------------------------------

def alert_rules() -> dict[str, dict]:
    """alert name -> its rule, from every rules/*.yml."""
    rules = {}
    for path in sorted(RULES.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    assert rule["alert"] not in rules, f"{rule['alert']} is defined twice"
                    rules[rule["alert"]] = rule
    return rules


def rule_test_cases() -> dict[str, set[bool]]:
    """alert name -> the outcomes its promtool tests expect: True (fires), False (stays silent)."""
    cases: dict[str, set[bool]] = {}
    for path in sorted(RULE_TESTS.glob("*.yml")):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    return cases


def dashboards() -> dict[str, dict]:
    """file name -> dashboard, for every JSON of deploy/monitoring/grafana/dashboards."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panel_queries(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of every panel."""
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel.get("targets", [])]


# ---- a running monitoring ---------------------------------------------------------------------

@dataclass
class Prometheus:
    url: str

    def _get(self, path: str, **params: str) -> object:
        response = requests.get(self.url + path, params=params, timeout=10)
        body = response.json()
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """The instant vector (or scalar) of ``expr`` now, as Prometheus's API returns it."""
        data = self._get("/api/v1/query", query=expr)
        return data["result"] if data["resultType"] == "vector" else [{"metric": {}, "value": data["result"]}]

    def value(self, expr: str) -> float | None:
        """The one value of ``expr`` now, or None when it has no series."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr}: {len(result)} series"
        return float(result[0]["value"][1]) if result else None

    def targets(self) -> list[dict]:
        return self._get("/api/v1/targets")["activeTargets"]  # type: ignore[index]

    def alerts(self, name: str, state: str = "firing") -> list[dict]:
        """The alerts named ``name`` in ``state`` (pending, firing) now."""
        return [a for a in self._get("/api/v1/alerts")["alerts"]  # type: ignore[index]
                if a["labels"]["alertname"] == name and a["state"] == state]

    def firing(self) -> set[str]:
        """The names of the alerts firing now."""
        return {a["labels"]["alertname"] for a in self._get("/api/v1/alerts")["alerts"]  # type: ignore[index]
                if a["state"] == "firing"}

    def scraped_after(self, job: str, moment: float) -> bool:
        """Every target of ``job`` has been scraped since ``moment`` (time.time())."""
        samples = self.query(f'timestamp(up{{job="{job}"}})')
        return bool(samples) and all(float(s["value"][1]) > moment for s in samples)

    def settle(self, job: str = "rates-api", within: float = 30) -> None:
        """Return once every target of ``job`` has been scraped again, and the rules evaluated:
        what happened before the call is then in Prometheus."""
        moment = time.time()
        wait_until(lambda: self.scraped_after(job, moment), within, f"a scrape of {job}", every=0.2)
        time.sleep(1.5)  # the next rule evaluation too (1 s in the tests)

    def fresh_value(self, expr: str, job: str = "rates-api") -> float | None:
        """``expr`` once every target of ``job`` has been scraped again."""
        self.settle(job)
        return self.value(expr)


@dataclass
class AlertSink:
    url: str

    def notifications(self) -> list[dict]:
        response = requests.get(self.url + "/alerts", timeout=10)
        response.raise_for_status()
        return response.json()

    def received(self, name: str, status: str = "firing", after: float = 0.0) -> list[dict]:
        """Alerts named ``name`` with ``status`` in the notifications received after ``after`` (time.time())."""
        return [alert for n in self.notifications() if n["received_at"] > after for alert in n["alerts"]
                if alert["labels"]["alertname"] == name and alert["status"] == status]


def alert_delivered(prometheus: Prometheus, sink: AlertSink, name: str, since: tuple[float, float],
                    within: float) -> tuple[float, float]:
    """Wait until alert ``name`` fires in Prometheus, then reaches the sink, both within
    ``within`` seconds of ``since`` (time.monotonic(), time.time()) taken at the fault; return
    the seconds from the fault to each."""
    started, wall = since
    wait_until(lambda: prometheus.alerts(name), within, f"{name} firing in Prometheus")
    fired = time.monotonic() - started
    wait_until(lambda: sink.received(name, after=wall), within - fired, f"{name} at the alert sink")
    return fired, time.monotonic() - started
