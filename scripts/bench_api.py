#!/usr/bin/env python3
"""Read-path benchmark (a script printing figures, not a test): the API against the database's
own limit for the same queries, measured in one run on this machine.

  (a) the documented query repeated;  (b) a mix of random routes and ranges.
  API: wrk (HTTP keep-alive) over loopback inside the api container's network namespace.
  Database: pgbench -M prepared running the same SQL as the API (rates.queries.DAILY_AVERAGE)
  over loopback inside the db container. Each load generator thus reaches its server the same
  way; when the namespace cannot be entered (not root, no nsenter), wrk goes over the bridge.
Both at the same concurrency (BENCH_CONNECTIONS, default 4), for BENCH_SECONDS each (default 10).
Prints throughput, latency p50/p99, the ratio API/database, and the RSS of each server process.
BENCH_CLIENT=bridge sends wrk over the bridge instead, as a client outside the container would.
Runs its own compose project (rates-bench) and removes it afterwards (BENCH_KEEP=1 keeps it).
Extra environment (e.g. WEB_WORKERS=3, RATES_CACHE_SIZE=0) is passed to the stack.
"""

from __future__ import annotations

import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rates.db.queries import DAILY_AVERAGE  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "4"))
MIX_SIZE = 128  # pgbench takes at most 128 scripts: one per (route, range) of the mix
DOCUMENTED = ("CNGGZ", "EETLL", "2021-01-01", "2021-01-31")
ENV = {
    **os.environ,
    "COMPOSE_PROJECT_NAME": os.environ.get("BENCH_PROJECT", "rates-bench"),
    "API_PORT": os.environ.get("BENCH_API_PORT", "3190"),
    "DB_PUBLISH_PORT": os.environ.get("BENCH_DB_PORT", "5490"),
}


def sh(*cmd: str, check: bool = True) -> str:
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    if check and proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def psql(sql: str) -> str:
    return sh("docker", "compose", "exec", "-T", "db", "psql", "-U", "postgres", "-d", "rates", "-tAc", sql)


def pick_mix(seed: int = 7) -> list[tuple[str, str, str, str]]:
    routes = [tuple(line.split("|")) for line in psql(
        "SELECT DISTINCT orig_code, dest_code FROM prices ORDER BY 1, 2").split()]
    rng = random.Random(seed)
    mix = []
    for _ in range(MIX_SIZE):
        orig, dest = rng.choice(routes)
        start = rng.randint(0, 35)
        length = rng.randint(1, 31)
        mix.append((orig, dest, f"2020-12-{25 + start:02d}" if start < 7 else _day(start - 7),
                    _day(start - 7 + length - 1)))
    return mix


def _day(offset: int) -> str:
    from datetime import date, timedelta

    return (date(2021, 1, 1) + timedelta(days=offset)).isoformat()


def sql_for(orig: str, dest: str, date_from: str, date_to: str) -> str:
    params = {"orig": orig, "dest": dest, "date_from": date_from, "date_to": date_to}
    text = DAILY_AVERAGE
    for name, value in params.items():
        text = text.replace(f"%({name})s", f"'{value}'")
    return " ".join(text.split()) + ";\n"


def container_cpu_seconds(service: str) -> float | None:
    """CPU time used so far by every process of a service's container (cgroup v1 or v2)."""
    cid = sh("docker", "inspect", "--format", "{{.Id}}", sh("docker", "compose", "ps", "-q", service).strip()).strip()
    for path in (f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage",
                 f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat",
                 f"/sys/fs/cgroup/docker/{cid}/cpu.stat"):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        if path.endswith("cpuacct.usage"):
            return int(text) / 1e9
        usage = re.search(r"usage_usec (\d+)", text)
        return int(usage.group(1)) / 1e6 if usage else None
    return None


# Host processes of the container runtime: they copy every line a container logs.
RUNTIME_PROCESSES = ("dockerd", "containerd", "containerd-shim", "docker-proxy")


def runtime_cpu_seconds() -> float:
    """CPU time used so far by the container runtime's host processes."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if name.startswith(RUNTIME_PROCESSES):
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds spent meanwhile by the api and db containers, the container runtime
    (log copying) and child processes (wrk)."""

    def __enter__(self) -> CpuMeter:
        self.start = {s: container_cpu_seconds(s) for s in ("api", "db")}
        self.runtime = runtime_cpu_seconds()
        self.children = _children_cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.used = {s: (None if self.start[s] is None else container_cpu_seconds(s) - self.start[s])
                     for s in ("api", "db")}
        self.used["runtime"] = runtime_cpu_seconds() - self.runtime
        self.used["client"] = _children_cpu() - self.children


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pgbench(scripts: list[Path]) -> dict[str, float]:
    # Copied as /tmp/<folder name> (the folders are named per measure, so never overwritten).
    folder = scripts[0].parent
    # Through tar over exec: the db container's root filesystem is read-only, its /tmp a tmpfs.
    archive = subprocess.run(["tar", "-C", str(folder.parent), "-c", folder.name], capture_output=True,
                             check=True).stdout
    subprocess.run(["docker", "compose", "exec", "-T", "db", "tar", "-C", "/tmp", "-x"],  # noqa: S108 - in the container
                   input=archive, cwd=ROOT, env=ENV, capture_output=True, check=True)
    files = " ".join(f"-f /tmp/{folder.name}/{p.name}" for p in scripts)
    with CpuMeter() as cpu:
        out = sh("docker", "compose", "exec", "-T", "db", "sh", "-c",
                 f"PGPASSWORD=$(cat /run/secrets/db_password) pgbench -h 127.0.0.1 -U postgres -n -M prepared "
                 f"-c {CONNECTIONS} -j 2 -T {SECONDS} {files} rates")
    tps = float(re.search(r"tps = ([\d.]+) \((?:without initial|excluding connections)", out).group(1))
    latency = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))
    done = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))
    # pgbench runs inside the db container: its CPU is in the db figure.
    used = None if cpu.used["db"] is None else cpu.used["db"] + cpu.used["runtime"]
    return {"rps": tps, "avg_ms": latency, "cpu_us": _per_request(used, done)}


def _per_request(seconds: float | None, count: int) -> float | None:
    return None if seconds is None or not count else seconds / count * 1e6


def api_client() -> tuple[list[str], str]:
    """The command prefix and base URL wrk uses: loopback inside the api container's network
    namespace (as pgbench inside the db container), or the container's bridge address."""
    cid = sh("docker", "compose", "ps", "-q", "api").strip()
    pid = sh("docker", "inspect", "--format", "{{.State.Pid}}", cid).strip()
    prefix = ["nsenter", "-t", pid, "-n"]
    if os.environ.get("BENCH_CLIENT", "netns") == "netns" and shutil.which("nsenter") and subprocess.run(
            [*prefix, "true"], capture_output=True).returncode == 0:
        return prefix, "http://127.0.0.1:3000"
    address = sh("docker", "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                 cid).strip()
    return [], f"http://{address}:3000"


def wrk(prefix: list[str], url: str, script: Path | None, routes: Path | None) -> dict[str, float]:
    args = [*prefix, "wrk", "-t2", f"-c{CONNECTIONS}", "--latency"]
    if script:
        args += ["-s", str(script)]
    env = {**ENV, "RATES_BENCH_ROUTES": str(routes)} if routes else ENV
    subprocess.run([*args, "-d2s", url], cwd=ROOT, env=env, capture_output=True, check=True)  # warm-up
    with CpuMeter() as cpu:
        out = subprocess.run([*args, f"-d{SECONDS}s", url], cwd=ROOT, env=env, capture_output=True, text=True,
                             check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        sys.exit(f"wrk saw {errors.group(1)} error responses:\n{out}")

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    done = int(re.search(r"(\d+) requests in", out).group(1))
    total = None if None in cpu.used.values() else sum(cpu.used.values())
    return {"rps": rps, "p50_ms": ms("50"), "p99_ms": ms("99"), "cpu_us": _per_request(total, done),
            "api_cpu_us": _per_request(cpu.used["api"], done), "db_cpu_us": _per_request(cpu.used["db"], done),
            "runtime_cpu_us": _per_request(cpu.used["runtime"], done),
            "client_cpu_us": _per_request(cpu.used["client"], done)}


def server_memory() -> list[tuple[str, int]]:
    cid = sh("docker", "compose", "ps", "-q", "api").strip()
    out = sh("docker", "top", cid, "-o", "pid,rss,args")
    rows = []
    for line in out.splitlines()[1:]:
        pid, rss, args = line.split(None, 2)
        rows.append((args[:60], int(rss) // 1024))
    return rows


def main() -> int:
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk")
    sh("scripts/up")
    try:
        prefix, base = api_client()
        mix = pick_mix()
        with tempfile.TemporaryDirectory() as tmp:
            tmpdir = Path(tmp)
            routes = tmpdir / "routes.txt"
            routes.write_text("".join(" ".join(r) + "\n" for r in mix))
            doc_dir, mix_dir = tmpdir / "documented", tmpdir / "mix"
            doc_dir.mkdir()
            mix_dir.mkdir()
            (doc_dir / "q.sql").write_text(sql_for(*DOCUMENTED))
            for i, request in enumerate(mix):
                (mix_dir / f"q{i:03d}.sql").write_text(sql_for(*request))
            o, d, f, t = DOCUMENTED
            results = {
                "documented": (
                    wrk(prefix, f"{base}/rates?date_from={f}&date_to={t}&orig_code={o}&dest_code={d}", None, None),
                    pgbench([doc_dir / "q.sql"]),
                ),
                "random mix": (
                    wrk(prefix, base, ROOT / "bench" / "mix.lua", routes),
                    pgbench(sorted(mix_dir.iterdir())),
                ),
            }
        memory = server_memory()
    finally:
        if os.environ.get("BENCH_KEEP") != "1":
            sh("docker", "compose", "down", "--volumes", "--remove-orphans", check=False)

    print(f"\nread path, {CONNECTIONS} connections, {SECONDS}s per measure, server: "
          f"{os.environ.get('WEB_WORKERS', 'default')} workers, wrk to {base} "
          f"({'inside the api container' if prefix else 'over the bridge'})")
    print(f"{'query':<12} {'API req/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'DB tps':>8} {'DB avg ms':>9} {'API/DB':>7}")
    for name, (api, db) in results.items():
        print(f"{name:<12} {api['rps']:10.0f} {api['p50_ms']:7.2f} {api['p99_ms']:7.2f} {db['rps']:8.0f} "
              f"{db['avg_ms']:9.2f} {api['rps'] / db['rps']:7.1%}")
    print("\nCPU per request, all processes (less sensitive to other load on the machine than req/s):")
    print(f"{'query':<12} {'API: api':>9} {'db':>6} {'logs':>6} {'wrk':>6} {'total':>7} {'DB: pgbench+db':>15} "
          f"{'ratio':>7}")
    for name, (api, db) in results.items():
        if api["cpu_us"] is None or db["cpu_us"] is None:
            print(f"{name:<12} (container CPU accounting not readable here)")
            continue
        print(f"{name:<12} {api['api_cpu_us']:8.0f}us {api['db_cpu_us']:5.0f}us {api['runtime_cpu_us']:5.0f}us "
              f"{api['client_cpu_us']:5.0f}us {api['cpu_us']:6.0f}us {db['cpu_us']:14.0f}us "
              f"{db['cpu_us'] / api['cpu_us']:7.1%}")
    print("(logs: the container runtime copying the api's log lines; DB side: pgbench runs in the db container)")
    print("server processes (RSS MB):")
    for args, rss in memory:
        print(f"  {rss:5d}  {args}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
