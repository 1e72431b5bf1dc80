"""The monitoring of the highly available stack, on a fresh cluster (these tests run before
test_ha_faults.py, on the same stack): every replica, exporter, Patroni node and HAProxy scraped;
counts that add up over the API replicas; every dashboard query answered; and the primary killed
fires the failover alert, in Prometheus and at the alert sink, within a bounded time.
"""

from __future__ import annotations

import concurrent.futures
import time
import uuid

import requests

from tests.monitoring import AlertSink, Prometheus, alert_delivered, dashboards, panel_queries, ports
from tools.ha import DOCUMENTED, HaStack, wait_until

FAILOVER_ALERT_WITHIN = 90  # seconds from the kill: Patroni's ttl (20 s), a loop, a scrape, a notification


def monitoring(ha: HaStack) -> tuple[Prometheus, AlertSink]:
    found = ports(ha.api_port, prefix="HA_")
    return (Prometheus(f"http://127.0.0.1:{found['HA_PROMETHEUS_PORT']}"),
            AlertSink(f"http://127.0.0.1:{found['HA_ALERT_SINK_PORT']}"))


def test_every_part_of_the_ha_stack_is_scraped(ha):
    prometheus, _ = monitoring(ha)
    nodes = len(ha.nodes)
    expected = {"rates-api": 4, "postgres": nodes, "patroni": nodes, "haproxy": 1, "disk": 1, "alertmanager": 1,
                "prometheus": 1}

    def all_up() -> bool:
        up: dict[str, int] = {}
        for target in prometheus.targets():
            up[target["labels"]["job"]] = up.get(target["labels"]["job"], 0) + (target["health"] == "up")
        return up == expected or print(up)
    wait_until(all_up, 60, f"targets up: {expected}")
    volumes = {s["metric"]["mountpoint"] for s in prometheus.query('node_filesystem_avail_bytes{job="disk"}')}
    assert volumes == {f"/volumes/{node}" for node in ha.nodes}


def test_reads_add_up_over_the_api_replicas(ha):
    """Each replica sums its workers; Prometheus sums the replicas: 200 reads through HAProxy
    (round robin over both read replicas) are 200 more, not more, not fewer."""
    prometheus, _ = monitoring(ha)
    total = 'sum(rates_http_requests_total{route="/rates",status="200"})'
    by_replica = 'sum by (instance) (rates_http_requests_total{route="/rates",status="200"})'
    before = prometheus.fresh_value(total) or 0.0
    each_before = {s["metric"]["instance"]: float(s["value"][1]) for s in prometheus.query(by_replica)}

    def read(_: int) -> int:
        return requests.get(ha.api_url + DOCUMENTED, timeout=10).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert set(pool.map(read, range(200))) == {200}
    assert prometheus.fresh_value(total) == before + 200
    each = {s["metric"]["instance"]: float(s["value"][1]) - each_before.get(s["metric"]["instance"], 0.0)
            for s in prometheus.query(by_replica)}
    assert sum(each.values()) == 200
    read_replicas = {f"api-read/{ha.address(c)}:3000" for c in ha.containers("api-read")}
    assert {name for name, served in each.items() if served > 0} == read_replicas and len(read_replicas) == 2


def test_every_dashboard_query_returns_data_from_the_ha_stack(ha):
    prometheus, _ = monitoring(ha)
    headers = {"Authorization": f"Bearer {ha.ingest_token()}", "Content-Type": "text/csv",
               "Idempotency-Key": f"monitoring-{uuid.uuid4().hex}"}
    body = b"orig_code,dest_code,day,price\nCNGGZ,EETLL,2299-02-01,100\n"  # a day no other test writes (2300 on)
    assert requests.post(ha.api_url + "/batches", data=body, headers=headers, timeout=30).status_code == 201
    assert requests.get(ha.api_url + "/rates?date_from=x", timeout=10).status_code == 400
    prometheus.settle()
    empty = [f"{name}: {title}: {expr}" for name, board in dashboards().items()
             for title, expr in panel_queries(board) if not prometheus.query(expr)]
    assert empty == []


def test_killing_the_primary_fires_the_failover_alert(ha):
    """The failover alert (the primary's timeline changed) fires in Prometheus and reaches the
    alert sink within FAILOVER_ALERT_WITHIN s of the kill; HaNoPrimary (a minute without one)
    does not, since the failover is quicker."""
    prometheus, sink = monitoring(ha)
    primary = wait_until(ha.leader, 60, "a primary")
    assert not prometheus.alerts("HaFailover"), "a failover alert fires on a fresh cluster"
    killed_at, killed_wall = time.monotonic(), time.time()
    ha.kill(primary)  # type: ignore[arg-type]
    try:
        fired, delivered = alert_delivered(prometheus, sink, "HaFailover", (killed_at, killed_wall),
                                           FAILOVER_ALERT_WITHIN)
        print(f"\n[failover alert] firing {fired:.1f} s after the kill, at the sink {delivered:.1f} s")
        assert ha.new_leader(primary)  # type: ignore[arg-type]
        assert not sink.received("HaNoPrimary", after=killed_wall)
    finally:
        ha.start(primary)  # type: ignore[arg-type]
    wait_until(lambda: sum(m["State"] == "streaming" for m in ha.members()) == 2, 120,
               "the old primary streaming again as a replica")
