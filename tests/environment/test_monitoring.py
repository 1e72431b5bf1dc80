"""The monitoring of the default stack, checked against the real thing: promtool and amtool on the
configuration and the rules (the rules' unit tests too), then Prometheus, Alertmanager, the
exporters and the alert sink added to the session's stack (`scripts/monitor`, 1 s intervals):
every target scraped, counts that add up over worker processes (killed ones included), batches
counted by outcome, every dashboard query answered, and the database stopped fires the
readiness alert in Prometheus and at the alert sink within a bounded time.

The monitoring's services are removed at the end, so later tests see the stack as `make up` left it.
"""

from __future__ import annotations

import concurrent.futures
import json
import socket
import threading
import time
import uuid

import psycopg
import pytest
import requests

from tests.monitoring import FAST, AlertSink, Prometheus, alert_delivered, dashboards, panel_queries, ports
from tests.stack import (
    DOCUMENTED_QUERY,
    Stack,
    dotenv_ingest_token,
    dotenv_value,
    kill_server_workers,
    run,
    server_workers,
)
from tools.ha import wait_until

FILES = ["-f", "compose.yaml", "-f", "compose.monitoring.yaml"]
SERVICES = ["prometheus", "alertmanager", "alert-sink", "postgres-exporter", "disk-exporter"]
NOT_READY_WITHIN = 75  # seconds from the database's stop: the alert's 30 s, scrapes, a notification


def images() -> dict[str, str]:
    config = json.loads(run(["docker", "compose", *FILES, "config", "--format", "json"]).stdout)
    return {name: service["image"] for name, service in config["services"].items()}


# ---- the files, checked by Prometheus's and Alertmanager's own tools ------------------------------

@pytest.fixture(scope="module")
def built() -> dict[str, str]:
    run(["docker", "compose", *FILES, "build", "--quiet", "prometheus", "alertmanager"])
    return images()


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-ha.yml"])
def test_promtool_checks_the_configuration_and_every_rule(built, config):
    result = run(["docker", "run", "--rm", "-e", f"PROMETHEUS_CONFIG={config}", built["prometheus"], "check"])
    assert "SUCCESS" in result.stdout + result.stderr
    assert "rules found" in result.stdout + result.stderr


def test_promtool_runs_the_rules_unit_tests(built):
    result = run(["docker", "run", "--rm", built["prometheus"], "test"])
    assert result.stdout.count("SUCCESS") == 4, result.stdout


def test_amtool_checks_the_alertmanager_configuration(built):
    result = run(["docker", "run", "--rm", built["alertmanager"], "check"])
    assert "SUCCESS" in result.stdout


def test_the_monitoring_compose_files_are_valid():
    run(["docker", "compose", *FILES, "config", "--quiet"])
    run(["docker", "compose", "-p", "check", "-f", "compose.ha.yaml", "-f", "compose.monitoring-ha.yaml", "config",
         "--quiet"])


# ---- the monitoring of the session's stack ------------------------------------------------------

class Monitored:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        found = ports(stack.api_port)
        self.prometheus = Prometheus(f"http://127.0.0.1:{found['PROMETHEUS_PORT']}")
        self.sink = AlertSink(f"http://127.0.0.1:{found['ALERT_SINK_PORT']}")

    def compose(self, *args: str, check: bool = True):  # noqa: ANN201
        return run(["docker", "compose", *FILES, *args], env=self.stack.env, check=check)


@pytest.fixture(scope="module")
def monitored(stack: Stack) -> Monitored:
    stack = Stack(stack.project, stack.api_port, stack.db_port, extra_env={**FAST, **ports(stack.api_port)})
    run(["scripts/monitor", "default"], env=stack.env)
    yield Monitored(stack)
    m = Monitored(stack)
    m.compose("rm", "--stop", "--force", "--volumes", *SERVICES, check=False)
    run(["docker", "volume", "rm", f"{stack.project}_prometheus-data", f"{stack.project}_alertmanager-data"],
        check=False)


def test_every_target_is_scraped_and_pg_stat_statements_read(monitored):
    expected = {"rates-api", "postgres", "disk", "alertmanager", "prometheus"}
    wait_until(lambda: {t["labels"]["job"] for t in monitored.prometheus.targets() if t["health"] == "up"} == expected,
               60, f"every target up: {expected}")
    assert monitored.prometheus.value('count(pg_stat_statements_calls{node="db"})') > 0
    assert monitored.prometheus.value('rates_ready{job="rates-api"}') == 1
    volumes = {s["metric"]["mountpoint"] for s in monitored.prometheus.query('node_filesystem_avail_bytes{job="disk"}')}
    assert volumes == {"/volumes/db"}


def test_the_exporter_logs_in_as_a_role_that_can_only_monitor(monitored):
    """postgres_exporter connects as rates_monitor (setup.sql): pg_monitor's statistics, and
    nothing else: no superuser, no table of rates (not even a connection), no object created."""
    stack = monitored.stack
    exporter = monitored.compose("ps", "-q", "postgres-exporter").stdout.strip()
    address = next(iter(json.loads(run(["docker", "inspect", exporter]).stdout)[0]["NetworkSettings"]
                        ["Networks"].values()))["IPAddress"]
    with stack.connect("postgres", autocommit=True) as conn:
        def users() -> set[str]:
            return {u for (u,) in conn.execute("SELECT usename FROM pg_stat_activity WHERE host(client_addr) = %s",
                                               (address,))}
        wait_until(users, 30, "a session of the exporter")
        assert users() == {"rates_monitor"}
        role = conn.execute("SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, "
                            "pg_has_role('rates_monitor', 'pg_monitor', 'member') FROM pg_roles "
                            "WHERE rolname = 'rates_monitor'").fetchone()
        assert role == (False, False, False, False, False, True)
    conninfo = dict(host="127.0.0.1", port=stack.db_port, user="rates_monitor",
                    password=dotenv_value("MONITOR_ROLE_PASSWORD"), connect_timeout=5, autocommit=True)
    with psycopg.connect(dbname="postgres", **conninfo) as conn:
        others = conn.execute("SELECT count(*) FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid "
                              "WHERE r.rolname <> 'rates_monitor' AND s.query <> '<insufficient privilege>'")
        assert others.fetchone()[0] > 0  # every user's statements, with their text, not only its own
        for statement in ("SELECT * FROM pg_authid", "CREATE TABLE t (x int)", "CREATE TEMP TABLE t (x int)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(dbname="rates", **conninfo)


def test_the_monitoring_runs_hardened_and_not_as_root(monitored):
    """As every other service: no capability, no privilege gain, a read-only root filesystem,
    memory and process limits, a numeric user that is not root."""
    for service in SERVICES:
        container = monitored.stack.inspect(service)
        host = container["HostConfig"]
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"], service
        assert "no-new-privileges:true" in host["SecurityOpt"], service
        assert host["ReadonlyRootfs"] is True and host["Memory"] > 0 and host["PidsLimit"] > 0, service
        assert container["Config"]["User"].split(":")[0] not in ("", "0", "root"), service
        uid = run(["docker", "exec", container["Id"], "id", "-u"]).stdout.strip()
        assert uid != "0", service


def test_counts_add_up_over_the_workers_even_once_they_are_killed(monitored):
    """/metrics sums the worker processes: 120 reads on 8 connections (landing on both workers)
    are 120 more in Prometheus; after every worker is killed and respawned, none is lost."""
    stack, prometheus = monitored.stack, monitored.prometheus
    assert len(server_workers(stack)) >= 2
    total = 'sum(rates_http_requests_total{route="/rates",status="200"})'
    before = prometheus.fresh_value(total) or 0.0

    def read(_: int) -> int:
        return requests.get(f"{stack.api_url}/rates?{DOCUMENTED_QUERY}", timeout=10).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert set(pool.map(read, range(120))) == {200}
    assert prometheus.fresh_value(total) == before + 120
    folder = stack.inspect("api")["Config"]["Env"]
    folder = next(v.split("=", 1)[1] for v in folder if v.startswith("PROMETHEUS_MULTIPROC_DIR="))
    counters = run(["docker", "exec", stack.container_id("api"), "ls", folder]).stdout.split()
    assert len([name for name in counters if name.startswith("counter_")]) >= 2, counters
    kill_server_workers(stack)
    stack.wait_for("/readyz")
    assert prometheus.fresh_value(total) == before + 120  # the dead workers' counts stay summed


def post_batch(stack: Stack, body: bytes, key: str) -> int:
    headers = {"Authorization": f"Bearer {dotenv_ingest_token()}", "Content-Type": "text/csv", "Idempotency-Key": key}
    return requests.post(stack.api_url + "/batches", data=body, headers=headers, timeout=30).status_code


def post_too_large(stack: Stack) -> bytes:
    """A batch announcing more bytes than BATCH_MAX_BYTES: the answer comes before the body."""
    with socket.create_connection(("127.0.0.1", stack.api_port), timeout=10) as conn:
        conn.sendall((f"POST /batches HTTP/1.1\r\nHost: rates\r\nAuthorization: Bearer {dotenv_ingest_token()}\r\n"
                      f"Idempotency-Key: large-{uuid.uuid4().hex}\r\nContent-Type: text/csv\r\n"
                      f"Content-Length: {2**40}\r\n\r\norig_code,dest_code,day,price\n").encode())
        conn.shutdown(socket.SHUT_WR)
        return conn.recv(4096)


def test_each_batch_is_counted_by_its_outcome(monitored):
    stack, prometheus = monitored.stack, monitored.prometheus
    outcomes = 'sum by (outcome) (rates_batches_total)'
    prometheus.settle()
    before = {s["metric"]["outcome"]: float(s["value"][1]) for s in prometheus.query(outcomes)}
    rows = prometheus.value("sum(rates_batch_rows_total)")
    key, day = f"monitoring-{uuid.uuid4().hex}", "2299-01-01"  # a day no other test writes (2300 on)
    good = f"orig_code,dest_code,day,price\nCNGGZ,EETLL,{day},100\nCNGGZ,EETLL,{day},101\n".encode()
    assert post_batch(stack, good, key) == 201
    assert post_batch(stack, good, key) == 200
    assert post_batch(stack, good.replace(b"101", b"102"), key) == 409
    assert post_batch(stack, b"orig_code,dest_code,day,price\nCNGGZ,EETLL,not-a-day,1\n", f"bad-{key}") == 422
    assert post_too_large(stack).startswith(b"HTTP/1.1 413")
    prometheus.settle()
    after = {s["metric"]["outcome"]: float(s["value"][1]) for s in prometheus.query(outcomes)}
    assert {o: after[o] - before[o] for o in after if after[o] != before[o]} == {
        "committed": 1, "replayed": 1, "conflict": 1, "rejected": 1, "too_large": 1}
    assert prometheus.value("sum(rates_batch_rows_total)") == rows + 2


def test_an_open_batch_is_in_progress_until_its_worker_dies(monitored):
    """A client that stops sending mid-upload: one batch in progress, its age growing. Its worker
    killed, granian starts another and the dead worker's gauges are forgotten: none in progress."""
    stack, prometheus = monitored.stack, monitored.prometheus
    conn = socket.create_connection(("127.0.0.1", stack.api_port), timeout=10)
    part = "orig_code,dest_code,day,price\nCNGGZ,EETLL,2299-01-02,1\n"
    try:
        conn.sendall((f"POST /batches HTTP/1.1\r\nHost: rates\r\nAuthorization: Bearer {dotenv_ingest_token()}\r\n"
                      f"Idempotency-Key: stalled-{uuid.uuid4().hex}\r\nContent-Type: text/csv\r\n"
                      f"Content-Length: 100000\r\n\r\n{part}").encode())
        wait_until(lambda: prometheus.value("sum(rates_batches_in_progress)") == 1, 20, "one batch in progress")
        wait_until(lambda: prometheus.value("max(rates_batch_oldest_open_seconds)") >= 3, 20, "its age growing")
        kill_server_workers(stack)
        stack.wait_for("/readyz")
        wait_until(lambda: prometheus.fresh_value("sum(rates_batches_in_progress)") == 0, 20, "none in progress")
        assert prometheus.value("max(rates_batch_oldest_open_seconds)") == 0
    finally:
        conn.close()


def test_every_dashboard_query_returns_data(monitored):
    """Under a little traffic (reads, a bad request, batches: the tests above), every panel's
    PromQL of every dashboard but the HA stack's (test_ha_alerts.py) gets at least one series."""
    stack, prometheus = monitored.stack, monitored.prometheus
    for _ in range(20):
        requests.get(f"{stack.api_url}/rates?{DOCUMENTED_QUERY}", timeout=10)
    requests.get(f"{stack.api_url}/rates?date_from=x", timeout=10)
    prometheus.settle()
    empty = [f"{name}: {title}: {expr}" for name, board in dashboards().items() if name != "rates-ha.json"
             for title, expr in panel_queries(board) if not prometheus.query(expr)]
    assert empty == []


def test_the_database_stopped_fires_the_readiness_alert_and_the_sink_receives_it(monitored):
    stack, prometheus, sink = monitored.stack, monitored.prometheus, monitored.sink
    stop = threading.Event()

    def reads() -> None:  # some traffic, so that failed reads are counted too
        while not stop.is_set():
            try:
                requests.get(f"{stack.api_url}/rates?{DOCUMENTED_QUERY}", timeout=5)
            except requests.RequestException:
                time.sleep(0.2)

    # Two readers: each holds a server thread for DB_POOL_TIMEOUT while the database is down,
    # and the scrapes need one too (4 threads: 2 workers x WEB_THREADS).
    threads = [threading.Thread(target=reads, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    assert not prometheus.alerts("RatesNotReady")
    stopped_at, stopped_wall = time.monotonic(), time.time()
    stack.compose("stop", "db")
    try:
        fired, delivered = alert_delivered(prometheus, sink, "RatesNotReady", (stopped_at, stopped_wall),
                                           NOT_READY_WITHIN)
        print(f"\n[database stopped] RatesNotReady firing after {fired:.1f} s, at the sink after "
              f"{delivered:.1f} s; other alerts firing: "
              f"{sorted(prometheus.firing())}")
        assert prometheus.value('sum(rates_http_requests_total{route="/rates",status="503"})') > 0
    finally:  # the database back and ready even when an assertion failed: later tests need it
        stack.compose("start", "db")
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        stack.wait_healthy("db")
        stack.wait_for("/readyz", within=60)
    wait_until(lambda: sink.received("RatesNotReady", status="resolved", after=stopped_wall), 30,
               "RatesNotReady resolved at the alert sink")
