"""Drive the highly available stack (compose.ha.yaml) from the fault-injection tests, the failover
drill and the HA benchmark: start it, find the primary, kill or cut off a part, put it back, and
put a steady load on it while checking that nothing acknowledged is lost.

Nothing here is shipped: it runs on the host, against the stack's loopback ports.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import psycopg
import requests
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTED = "/rates?date_from=2021-01-01&date_to=2021-01-31&orig_code=CNGGZ&dest_code=EETLL"


@dataclass
class HaStack:
    """One copy of the HA stack: its compose project name and its loopback ports."""

    project: str = "rates-ha"
    api_port: int = 3300
    write_port: int = 5500
    read_port: int = 5501
    stats_port: int = 8404
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "HA_PROJECT": self.project, "HA_API_PORT": str(self.api_port),
                "HA_DB_WRITE_PORT": str(self.write_port), "HA_DB_READ_PORT": str(self.read_port),
                "HA_STATS_PORT": str(self.stats_port), **self.extra_env}

    @property
    def nodes(self) -> tuple[str, ...]:
        """The PostgreSQL nodes, pg1 ... pgN: N = HA_PG_NODES as scripts/ha-nodes reads it."""
        count = self.run("scripts/ha-nodes", "count").stdout.strip()
        return tuple(f"pg{i}" for i in range(1, int(count) + 1))

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def run(self, *cmd: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(cmd, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    def compose(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return self.run("scripts/ha-compose", *args, check=check, timeout=timeout)

    def down(self, volumes: bool = True, check: bool = True) -> None:
        """Remove the stack (scripts/ha-down): containers, network and, with ``volumes``, every volume."""
        self.run("scripts/ha-down", *(["--volumes"] if volumes else []), check=check)

    def make(self, target: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return self.run("make", "--no-print-directory", target, check=check, timeout=timeout)

    # ---- the parts ----

    def container(self, service: str) -> str:
        return self.compose("ps", "--all", "-q", service).stdout.strip()

    def containers(self, service: str) -> list[str]:
        """The running containers of a scaled service (api-read, api-ingest)."""
        return self.compose("ps", "-q", service).stdout.split()

    def address(self, container: str) -> str:
        return self.run("docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                        container).stdout.strip()

    def kill(self, service: str, signal: str = "KILL") -> None:
        self.kill_container(self.container(service), signal)

    def kill_container(self, container: str, signal: str = "KILL") -> None:
        """Kill one container (of a scaled service: api-read, api-ingest)."""
        self.run("docker", "kill", "-s", signal, container)

    def start(self, service: str) -> None:
        self.run("docker", "start", self.container(service))

    def network(self) -> str:
        return f"{self.project}_default"

    def aliases(self, service: str) -> list[str]:
        """The container's DNS names on the stack's network besides its id: the service name, and
        pg-nodes for a PostgreSQL node."""
        container = self.container(service)
        networks = json.loads(self.run("docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}",
                                       container).stdout)
        return [a for a in networks[self.network()]["Aliases"] or [] if not container.startswith(a)]

    def disconnect(self, service: str) -> list[str]:
        """Cut the service's container off the network; its aliases, for ``reconnect``."""
        aliases = self.aliases(service)
        self.run("docker", "network", "disconnect", self.network(), self.container(service))
        return aliases

    def reconnect(self, service: str, aliases: list[str]) -> None:
        # The aliases are how the others find the container (its service name, pg-nodes): give them back.
        self.run("docker", "network", "connect", *(f"--alias={a}" for a in aliases), self.network(),
                 self.container(service))

    def haproxy(self, command: str) -> str:
        return self.compose("exec", "-T", "haproxy", "sh", "-c",
                            f"echo '{command}' | socat stdio /tmp/haproxy.sock").stdout

    def server_container(self, backend: str, server: str) -> str:
        """The container behind one of HAProxy's server slots (api-read1, ...), by its address."""
        rows = [line.split() for line in self.haproxy(f"show servers state {backend}").splitlines()[2:]]
        address = next(r[4] for r in rows if len(r) > 4 and r[3] == server)
        service = backend.replace("_", "-")
        return next(c for c in self.containers(service) if self.address(c) == address)

    def stat_rows(self, backend: str) -> list[list[str]]:
        """HAProxy's statistics of a backend, a CSV row per server and one for the BACKEND:
        pxname, svname, qcur, qmax, scur, smax, slim, ... status (index 17)."""
        return [line.split(",") for line in self.haproxy("show stat").splitlines() if line.startswith(backend + ",")]

    def backend_servers(self, backend: str) -> dict[str, str]:
        """HAProxy's view of a backend: server name -> status (UP, DOWN, DRAIN, ...)."""
        return {r[1]: r[17] for r in self.stat_rows(backend) if r[1] not in ("FRONTEND", "BACKEND")}

    # ---- Patroni ----

    def members(self, exclude: tuple[str, ...] = ()) -> list[dict]:
        """`patronictl list` as seen from the first node that answers (and is not excluded)."""
        for node in self.nodes:
            if node in exclude:
                continue
            proc = self.compose("exec", "-T", node, "patronictl", "-c", "/etc/patroni/patroni.yml", "list", "-f",
                                "json", check=False, timeout=20)
            if proc.returncode == 0:
                return json.loads(proc.stdout)
        return []

    def leader(self, exclude: tuple[str, ...] = ()) -> str | None:
        return next((m["Member"] for m in self.members(exclude) if m["Role"] == "Leader"), None)

    def new_leader(self, old: str) -> str | None:
        """The leader, once it is another node than ``old`` (asked of the other nodes)."""
        leader = self.leader(exclude=(old,))
        return leader if leader not in (None, old) else None

    def role(self, node: str, exclude: tuple[str, ...] = ()) -> tuple[str, str] | None:
        """(role, state) of ``node``, e.g. ("Sync Standby", "streaming")."""
        return next(((m["Role"], m["State"]) for m in self.members(exclude) if m["Member"] == node), None)

    def wait_all_synchronous(self, within: float = 90) -> None:
        """Wait until the cluster is a leader and as many synchronous standbys as the other nodes
        (every standby synchronous: synchronous_node_count = nodes - 1, set by `make up-ha`)."""
        standbys = len(self.nodes) - 1
        wait_until(lambda: sorted(m["Role"] for m in self.members()) == ["Leader"] + ["Sync Standby"] * standbys,
                   within, f"a leader and {standbys} synchronous standbys")

    def sql(self, node: str, query: str, timeout: float = 30) -> str:
        """Run ``query`` on one node over its local socket (no proxy); its output, unaligned."""
        return self.compose("exec", "-T", node, "psql", "-U", "postgres", "-d", "rates", "-XtAc", query,
                            timeout=timeout).stdout.strip()

    def password(self) -> str:
        return dotenv_values(ROOT / ".env")["POSTGRES_PASSWORD"] or ""

    def conninfo(self, port: int | None = None) -> str:
        return (f"host=127.0.0.1 port={port or self.write_port} dbname=rates user=postgres "
                f"password={self.password()} connect_timeout=3")

    def ingest_token(self) -> str:
        return dotenv_values(ROOT / ".env")["INGEST_TOKEN"] or ""


def wait_until(predicate: Callable[[], object], within: float, what: str, every: float = 0.5) -> object:
    """Poll ``predicate`` until it returns something true; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - a part may be down while we poll
            last = exc
        time.sleep(every)
    raise AssertionError(f"{what}: not within {within:.0f} s (last: {last!r})")


# ---- steady load ----------------------------------------------------------------------------------

FIRST_DAY = date(2300, 1, 1)  # batches write days no dump has: each batch its own day
_DAYS = itertools.count(random.randrange(2_000_000))  # days apart from an earlier run's on a kept stack


def batch_body(day: date | str, rows: int) -> bytes:
    """A CSV batch of ``rows`` prices on one day (CNGGZ to EETLL)."""
    lines = ["orig_code,dest_code,day,price"] + [f"CNGGZ,EETLL,{day},{100 + i % 900}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Batch:
    key: str
    day: date
    rows: int
    attempts: int = 0
    first_failure: float | None = None
    acknowledged_at: float | None = None
    status: int | None = None


class Traffic:
    """Reads at a fixed rate and a stream of small batches, both through HAProxy, recorded.

    Reads: GET of the documented query, ``read_rate`` per second. Batches: ``rows`` rows each,
    one after another, each with its own Idempotency-Key and day; a batch that fails is sent
    again with the same key until it is acknowledged (201, or 200 for a replay). ``rows=0``:
    reads only.
    """

    def __init__(self, stack: HaStack, prefix: str, read_rate: float = 20, rows: int = 5, pause: float = 0.2) -> None:
        self.stack, self.prefix, self.read_rate, self.rows, self.pause = stack, prefix, read_rate, rows, pause
        self.reads: list[tuple[float, int | str, float]] = []  # (when, status or error, seconds)
        self.batches: list[Batch] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._read_loop, daemon=True)]
        if rows:
            self._threads.append(threading.Thread(target=self._batch_loop, daemon=True))

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def _read_loop(self) -> None:
        session = requests.Session()
        interval = 1 / self.read_rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                response = session.get(self.stack.api_url + DOCUMENTED, timeout=10)
                outcome: int | str = response.status_code
                if response.status_code == 200 and len(response.json()["rates"]) != 31:
                    outcome = "wrong answer"
            except requests.RequestException as exc:
                outcome = type(exc).__name__
            self.reads.append((started, outcome, time.monotonic() - started))
            next_at += interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _batch_loop(self) -> None:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {self.stack.ingest_token()}", "Content-Type": "text/csv"}
        while not self._stop.is_set():
            batch = Batch(f"{self.prefix}-{len(self.batches)}", FIRST_DAY + timedelta(days=next(_DAYS)), self.rows)
            self.batches.append(batch)
            body = batch_body(batch.day, batch.rows)
            deadline = time.monotonic() + 90
            while batch.acknowledged_at is None and time.monotonic() < deadline:
                batch.attempts += 1
                try:
                    response = session.post(self.stack.api_url + "/batches", data=body,
                                            headers={**headers, "Idempotency-Key": batch.key}, timeout=30)
                    if response.status_code in (200, 201):
                        batch.status, batch.acknowledged_at = response.status_code, time.monotonic()
                        break
                except requests.RequestException:
                    session = requests.Session()
                if batch.first_failure is None:
                    batch.first_failure = time.monotonic()
                time.sleep(0.2)
            self._stop.wait(self.pause)

    # ---- figures ----

    def failed_reads(self) -> list[tuple[float, int | str, float]]:
        return [r for r in self.reads if r[1] != 200]

    def acknowledged(self) -> list[Batch]:
        return [b for b in self.batches if b.acknowledged_at is not None]

    def write_gaps(self) -> list[float]:
        """For each batch that met a failure: seconds from its first failure to its acknowledgement."""
        return [b.acknowledged_at - b.first_failure for b in self.batches
                if b.first_failure is not None and b.acknowledged_at is not None]

    def read_latency_ms(self, quantile: float) -> float:
        times = sorted(r[2] * 1000 for r in self.reads if r[1] == 200)
        return statistics.quantiles(times, n=100)[int(quantile * 100) - 1] if len(times) > 1 else float("nan")


# ---- what must hold after every fault ---------------------------------------------------------------

def batch_rows(stack: HaStack, traffic: Traffic) -> dict[str, tuple[int, int]]:
    """key -> (rows recorded in batches, prices rows of its day) of every batch of ``traffic``
    that is committed, read on the primary."""
    days = {b.key: b.day for b in traffic.batches}
    with psycopg.connect(stack.conninfo()) as conn:
        recorded = dict(conn.execute("SELECT key, rows FROM batches WHERE key = ANY(%s) AND committed_at IS NOT NULL",
                                     (list(days),)).fetchall())
        found = dict(conn.execute("SELECT day, count(*) FROM prices WHERE day = ANY(%s) GROUP BY day",
                                  (list(days.values()),)).fetchall())
    return {key: (rows, found.get(days[key], 0)) for key, rows in recorded.items()}


def node_state(stack: HaStack, node: str) -> tuple[int, int]:
    """(rows of prices, data version) on one node."""
    query = "SELECT (SELECT count(*) FROM prices), (SELECT version FROM data_version)"
    count, version = stack.sql(node, query).split("|")
    return int(count), int(version)


def check_no_loss(stack: HaStack, traffic: Traffic, baseline: int, nodes: tuple[str, ...] | None = None,
                  within: float = 60) -> None:
    """Every acknowledged batch present exactly once with all its rows, none partly present,
    prices = ``baseline`` + the rows of the batches present, and the nodes (every one unless
    ``nodes`` names some) in agreement once caught up."""
    nodes = nodes or stack.nodes
    primary = wait_until(lambda: stack.leader(), 30, "a primary")
    present = wait_until(lambda: batch_rows(stack, traffic) or {"": (0, 0)}, 30, "the primary answering")
    present.pop("", None)  # type: ignore[union-attr]
    count = node_state(stack, primary)[0]  # type: ignore[arg-type]
    assert count == baseline + sum(rows for rows, _ in present.values()), (
        f"prices has {count} rows: {baseline} before + {sum(r for r, _ in present.values())} of the batches expected")
    missing = [b.key for b in traffic.acknowledged() if b.key not in present]
    assert not missing, f"acknowledged batches missing on the primary: {missing}"
    partial = {key: rows for key, rows in present.items() if rows[0] != rows[1]}
    assert not partial, f"batches not present whole (recorded rows, rows found): {partial}"
    unacknowledged = set(present) - {b.key for b in traffic.acknowledged()}
    assert not unacknowledged, f"committed batches never acknowledged to the client: {unacknowledged}"
    wait_until(lambda: len({node_state(stack, n) for n in nodes}) == 1, within,
               f"every node ({', '.join(nodes)}) with the same rows and data version")
