"""The highly available stack (compose.ha.yaml) under faults: each promise proven by breaking a
part under a steady load (reads through HAProxy at a fixed rate, a stream of small batches, each
batch retried with its own Idempotency-Key until acknowledged), then checking that every
acknowledged batch is present exactly once with all its rows, none partly, and that the nodes
agree. The tests share one HA stack (the `ha` fixture of conftest.py, monitored) and run in
order; each leaves it whole again.

Figures (write gaps, rejoin times) are printed, not asserted, except where the promise is a
count: failed reads, lost batches. `make bench-ha` measures them over several runs.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import requests

from tools.ha import DOCUMENTED, HaStack, Traffic, batch_body, check_no_loss, node_state, wait_until


def prices_now(stack: HaStack) -> int:
    return node_state(stack, wait_until(stack.leader, 30, "a primary"))[0]  # type: ignore[arg-type]


def all_streaming(stack: HaStack, within: float = 90) -> None:
    """Wait until the cluster is whole again: a leader and every other node a streaming standby."""
    standbys = len(stack.nodes) - 1

    def whole() -> bool:
        members = stack.members()
        return (sum(m["Role"] == "Leader" for m in members) == 1
                and sum(m["State"] == "streaming" for m in members) == standbys)
    wait_until(whole, within, f"a leader and {standbys} streaming standbys")


def report(name: str, traffic: Traffic, **figures: object) -> None:
    gaps = traffic.write_gaps()
    extra = " ".join(f"{k}={v}" for k, v in figures.items())
    print(f"\n[{name}] reads={len(traffic.reads)} failed={len(traffic.failed_reads())} "
          f"batches={len(traffic.acknowledged())} write gap max={max(gaps, default=0):.1f}s {extra}")


def test_a_batch_acknowledged_is_read_at_once_through_any_replica(ha):
    """Read-your-writes across replicas: batches commit with remote_apply and reads go to the
    synchronous standbys only, so the GET right after a 201 counts the batch, whichever API
    replica and standby answer it, cache included (each replica's cache checks the data version
    of the standby it reads)."""
    all_streaming(ha)
    headers = {"Authorization": f"Bearer {ha.ingest_token()}", "Content-Type": "text/csv"}
    session = requests.Session()
    for i in range(20):
        day = f"2306-01-{1 + i:02d}"
        url = f"{ha.api_url}/rates?date_from={day}&date_to={day}&orig_code=CNGGZ&dest_code=EETLL"
        assert session.get(url, timeout=10).json()["rates"][0]["count"] is None  # cached: nothing that day
        rows = 3 + i % 4
        response = session.post(ha.api_url + "/batches", data=batch_body(day, rows),
                                headers={**headers, "Idempotency-Key": f"ryw-{uuid.uuid4().hex}"}, timeout=30)
        assert response.status_code == 201, response.text
        for _ in range(4):  # reads land on both API replicas and both standbys
            assert session.get(url, timeout=10).json()["rates"][0]["count"] == rows, f"batch {i} not read back"


def test_a_replica_killed_costs_no_read_and_writes_go_on(ha):
    all_streaming(ha)
    primary = ha.leader()
    replica = next(n for n in ha.nodes if n != primary)
    baseline = prices_now(ha)
    with Traffic(ha, f"replica-{uuid.uuid4().hex[:6]}") as traffic:
        time.sleep(2)
        ha.kill(replica)
        killed_at = time.monotonic()
        time.sleep(8)
    after_kill = [b for b in traffic.acknowledged() if b.acknowledged_at > killed_at + 5]
    report("replica killed", traffic)
    assert traffic.failed_reads() == []
    assert after_kill, "no batch was acknowledged after the replica was lost"
    check_no_loss(ha, traffic, baseline, nodes=tuple(n for n in ha.nodes if n != replica))
    ha.start(replica)
    all_streaming(ha)
    check_no_loss(ha, traffic, baseline)


def test_an_etcd_member_killed_is_not_seen_by_clients(ha):
    baseline = prices_now(ha)
    with Traffic(ha, f"etcd-{uuid.uuid4().hex[:6]}") as traffic:
        time.sleep(2)
        ha.kill("etcd2")
        time.sleep(5)
    report("etcd member killed", traffic)
    assert traffic.failed_reads() == []
    assert traffic.write_gaps() == [], "a batch had to be retried"
    check_no_loss(ha, traffic, baseline)
    ha.start("etcd2")


def requests_on(stack: HaStack, container: str, having: str) -> float:
    """How many requests one API container has served whose metric line has ``having``."""
    text = stack.run("docker", "exec", container, "python", "-c", "import urllib.request; print(urllib.request"
                     ".urlopen('http://127.0.0.1:3000/metrics').read().decode())").stdout
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("rates_http_requests_total{") and having in line)


def busy_server(stack: HaStack, backend: str) -> str:
    """The server of ``backend`` that has a session open right now (HAProxy's view)."""
    def find() -> str | None:
        return next((r[1] for r in stack.stat_rows(backend) if r[1] not in ("FRONTEND", "BACKEND")
                     and int(r[4] or 0) > 0), None)
    return wait_until(find, 30, f"a busy server in {backend}", every=0.1)  # type: ignore[return-value]


def paused_body(rows: int, day: str, halfway: threading.Event, resume: threading.Event):
    """``batch_body`` streamed in ten parts, waiting after the fifth until ``resume`` is set: a kill
    made meanwhile lands mid-batch every time, not by luck of timing."""
    body, step = batch_body(day, rows), -(-len(batch_body(day, rows)) // 10)
    for part in range(10):
        if part == 5:
            halfway.set()
            resume.wait(60)
        yield body[part * step:(part + 1) * step]


def upload(stack: HaStack, key: str, rows: int | bytes | Iterator[bytes], day: str, results: list) -> None:
    """POST one batch (``rows`` rows of ``day``, or a ready body) and record its status."""
    body = batch_body(day, rows) if isinstance(rows, int) else rows
    headers = {"Authorization": f"Bearer {stack.ingest_token()}", "Content-Type": "text/csv",
               "Idempotency-Key": key}
    try:
        response = requests.post(stack.api_url + "/batches", data=body, headers=headers, timeout=600)
        results.append(response.status_code)
    except requests.RequestException as exc:
        results.append(type(exc).__name__)


def test_an_api_replica_killed_costs_no_read_and_its_upload_is_retried_once(ha):
    with Traffic(ha, f"api-{uuid.uuid4().hex[:6]}", rows=0) as traffic:
        time.sleep(2)
        ha.kill_container(ha.containers("api-read")[0])
        time.sleep(3)
        key, results = f"api-upload-{uuid.uuid4().hex[:6]}", []
        halfway, resume = threading.Event(), threading.Event()
        body = paused_body(300_000, "2301-01-01", halfway, resume)
        thread = threading.Thread(target=upload, args=(ha, key, body, "2301-01-01", results))
        thread.start()
        assert halfway.wait(60), "the upload did not get halfway"
        try:
            ha.kill_container(ha.server_container("api_ingest", busy_server(ha, "api_ingest")))
        finally:
            resume.set()
        thread.join()
        assert results[0] != 201, "the upload survived the kill of its replica"
        upload(ha, key, 300_000, "2301-01-01", results)
    report("API replica killed", traffic, upload=results)
    assert traffic.failed_reads() == []
    assert results[1] == 201
    with psycopg.connect(ha.conninfo()) as conn:
        recorded = conn.execute("SELECT count(*), min(rows) FROM batches WHERE key = %s", (key,)).fetchone()
        present = conn.execute("SELECT count(*) FROM prices WHERE day = '2301-01-01'").fetchone()[0]
    assert recorded == (1, 300_000) and present == 300_000
    ha.compose("up", "--detach", "--wait", "api-read", "api-ingest")  # the killed containers again


def test_the_proxy_answers_in_the_service_s_json_error_shape_when_no_replica_is_up(ha):
    """Every read replica stopped: HAProxy's 503 is JSON with a message, like the service's own
    errors, not an HTML page; the replicas started again serve at once."""
    ha.compose("stop", "api-read")
    try:
        def refused() -> tuple[requests.Response] | None:
            answer = requests.get(ha.api_url + DOCUMENTED, timeout=10)
            return (answer,) if answer.status_code == 503 else None  # a Response is false when not ok

        answer, = wait_until(refused, 30, "HAProxy's 503")  # type: ignore[misc]
        assert answer.headers["Content-Type"] == "application/json"
        assert "retry" in answer.json()["error"]
    finally:
        ha.compose("up", "--detach", "--wait", "api-read")
    wait_until(lambda: requests.get(ha.api_url + DOCUMENTED, timeout=10).status_code == 200, 30, "reads again")


def test_a_planned_switchover_costs_no_read(ha):
    all_streaming(ha)
    before = ha.leader()
    baseline = prices_now(ha)
    with Traffic(ha, f"switch-{uuid.uuid4().hex[:6]}") as traffic:
        time.sleep(2)
        ha.run("make", "--no-print-directory", "switchover")
        time.sleep(4)
    report("switchover", traffic)
    assert ha.leader() != before
    assert traffic.failed_reads() == []
    check_no_loss(ha, traffic, baseline)
    all_streaming(ha)


def test_the_primary_killed_is_replaced_and_rejoins_as_a_replica(ha):
    all_streaming(ha)
    primary = ha.leader()
    baseline = prices_now(ha)
    with Traffic(ha, f"kill-{uuid.uuid4().hex[:6]}") as traffic:
        time.sleep(2)
        ha.kill(primary)
        wait_until(lambda: ha.new_leader(primary), 60, "a new primary")
        time.sleep(3)
    report("primary killed", traffic)
    assert traffic.failed_reads() == []
    assert traffic.write_gaps(), "no batch met the failover"
    check_no_loss(ha, traffic, baseline, nodes=tuple(n for n in ha.nodes if n != primary))
    started = time.monotonic()
    ha.start(primary)
    wait_until(lambda: ha.role(primary) in (("Sync Standby", "streaming"), ("Replica", "streaming")), 120,
               f"{primary} back as a streaming replica")
    print(f"[primary killed] {primary} rejoined in {time.monotonic() - started:.1f}s")
    all_streaming(ha)
    check_no_loss(ha, traffic, baseline)


def test_a_primary_cut_off_stops_accepting_writes_and_no_batch_is_lost(ha):
    all_streaming(ha)
    primary = ha.leader()
    baseline = prices_now(ha)
    marker = f"2302-{1 + uuid.uuid4().int % 12:02d}-01"
    with Traffic(ha, f"cut-{uuid.uuid4().hex[:6]}") as traffic:
        time.sleep(2)
        aliases = ha.disconnect(primary)
        cut_at = time.monotonic()
        # A write sent to the isolated node itself: it can only wait for a standby that is gone.
        direct = ha.compose("exec", "-T", primary, "psql", "-U", "postgres", "-d", "rates", "-Xc",
                            "SET statement_timeout = '60s'",
                            "-c", f"INSERT INTO prices VALUES ('CNGGZ', 'EETLL', '{marker}', 1)",
                            check=False, timeout=90)
        demoted_after = time.monotonic() - cut_at
        new = wait_until(lambda: ha.new_leader(primary), 60, "a new primary")
    report("primary cut off", traffic, direct_write_rc=direct.returncode, ended_after=f"{demoted_after:.1f}s")
    assert direct.returncode != 0, f"the isolated node acknowledged a write: {direct.stdout}"
    assert new != primary
    ha.reconnect(primary, aliases)
    all_streaming(ha, within=120)
    assert ha.sql(new, f"SELECT count(*) FROM prices WHERE day = '{marker}'") == "0"
    assert traffic.failed_reads() == []
    check_no_loss(ha, traffic, baseline)


def test_the_number_of_api_replicas_is_one_variable(ha):
    """HA_API_READ_REPLICAS=3 and `make up-ha`: a third read replica, found by HAProxy through
    Docker's DNS, takes its share of the reads; back to the default (2) it is gone again."""
    ha.extra_env["HA_API_READ_REPLICAS"] = "3"
    try:
        ha.make("up-ha")
    finally:
        del ha.extra_env["HA_API_READ_REPLICAS"]
    replicas = ha.containers("api-read")
    assert len(replicas) == 3
    wait_until(lambda: list(ha.backend_servers("api_read").values()).count("UP") == 3, 30, "3 read replicas UP")
    before = {c: requests_on(ha, c, 'route="/rates"') for c in replicas}
    session = requests.Session()
    for _ in range(30):  # round robin: 10 each
        assert session.get(ha.api_url + DOCUMENTED, timeout=10).status_code == 200
    served = {c: requests_on(ha, c, 'route="/rates"') - before[c] for c in replicas}
    assert all(n > 0 for n in served.values()), served
    ha.make("up-ha")
    assert len(ha.containers("api-read")) == 2
    wait_until(lambda: list(ha.backend_servers("api_read").values()).count("UP") == 2, 30, "2 read replicas UP")


def read_port_servers(stack: HaStack, expected: set[str], most: int = 40) -> set[str]:
    """The addresses of the nodes behind HAProxy's read port: sessions opened and held one after
    the other (leastconn sends each to a node with the fewest, the API's pooled sessions included)
    until they reached every ``expected`` address, or ``most`` sessions."""
    sessions: list[psycopg.Connection] = []
    seen: set[str] = set()
    try:
        while seen < expected and len(sessions) < most:
            sessions.append(psycopg.connect(stack.conninfo(stack.read_port)))
            seen.add(str(sessions[-1].execute("SELECT host(inet_server_addr())").fetchone()[0]))
        return seen
    finally:
        for s in sessions:
            s.close()


def test_the_number_of_postgresql_nodes_is_one_variable(ha):
    """HA_PG_NODES=5 and `make up-ha`: two more nodes copy the primary and join as synchronous
    standbys, the read port balances over all four standbys, and the batches acknowledged under
    load are on all five nodes. Back to the default (3), the two are removed and the cluster has
    its two synchronous standbys again."""
    all_streaming(ha)
    baseline = prices_now(ha)
    ha.extra_env["HA_PG_NODES"] = "5"
    try:
        with Traffic(ha, f"nodes-{uuid.uuid4().hex[:6]}") as traffic:
            ha.make("up-ha")
            assert ha.nodes == ("pg1", "pg2", "pg3", "pg4", "pg5")
            ha.wait_all_synchronous()
            wait_until(lambda: list(ha.backend_servers("pg_sync_replicas").values()).count("UP") == 4, 30,
                       "4 standbys UP behind the read port")
            time.sleep(3)
        report("five nodes", traffic)
        assert traffic.failed_reads() == []
        check_no_loss(ha, traffic, baseline)  # the five nodes agree
        primary = ha.leader()
        standbys = {ha.address(ha.container(n)) for n in ha.nodes if n != primary}
        assert read_port_servers(ha, standbys) == standbys
    finally:
        del ha.extra_env["HA_PG_NODES"]
    with Traffic(ha, f"nodes-{uuid.uuid4().hex[:6]}") as shrink:
        ha.make("up-ha")
        ha.wait_all_synchronous()  # pg4 and pg5 gone from the cluster
        wait_until(lambda: list(ha.backend_servers("pg_sync_replicas").values()).count("UP") == 2, 30,
                   "2 standbys UP behind the read port")
    report("back to three nodes", shrink)
    assert shrink.failed_reads() == []
    for node in ("pg4", "pg5"):  # no longer services of the stack: asked of Docker
        assert not ha.run("docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={ha.project}",
                          "--filter", f"label=com.docker.compose.service={node}").stdout.strip()
    check_no_loss(ha, shrink, baseline + sum(b.rows for b in traffic.acknowledged()))


def test_a_rolling_deploy_loses_no_request_and_lets_a_long_upload_finish(ha):
    key, results = f"deploy-{uuid.uuid4().hex[:6]}", []
    baseline = prices_now(ha)
    revision = f"test-{uuid.uuid4().hex[:12]}"
    with Traffic(ha, f"deploy-{uuid.uuid4().hex[:6]}", rows=0) as traffic:
        thread = threading.Thread(target=upload, args=(ha, key, 1_000_000, "2303-01-01", results))
        thread.start()
        busy_server(ha, "api_ingest")
        ha.extra_env["API_REVISION"] = revision
        try:
            deploy = ha.run("make", "--no-print-directory", "deploy", check=False, timeout=900)
        finally:
            del ha.extra_env["API_REVISION"]
        thread.join()
    report("rolling deploy", traffic, upload=results)
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    assert results == [201]
    assert traffic.failed_reads() == []
    assert prices_now(ha) == baseline + 1_000_000
    label = '{{index .Config.Labels "org.opencontainers.image.revision"}}'
    for service, backend in (("api-read", "api_read"), ("api-ingest", "api_ingest")):
        containers = ha.containers(service)
        assert len(containers) == 2, f"{service}: {len(containers)} replicas after the deploy, not 2"
        for container in containers:
            running = ha.run("docker", "inspect", "-f", label, container).stdout.strip()
            assert running == revision, f"{service} runs revision {running}, not the deployed {revision}"
        assert sorted(ha.backend_servers(backend).values()).count("UP") == 2, ha.backend_servers(backend)
    answered = requests.get(ha.api_url + "/healthz", timeout=10)
    assert answered.status_code == 200


def test_reads_keep_their_latency_during_a_burst_of_uploads(ha):
    """100 concurrent 10,000-row uploads go to the ingest replicas only, one at a time on each
    (the others wait in HAProxy's queue); reads, served by the read replicas, are not queued
    behind them. Measured before the split (one API for both): a 430 ms read p99 and a 4 s worst
    case during such a burst."""
    def posts_on(container: str) -> float:
        return requests_on(ha, container, 'method="POST"')

    before = {c: posts_on(c) for c in ha.containers("api-read")}
    results: list = []
    # Bodies made beforehand: this process's own work must not delay the reads it times.
    bodies = [batch_body(f"2304-{1 + i // 28:02d}-{1 + i % 28:02d}", 10_000) for i in range(100)]
    with Traffic(ha, f"burst-{uuid.uuid4().hex[:6]}", read_rate=50, rows=0) as traffic:
        time.sleep(2)
        threads = [threading.Thread(target=upload, args=(ha, f"burst-{uuid.uuid4().hex[:8]}", body, "", results))
                   for body in bodies]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        time.sleep(1)
    p99, worst = traffic.read_latency_ms(0.99), max(r[2] for r in traffic.reads) * 1000
    report("upload burst", traffic, uploads=f"{results.count(201)}x201", read_p99=f"{p99:.1f}ms",
           read_worst=f"{worst:.0f}ms")
    assert results.count(201) == 100, results
    assert traffic.failed_reads() == []
    assert {s: posts_on(s) for s in before} == before, "an upload reached a read replica"
    # Admission control (HA_INGEST_CONCURRENCY=1): one upload at a time per ingest replica, the
    # rest queued in HAProxy.
    rows = ha.stat_rows("api_ingest")
    servers = [r for r in rows if r[1] != "BACKEND" and r[17] == "UP"]
    assert servers and all(r[6] == "1" and int(r[5]) <= 1 for r in servers), [r[:7] for r in servers]
    assert int(next(r for r in rows if r[1] == "BACKEND")[3]) > 1, "no upload waited in HAProxy's queue"
    # The target is a p99 under 50 ms (`make bench-ha` measures it); this bound only catches
    # reads queued behind uploads again, on a shared machine.
    assert p99 < 250, f"read p99 {p99:.0f} ms during the burst"


def test_a_batch_whose_standby_wait_is_cancelled_is_not_acknowledged(ha):
    """Both standbys stopped: strict synchronous mode makes every commit wait. Cancelling that
    wait leaves the batch committed on the primary alone, so it must not get a 201; its retry,
    once a standby is back, is acknowledged (200) and the batch is on every node."""
    all_streaming(ha)
    primary = ha.leader()
    standbys = [n for n in ha.nodes if n != primary]
    key, day, results = f"unconfirmed-{uuid.uuid4().hex[:6]}", "2305-01-01", []
    for node in standbys:
        ha.compose("stop", node)
    try:
        thread = threading.Thread(target=upload, args=(ha, key, 100, day, results))
        thread.start()
        pid = wait_until(lambda: ha.sql(primary, "SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep' "
                                                  "AND application_name = 'rates'"), 30, "a commit waiting")
        ha.sql(primary, f"SELECT pg_cancel_backend({pid})")
        thread.join(timeout=60)
    finally:
        for node in standbys:
            ha.compose("start", node)
    assert results == [503], results
    all_streaming(ha)
    upload(ha, key, 100, day, results)
    assert results[1] == 200
    for node in ha.nodes:
        assert ha.sql(node, f"SELECT count(*) FROM prices WHERE day = '{day}'") == "100", node
