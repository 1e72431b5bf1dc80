#!/usr/bin/env python3
"""HA benchmark (a script printing figures, not a test), on a HA stack of its own
(BENCH_HA_PROJECT, default rates-ha-bench, API port 3500), started from nothing:

  (a) BENCH_HA_KILLS primary kills (default 5) under a steady load: median and worst of the
      write gap, failed reads, time to promote, from the promotion to the first batch acknowledged,
      time for the old primary to rejoin;
  (b) BENCH_HA_SWITCHOVERS planned switchovers (default 3): the write gap;
  (c) read throughput of the documented query through HAProxy (wrk inside HAProxy's network
      namespace, BENCH_CONNECTIONS connections, BENCH_SECONDS each) with one API read replica
      and with two, against
      pgbench running the API's own SQL on one standby in the same run: does reading scale out?
  (d) BENCH_HA_BURSTS bursts (default 3) of 100 concurrent 10,000-row uploads (sent by a child
      process): the read p99 and worst of GET /rates at 50 reads/s during each, against 10 s of
      the same reads without uploads just before it (the baseline, same run); an upload
      answered 503 is retried with its key, and counted;
  (e) commit latency against the node count: for each count in BENCH_HA_NODES ("3 5"), the
      stack resized (HA_PG_NODES, `make up-ha`; every standby synchronous), then BENCH_HA_COMMITS
      (200) 100-row batches one after the other: median and p99 from POST to 201, against the
      first count's, same run. What every standby synchronous costs a write.

BENCH_KEEP=1 leaves the stack running (at the default node count).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import requests  # noqa: E402
from bench_api import sql_for  # noqa: E402
from failover_drill import drill  # noqa: E402

from tools.ha import (  # noqa: E402
    DOCUMENTED,
    FIRST_DAY,
    HaStack,
    Traffic,
    batch_body,
    check_no_loss,
    node_state,
    wait_until,
)

KILLS = int(os.environ.get("BENCH_HA_KILLS", "5"))
SWITCHOVERS = int(os.environ.get("BENCH_HA_SWITCHOVERS", "3"))
BURSTS = int(os.environ.get("BENCH_HA_BURSTS", "3"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "4"))
NODE_COUNTS = [int(n) for n in os.environ.get("BENCH_HA_NODES", "3 5").split()]
COMMITS = int(os.environ.get("BENCH_HA_COMMITS", "200"))


def switchover_gap(stack: HaStack) -> dict[str, float]:
    wait_until(lambda: sum(m["State"] == "streaming" for m in stack.members()) == 2, 120, "two streaming standbys")
    baseline = node_state(stack, stack.leader())[0]  # type: ignore[arg-type]
    with Traffic(stack, f"switch-{uuid.uuid4().hex[:6]}") as traffic:
        time.sleep(2)
        stack.run("scripts/switchover")
        time.sleep(5)
    check_no_loss(stack, traffic, baseline)
    return {"write_gap_s": max(traffic.write_gaps(), default=0.0), "failed_reads": len(traffic.failed_reads())}


def wrk(stack: HaStack, path: str) -> float:
    """Requests/s of wrk on HAProxy's API port, over loopback inside HAProxy's network namespace
    (as bench_api.py does for the api container): the host's port forwarding costs nothing."""
    pid = stack.run("docker", "inspect", "-f", "{{.State.Pid}}", stack.container("haproxy")).stdout.strip()
    command = ["nsenter", "-t", pid, "-n", "wrk", "-t2", f"-c{CONNECTIONS}"]
    url = "http://127.0.0.1:8080" + path
    subprocess.run([*command, "-d2s", url], capture_output=True, check=True)  # warm-up
    out = subprocess.run([*command, f"-d{SECONDS}s", url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        sys.exit(f"wrk saw error responses:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def pgbench(stack: HaStack, node: str) -> float:
    o, d, f, t = "CNGGZ", "EETLL", "2021-01-01", "2021-01-31"
    script = sql_for(o, d, f, t).replace("'", "'\\''")
    out = stack.compose("exec", "-T", node, "sh", "-c",
                        f"printf '%s' '{script}' > /tmp/q.sql && pgbench -U postgres -n -M prepared -c {CONNECTIONS} "
                        f"-j 2 -T {SECONDS} -f /tmp/q.sql rates").stdout
    return float(re.search(r"tps = ([\d.]+) \((?:without initial|excluding connections)", out).group(1))


def read_scaling(stack: HaStack) -> dict[str, float]:
    standby = next(m["Member"] for m in stack.members() if m["Role"] != "Leader")
    second = sorted(name for name, status in stack.backend_servers("api_read").items() if status == "UP")[1]
    stack.haproxy(f"set server api_read/{second} state maint")
    one = wrk(stack, DOCUMENTED)
    stack.haproxy(f"set server api_read/{second} state ready")
    wait_until(lambda: stack.backend_servers("api_read").get(second) == "UP", 30, f"{second} up")
    two = wrk(stack, DOCUMENTED)
    return {"one_replica": one, "two_replicas": two, "pgbench_one_node": pgbench(stack, standby)}


def post_burst(url: str, token: str, paths: list[str]) -> tuple[list[int | str], list[str]]:
    """POST each file as a batch, all at once (a thread each); runs in a process of its own, so
    the uploads' Python work does not hold the GIL of the process that times the reads. A 503 is
    retried with the same key after a second, as the service asks a client to: the statuses are
    the last answers, the retries what each 503 said."""
    statuses: list[int | str] = []
    retries: list[str] = []

    def post(path: str) -> None:
        body, key = Path(path).read_bytes(), f"burst-{uuid.uuid4().hex}"
        for _ in range(3):
            response = requests.post(url + "/batches", data=body, timeout=600,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv",
                                              "Idempotency-Key": key})
            if response.status_code != 503:
                break
            retries.append(response.text[:300])
            time.sleep(1)
        # 200: the retry of a batch the 503 had left committed but not yet confirmed.
        statuses.append(201 if response.status_code in (200, 201) else f"{response.status_code} {response.text[:300]}")

    threads = [threading.Thread(target=post, args=(path,)) for path in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses, retries


def burst_latency(stack: HaStack, run: int) -> dict[str, float]:
    """Read latency at 50 reads/s: 10 s without uploads, then during 100 concurrent uploads."""
    first = FIRST_DAY + timedelta(days=20_000 + run * 100)  # days of their own, one per upload
    with tempfile.TemporaryDirectory() as folder, ProcessPoolExecutor(1, mp_context=get_context("spawn")) as child:
        paths = []
        for i in range(100):  # the bodies are written before anything is timed
            paths.append(f"{folder}/{i}.csv")
            Path(paths[-1]).write_bytes(batch_body(first + timedelta(days=i), 10_000))
        child.submit(int, 0).result()  # the child process is up before the timing starts
        with Traffic(stack, f"quiet-{uuid.uuid4().hex[:6]}", read_rate=50, rows=0) as quiet:
            time.sleep(10)
        with Traffic(stack, f"burst-{uuid.uuid4().hex[:6]}", read_rate=50, rows=0) as burst:
            time.sleep(1)
            started = time.monotonic()
            statuses, retries = child.submit(post_burst, stack.api_url, stack.ingest_token(), paths).result()
            seconds = time.monotonic() - started
            time.sleep(1)
    if statuses.count(201) != len(paths) or quiet.failed_reads() or burst.failed_reads():
        failed = [s for s in statuses if s != 201]
        sys.exit(f"burst {run}: {len(failed)} of {len(paths)} uploads failed: {failed}; "
                 f"failed reads {quiet.failed_reads() + burst.failed_reads()}")
    if retries:
        print(f"burst {run}: {len(retries)} upload(s) answered 503 and retried: {retries}")
    return {"quiet_p99": quiet.read_latency_ms(0.99), "burst_p99": burst.read_latency_ms(0.99),
            "burst_worst": max(r[2] for r in burst.reads) * 1000, "burst_s": seconds, "retries": len(retries)}


def commit_latency(stack: HaStack, nodes: int) -> dict[str, float]:
    """(e): the stack at ``nodes`` nodes, COMMITS 100-row batches in a row, POST -> 201 in ms."""
    stack.extra_env["HA_PG_NODES"] = str(nodes)
    stack.make("up-ha")
    stack.wait_all_synchronous(within=120)
    session, times = requests.Session(), []
    headers = {"Authorization": f"Bearer {stack.ingest_token()}", "Content-Type": "text/csv"}
    first = FIRST_DAY + timedelta(days=40_000 + 1_000 * nodes)  # days no other part uses
    for i in range(COMMITS):
        body = batch_body(first + timedelta(days=i), 100)
        started = time.perf_counter()
        answer = session.post(stack.api_url + "/batches", data=body, timeout=60,
                              headers={**headers, "Idempotency-Key": f"commit-{nodes}-{uuid.uuid4().hex}"})
        if answer.status_code != 201:
            sys.exit(f"a batch was answered {answer.status_code} with {nodes} nodes: {answer.text}")
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"nodes": nodes, "median": statistics.median(times), "p99": times[int(len(times) * 0.99) - 1]}


def main() -> int:
    if not shutil.which("wrk") or not shutil.which("nsenter"):
        sys.exit("wrk and nsenter are needed: apt-get install wrk util-linux (run as root: nsenter)")
    port = int(os.environ.get("BENCH_HA_PORT", "3500"))
    stack = HaStack(project=os.environ.get("BENCH_HA_PROJECT", "rates-ha-bench"), api_port=port,
                    write_port=port + 2200, read_port=port + 2201, stats_port=port + 5104)
    stack.down()
    stack.make("up-ha")
    try:
        kills = [drill(stack) for _ in range(KILLS)]
        switches = [switchover_gap(stack) for _ in range(SWITCHOVERS)]
        reads = read_scaling(stack)
        bursts = [burst_latency(stack, run) for run in range(BURSTS)]
        commits = [commit_latency(stack, nodes) for nodes in NODE_COUNTS]
        stack.extra_env.pop("HA_PG_NODES", None)
        if commits and os.environ.get("BENCH_KEEP") == "1":
            stack.make("up-ha")  # back to the default node count
    finally:
        if os.environ.get("BENCH_KEEP") != "1":
            stack.down(check=False)

    def line(name: str, values: list[float], unit: str = "s") -> str:
        if not values:
            return f"  {name:<38} (not measured)"
        return (f"  {name:<38} median {statistics.median(values):6.1f} {unit}   worst {max(values):6.1f} {unit}   "
                f"({', '.join(f'{v:.1f}' for v in values)})")

    print(f"\nHA stack, {KILLS} primary kills (SIGKILL) under load (20 reads/s, a 5-row batch every 0.2 s):")
    print(line("write gap (failure -> acknowledgement)", [k["write_gap_s"] for k in kills]))
    print(line("kill -> new primary seen by Patroni", [k["promoted_s"] for k in kills]))
    print(line("new primary -> first batch acknowledged", [k["first_ack_s"] for k in kills]))
    print(line("old primary: start -> streaming again", [k["rejoin_s"] for k in kills]))
    print(f"  failed reads: {[k['failed_reads'] for k in kills]} of {[k['reads'] for k in kills]}; "
          f"acknowledged batches lost: 0 (checked on every node)")
    print(f"\n{SWITCHOVERS} planned switchovers:")
    print(line("write gap", [s["write_gap_s"] for s in switches]))
    print(f"  failed reads: {[s['failed_reads'] for s in switches]}")
    print(f"\nread throughput, documented query, {CONNECTIONS} connections, {SECONDS} s each (req/s):")
    print(f"  API through HAProxy, 1 read replica   {reads['one_replica']:8.0f}")
    print(f"  API through HAProxy, 2 read replicas  {reads['two_replicas']:8.0f}  "
          f"(x{reads['two_replicas'] / reads['one_replica']:.2f})")
    print(f"  pgbench on one standby, same SQL      {reads['pgbench_one_node']:8.0f}  "
          f"(API with 2 replicas: {reads['two_replicas'] / reads['pgbench_one_node']:.1%})")
    print(f"  (one machine, {os.cpu_count()} cores: replicas share them)")
    print(f"\n{BURSTS} bursts of 100 concurrent 10,000-row uploads, GET /rates at 50/s (ms):")
    print(line("read p99, 10 s without uploads", [b["quiet_p99"] for b in bursts], "ms"))
    print(line("read p99 during the burst", [b["burst_p99"] for b in bursts], "ms"))
    print(line("worst read during the burst", [b["burst_worst"] for b in bursts], "ms"))
    print(line("burst: first upload sent -> last 201", [b["burst_s"] for b in bursts]))
    print(f"  uploads retried after a 503 (same key): {[b['retries'] for b in bursts]}")
    if commits:
        print(f"\ncommit latency, {COMMITS} 100-row batches one after the other, POST -> 201 (ms):")
        for c in commits:
            print(f"  {c['nodes']} nodes ({c['nodes'] - 1} synchronous standbys)   median {c['median']:6.1f}   "
                  f"p99 {c['p99']:6.1f}   (x{c['median'] / commits[0]['median']:.2f} the median with "
                  f"{commits[0]['nodes']} nodes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
