"""Drive a copy of the compose stack from the tests: start, stop, inspect, query."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parent.parent
ORIGINAL_DUMP = ROOT.parent / "shared" / "data" / "rates.sql"
DOCUMENTED_QUERY = "date_from=2021-01-01&date_to=2021-01-31&orig_code=CNGGZ&dest_code=EETLL"


def dotenv_value(name: str) -> str:
    """A value of the project's .env (written by `make env`), read by python-dotenv like rates.config."""
    value = dotenv_values(ROOT / ".env").get(name)
    if value is None:
        raise AssertionError(f"{name} is not set in {ROOT / '.env'}: run `make env`")
    return value


def dotenv_password() -> str:
    return dotenv_value("POSTGRES_PASSWORD")


def run(cmd: list[str], env: dict[str, str] | None = None, check: bool = True, timeout: float = 600,
        ) -> subprocess.CompletedProcess[str]:
    """Run a command from the repository root; on failure the error shows its output."""
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@dataclass
class Stack:
    """One copy of the stack: a compose project name and its published ports."""

    project: str
    api_port: int
    db_port: int
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            COMPOSE_PROJECT_NAME=self.project,
            API_PORT=str(self.api_port),
            DB_PUBLISH_PORT=str(self.db_port),
            **self.extra_env,
        )
        return env

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def make(self, target: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["make", target], env=self.env, check=check)

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["docker", "compose", *args], env=self.env, check=check)

    def conninfo(self, dbname: str = "rates") -> str:
        return (f"host=127.0.0.1 port={self.db_port} dbname={dbname} user=postgres "
                f"password={dotenv_password()} connect_timeout=5")

    def connect(self, dbname: str = "rates", **kwargs) -> psycopg.Connection:
        return psycopg.connect(self.conninfo(dbname), **kwargs)

    def containers(self) -> list[dict]:
        """`docker compose ps --all` as a list of dicts (one per container)."""
        out = self.compose("ps", "--all", "--format", "json").stdout.strip()
        if not out:
            return []
        if out.startswith("["):
            return json.loads(out)
        return [json.loads(line) for line in out.splitlines()]

    def container_id(self, service: str) -> str:
        return self.compose("ps", "--all", "-q", service).stdout.strip()

    def inspect(self, service: str) -> dict:
        return json.loads(run(["docker", "inspect", self.container_id(service)]).stdout)[0]

    def get(self, path: str, timeout: float = 10, token: str | None = None) -> requests.Response:
        """GET ``path``; with ``token``, as a bearer (the /batches records need one)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.get(self.api_url + path, timeout=timeout, headers=headers)

    def wait_for(self, path: str, status: int = 200, within: float = 60) -> requests.Response:
        """Poll the API until ``path`` answers ``status``; fail after ``within`` seconds."""
        deadline = time.monotonic() + within
        last: object = None
        while time.monotonic() < deadline:
            try:
                response = self.get(path, timeout=5)
                if response.status_code == status:
                    return response
                last = f"{response.status_code} {response.text[:200]}"
            except requests.RequestException as exc:
                last = exc
            time.sleep(0.5)
        raise AssertionError(f"{path} did not answer {status} within {within}s; last: {last}")

    def wait_healthy(self, service: str, within: float = 90) -> None:
        """Wait until Docker reports ``service`` healthy (after a restart, say)."""
        deadline = time.monotonic() + within
        while (health := self.inspect(service)["State"].get("Health", {}).get("Status")) != "healthy":
            if time.monotonic() > deadline:
                raise AssertionError(f"{service} is {health}, not healthy, after {within}s")
            time.sleep(0.5)

    def resources(self, kind: str) -> list[str]:
        """Names of the project's docker resources of ``kind`` (container, network, volume)."""
        flag = {"container": ["ps", "-a"], "network": ["network", "ls"], "volume": ["volume", "ls"]}[kind]
        out = run(["docker", *flag, "-q", "--filter", f"label=com.docker.compose.project={self.project}"]).stdout
        return out.split()


# ---- Batch ingestion helpers ----

def dotenv_ingest_token() -> str:
    """The bearer token for POST /batches, from .env (written there by `make env`)."""
    return dotenv_value("INGEST_TOKEN")


def _proc_status(pid: int) -> dict[str, str]:
    status = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        status[name] = value.strip()
    return status


def server_workers(stack: Stack, service: str = "api") -> list[int]:
    """Host PIDs of the server's worker processes: the Python processes below the container's
    main process (gunicorn's and granian's workers alike), found through the host's /proc."""
    main = stack.inspect(service)["State"]["Pid"]
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                children.setdefault(int(_proc_status(int(entry.name))["PPid"]), []).append(int(entry.name))
            except (OSError, KeyError, ValueError):
                continue  # gone meanwhile
    found, todo = [], list(children.get(main, []))
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            if b"python" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return sorted(found)


def rss_kb(pid: int) -> int:
    """Resident set size of a host process, in KiB (0 once it is gone)."""
    try:
        return int(_proc_status(pid)["VmRSS"].split()[0])
    except (OSError, KeyError):
        return 0


def kill_server_workers(stack: Stack, service: str = "api") -> list[int]:
    """SIGKILL every worker process of ``service`` from inside its container; their host PIDs."""
    pids = server_workers(stack, service)
    assert pids, f"no worker process found in {service}"
    in_container = [_proc_status(pid)["NSpid"].split()[-1] for pid in pids]
    run(["docker", "exec", stack.container_id(service), "sh", "-c", f"kill -KILL {' '.join(in_container)}"])
    return pids


def wait_for_batch_copy(stack: Stack, within: float = 30) -> int:
    """Wait until a batch's COPY into prices runs on the server; its backend pid."""
    deadline = time.monotonic() + within
    with stack.connect(autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT pid FROM pg_stat_activity WHERE query LIKE 'COPY public.prices%' "
                               "AND state = 'active'").fetchone()
            if row:
                return row[0]
            time.sleep(0.02)
    raise AssertionError("the batch's COPY never showed in pg_stat_activity")
