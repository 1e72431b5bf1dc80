"""The environment itself: make up from nothing, idempotent loading, outages, copies, teardown.

These tests drive docker compose and run after the integration tier (see tests/conftest.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.stack import (
    DOCUMENTED_QUERY,
    ORIGINAL_DUMP,
    ROOT,
    Stack,
    dotenv_ingest_token,
    dotenv_password,
    dotenv_value,
    run,
)

MIGRATIONS = sorted(p.name[:4] for p in (ROOT / "db" / "migrations").glob("*.sql"))


def price_count(stack: Stack) -> int:
    with stack.connect() as conn:
        return conn.execute("SELECT count(*) FROM prices").fetchone()[0]


def ledger(stack: Stack) -> list[tuple[str, str]]:
    with stack.connect() as conn:
        return conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()


def test_up_from_nothing_gives_healthy_services(stack):
    by_service = {c["Service"]: c for c in stack.containers()}
    assert set(by_service) == {"db", "migrate", "api"}
    assert by_service["db"]["Health"] == "healthy"
    assert by_service["api"]["Health"] == "healthy"
    assert by_service["migrate"]["State"] == "exited" and by_service["migrate"]["ExitCode"] == 0


def test_select_alive_with_the_password_from_dotenv(stack):
    with stack.connect("postgres") as conn:
        assert conn.execute("SELECT 'alive'").fetchone() == ("alive",)
    if shutil.which("psql"):  # the check as a person would type it
        out = run(["psql", "-h", "localhost", "-p", str(stack.db_port), "-U", "postgres", "-tAc", "SELECT 'alive'"],
                  env={**stack.env, "PGPASSWORD": dotenv_password()})
        assert out.stdout.strip() == "alive"


def test_database_refuses_a_wrong_password(stack):
    import psycopg

    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(f"host=127.0.0.1 port={stack.db_port} user=postgres password=wrong dbname=postgres")


def test_ports_are_published_on_loopback_only(stack):
    for service, port in (("api", 3000), ("db", 5432)):
        bindings = stack.inspect(service)["NetworkSettings"]["Ports"][f"{port}/tcp"]
        assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}


def test_dump_is_loaded_once_and_migrations_recorded(stack):
    before = price_count(stack)
    assert before > 50_000
    assert [v for v, _ in ledger(stack)] == ["0000", *MIGRATIONS]
    stack.make("up")  # a second `make up`
    assert price_count(stack) == before
    stack.compose("start", "migrate")  # run the one-shot job again
    deadline = time.monotonic() + 60
    while stack.inspect("migrate")["State"]["Running"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert stack.inspect("migrate")["State"]["ExitCode"] == 0
    assert price_count(stack) == before
    assert [v for v, _ in ledger(stack)] == ["0000", *MIGRATIONS]
    with stack.connect() as conn:
        assert conn.execute("SELECT to_regclass('public.prices_orig_code_dest_code_day_idx')").fetchone()[0]


def test_psql_is_in_the_migrate_image_only(stack):
    """The migrate job loads the dump with psql; the image serving requests does without it."""
    api, migrate = (stack.inspect(service)["Config"]["Image"] for service in ("api", "migrate"))
    assert api != migrate
    version = run(["docker", "run", "--rm", "--entrypoint", "psql", migrate, "--version"]).stdout
    assert version.startswith("psql (PostgreSQL)")
    assert run(["docker", "run", "--rm", "--entrypoint", "sh", api, "-c", "command -v psql"], check=False).returncode


def test_containers_run_as_non_root(stack):
    for service in ("db", "api"):
        pid = stack.inspect(service)["State"]["Pid"]
        uid = next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                   if line.startswith("Uid:"))
        assert uid != "0", f"{service} main process runs as root"
    assert stack.inspect("api")["Config"]["User"].split(":")[0] not in ("", "0", "root")


def test_every_service_is_hardened(stack):
    """No capability, no privilege gain, a read-only root filesystem, memory and process limits."""
    for service in ("db", "migrate", "api"):
        host = stack.inspect(service)["HostConfig"]
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"], service
        assert "no-new-privileges:true" in host["SecurityOpt"], service
        assert host["ReadonlyRootfs"] is True, service
        assert host["Memory"] > 0 and host["PidsLimit"] > 0, service
    probe = stack.compose("exec", "-T", "api", "sh", "-c", "touch /app/x 2>&1; touch /tmp/x && echo tmp-ok",
                          check=False)
    assert "Read-only file system" in probe.stdout and "tmp-ok" in probe.stdout


def test_passwords_are_scram_over_tcp(stack):
    """Every password is stored as SCRAM-SHA-256 and TCP clients authenticate with it."""
    out = stack.compose("exec", "-T", "db", "sh", "-c",
                        'grep -v "^#" "$PGDATA/pg_hba.conf"; psql -U postgres -XtAc "SHOW password_encryption"; '
                        'psql -U postgres -XtAc "SELECT rolname FROM pg_authid WHERE rolpassword IS NOT NULL '
                        "AND rolpassword NOT LIKE 'SCRAM-SHA-256$%'\"").stdout
    host_rules = [line.split() for line in out.splitlines() if line.startswith("host")]
    assert host_rules and all(rule[-1] == "scram-sha-256" for rule in host_rules), out
    assert "scram-sha-256" in out.splitlines() and not any(line.startswith("postgres") for line in out.splitlines())


def test_password_is_not_in_the_environment_of_any_container(stack):
    passwords = [dotenv_password(), dotenv_value("READ_ROLE_PASSWORD"), dotenv_value("INGEST_ROLE_PASSWORD")]
    for service in ("db", "migrate", "api"):
        assert not any(password in e for e in stack.inspect(service)["Config"]["Env"] for password in passwords)


def test_only_the_migrate_job_gets_the_superuser_password(stack):
    """The API gets the passwords of its two roles; the superuser's goes to db and migrate only."""
    secrets = {service: sorted(mount["Destination"].removeprefix("/run/secrets/")
                               for mount in stack.inspect(service)["Mounts"]
                               if mount["Destination"].startswith("/run/secrets/"))
               for service in ("db", "migrate", "api")}
    assert secrets == {"db": ["db_password"], "migrate": ["db_ingest_password", "db_password", "db_read_password"],
                       "api": ["db_ingest_password", "db_read_password", "ingest_token"]}


def post_batches(stack: Stack, tag: str, count: int = 4) -> list[int]:
    """Statuses of ``count`` one-row batches (new keys), each sent once."""
    headers = {"Authorization": f"Bearer {dotenv_ingest_token()}", "Content-Type": "text/csv"}
    statuses = []
    for i in range(count):
        body = f"orig_code,dest_code,day,price\nCNGGZ,EETLL,2197-01-{i + 1:02d},5\n"
        response = requests.post(f"{stack.api_url}/batches", data=body, timeout=30,
                                 headers={**headers, "Idempotency-Key": f"restart-{tag}-{time.time_ns()}"})
        statuses.append(response.status_code)
    return statuses


def test_api_survives_a_database_restart_without_restarting(stack):
    api_before = stack.inspect("api")["State"]
    assert post_batches(stack, "before") == [201] * 4  # each worker now holds a pooled batch connection
    stack.compose("stop", "db")
    try:
        started = time.monotonic()
        down = stack.get(f"/rates?{DOCUMENTED_QUERY}", timeout=15)
        assert down.status_code == 503
        assert "error" in down.json()
        assert time.monotonic() - started < 10, "requests must fail fast while the database is down"
        assert stack.get("/healthz").status_code == 200
        assert stack.get("/readyz").status_code == 503
    finally:
        stack.compose("start", "db")
    stack.wait_for(f"/rates?{DOCUMENTED_QUERY}", 200, within=90)
    # Connections broken by the restart are replaced before a batch gets one: no 503 to retry.
    assert post_batches(stack, "after") == [201] * 4
    api_after = stack.inspect("api")["State"]
    assert api_after["StartedAt"] == api_before["StartedAt"]
    assert stack.inspect("api")["RestartCount"] == 0


def test_two_copies_run_side_by_side_and_down_reset_clean_up(stack):
    dump = {"RATES_DUMP": str(ORIGINAL_DUMP)} if ORIGINAL_DUMP.is_file() else {}
    other = Stack(f"{stack.project}-copy", api_port=stack.api_port + 1, db_port=stack.db_port + 1, extra_env=dump)
    other.compose("down", "--volumes", "--remove-orphans")
    try:
        other.make("up")
        first = stack.get(f"/rates?{DOCUMENTED_QUERY}").json()
        second = other.get(f"/rates?{DOCUMENTED_QUERY}").json()
        assert len(first["rates"]) == len(second["rates"]) == 31
        if dump:  # the second copy runs the original dump: the documented answer over HTTP
            assert second["rates"][0] == {"count": 3, "day": "2021-01-31", "price": 1154.3333333333333}
        assert stack.get("/healthz").status_code == 200  # the first copy is untouched

        with other.connect() as conn:
            conn.execute("CREATE TABLE marker (x int)")
        other.make("down")
        assert other.resources("container") == [] and other.resources("network") == []
        assert len(other.resources("volume")) == 1, "make down keeps the database volume"
        with pytest.raises(requests.ConnectionError):
            requests.get(other.api_url + "/healthz", timeout=5)

        other.make("reset")  # wipes the volume and loads the dump again
        with other.connect() as conn:
            assert conn.execute("SELECT to_regclass('public.marker')").fetchone()[0] is None
            assert conn.execute("SELECT count(*) FROM prices").fetchone()[0] > 50_000
    finally:
        other.compose("down", "--volumes", "--remove-orphans")
    assert other.resources("container") == other.resources("network") == other.resources("volume") == []


def test_missing_dump_fails_with_a_clear_message(stack):
    broken = Stack(f"{stack.project}-nodump", stack.api_port + 2, stack.db_port + 2,
                   extra_env={"RATES_DUMP": "/nonexistent/rates.sql"})
    proc = broken.make("up", check=False)
    broken.compose("down", "--volumes", "--remove-orphans")
    assert proc.returncode != 0
    assert "/nonexistent/rates.sql" in proc.stdout + proc.stderr


def test_broken_dump_fails_migrate_and_the_api_does_not_start(stack, tmp_path):
    dump = tmp_path / "broken.sql"
    good = (ROOT / "db" / "rates.sql").read_text().splitlines(keepends=True)
    # Keep the schema, cut the data in the middle of a COPY block: a truncated download.
    cut = next(i for i, line in enumerate(good) if line.startswith("COPY public.prices")) + 100
    dump.write_text("".join(good[:cut]))
    dump.chmod(0o644)
    tmp_path.chmod(0o755)
    broken = Stack(f"{stack.project}-broken", stack.api_port + 3, stack.db_port + 3,
                   extra_env={"RATES_DUMP": str(dump)})
    try:
        proc = broken.make("up", check=False)
        states = {c["Service"]: c for c in broken.containers()}
        logs = broken.compose("logs", "migrate").stdout
        with broken.connect() as conn:
            leftovers = conn.execute("SELECT to_regclass('public.prices')").fetchone()[0]
    finally:
        broken.compose("down", "--volumes", "--remove-orphans")
    assert proc.returncode != 0
    assert states["migrate"]["ExitCode"] != 0
    assert "api" not in states or states["api"]["State"] != "running"
    # `make up` shows migrate's last log line: the failure, naming the dump's last line.
    shown = proc.stdout + proc.stderr
    assert "migration failed" in shown and f"/dump/rates.sql:{cut}: the file ends here" in shown
    assert "truncated" in logs
    assert leftovers is None, "a failed load leaves no table behind"


def test_failing_dump_statement_is_shown_with_its_line(stack, tmp_path):
    dump = tmp_path / "failing.sql"
    good = (ROOT / "db" / "rates.sql").read_text().splitlines(keepends=True)
    line = good.index("\\.\n") + 2  # right after the first COPY block
    dump.write_text("".join(good[: line - 1]) + "SELECT public.no_such_function();\n" + "".join(good[line - 1 :]))
    dump.chmod(0o644)
    tmp_path.chmod(0o755)
    broken = Stack(f"{stack.project}-failing", stack.api_port + 4, stack.db_port + 4,
                   extra_env={"RATES_DUMP": str(dump)})
    try:
        proc = broken.make("up", check=False)
        with broken.connect() as conn:
            leftovers = conn.execute("SELECT to_regclass('public.ports')").fetchone()[0]
    finally:
        broken.compose("down", "--volumes", "--remove-orphans")
    assert proc.returncode != 0
    shown = proc.stdout + proc.stderr
    assert f"psql:/dump/rates.sql:{line}: ERROR:  function public.no_such_function() does not exist" in shown
    assert leftovers is None, "a failed load leaves no table behind"


def test_compose_file_is_valid():
    run(["docker", "compose", "config", "--quiet"])


def test_dockerfiles_pass_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(subprocess.sys.executable).parent / "hadolint")
    files = run(["git", "ls-files", "*Dockerfile*"]).stdout.split()
    assert "rates/Dockerfile" in files
    result = run([hadolint, *files], check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("variable", ["POSTGRES_IMAGE", "PYTHON_IMAGE"])
def test_local_stand_ins_carry_their_security_updates(stack, variable):
    """Where no registry is reachable the base images are built from Debian packages: from the
    release, its -updates and its -security suites, upgraded (scripts/build-stand-ins)."""
    images = json.loads(stack.compose("config", "--format", "json").stdout)
    image = images["services"]["db"]["image"] if variable == "POSTGRES_IMAGE" else \
        images["services"]["api"]["build"]["args"]["PYTHON_IMAGE"]
    if not image.startswith("rates-local/"):
        pytest.skip(f"{variable} is {image}, an official image")
    sources = run(["docker", "run", "--rm", "--entrypoint", "cat", image, "/etc/apt/sources.list"]).stdout
    suites = {line.split()[2] for line in sources.splitlines() if line.startswith("deb ")}
    assert any(s.endswith("-security") for s in suites) and any(s.endswith("-updates") for s in suites), sources
