#!/usr/bin/env python3
"""What a hostile batch body costs (a script printing figures, not a test).

1. How far real price batches expand under gzip: the prices of db/rates.sql (and of the original
   dump, ../shared/data/rates.sql, or the dumps BENCH_HOSTILE_DUMPS lists, colon-separated)
   written as CSV, NDJSON, a JSON array and an indented one, gzipped at -6 and -9: decoded bytes
   per compressed byte, against the limit rates.batches.body.MAX_GZIP_RATIO.
2. The time to refuse two gzip bombs of 1 GiB (about 1 MB each) sent as CSV batches: newlines,
   and one valid row repeated. Through `python -m rates ingest` (the code of POST /batches,
   straight to the database), with the code of a baseline commit (BENCH_HOSTILE_BASELINE, default
   the merge base of HEAD and main, extracted with `git archive`) and with this tree, on the same
   database; then through HTTP when BENCH_API_URL names a running API (token: INGEST_TOKEN from
   .env). A one-row invalid body first gives the fixed cost of a run (start-up, connection).

The database: DB_HOST, DB_PORT, DB_USER, DB_PASSWORD (default: 127.0.0.1, 5432, postgres, and
POSTGRES_PASSWORD from .env), e.g. the test stack's: DB_PORT=5480. BENCH_HOSTILE_TIMEOUT (600 s)
bounds each run.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
import zlib
from pathlib import Path

import requests
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from rates.batches.body import MAX_GZIP_RATIO  # noqa: E402

DUMPS = [ROOT / "db" / "rates.sql", ROOT.parent / "shared" / "data" / "rates.sql",
         *map(Path, filter(None, os.environ.get("BENCH_HOSTILE_DUMPS", "").split(":")))]
HEADER = b"orig_code,dest_code,day,price\n"
BOMB_BYTES = 1 << 30
TIMEOUT = float(os.environ.get("BENCH_HOSTILE_TIMEOUT", "600"))


def dump_prices(path: Path) -> list[tuple[str, str, str, int]]:
    rows, inside = [], False
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("COPY public.prices "):
                inside = True
            elif inside and line.startswith("\\."):
                break
            elif inside:
                orig, dest, day, price = line.rstrip("\n").split("\t")
                rows.append((orig, dest, day, int(price)))
    return rows


def render(kind: str, rows: list[tuple[str, str, str, int]]) -> bytes:
    if kind == "CSV":
        return HEADER + "".join(f"{o},{d},{day},{p}\n" for o, d, day, p in rows).encode()
    objects = [{"orig_code": o, "dest_code": d, "day": day, "price": p} for o, d, day, p in rows]
    if kind == "NDJSON":
        return "".join(json.dumps(obj) + "\n" for obj in objects).encode()
    return json.dumps(objects, indent=2 if kind == "JSON, indented" else None).encode()


def ratios() -> None:
    print(f"1. Decoded bytes per gzip byte (limit MAX_GZIP_RATIO = {MAX_GZIP_RATIO})\n")
    print(f"{'dump':<28} {'body':<16} {'MB':>6} {'gzip -6':>8} {'gzip -9':>8}")
    highest = 0.0
    for path in filter(Path.exists, DUMPS):
        rows = dump_prices(path)
        for kind in ("CSV", "NDJSON", "JSON", "JSON, indented"):
            data = render(kind, rows)
            found = [len(data) / len(gzip.compress(data, level)) for level in (6, 9)]
            highest = max(highest, *found)
            name = str(path) if len(str(path)) <= 28 else "..." + str(path)[-25:]
            print(f"{name:<28} {kind:<16} {len(data) / 1e6:>6.1f} {found[0]:>8.1f} {found[1]:>8.1f}")
    print(f"\nhighest: {highest:.1f}; the limit is {MAX_GZIP_RATIO / highest:.1f} times that\n")


def gzip_bomb(path: Path, line: bytes) -> int:
    """A CSV header then BOMB_BYTES of ``line`` repeated, gzipped at -9; its size."""
    encoder = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = line * ((1 << 20) // len(line))
    with path.open("wb") as fh:
        fh.write(encoder.compress(HEADER))
        for _ in range(BOMB_BYTES // len(block)):
            fh.write(encoder.compress(block))
        fh.write(encoder.flush())
    return path.stat().st_size


def database_env() -> dict[str, str]:
    dotenv = dotenv_values(ROOT / ".env")
    return {
        "RATES_ENV_FILE": "/dev/null", "DB_HOST": os.environ.get("DB_HOST", "127.0.0.1"),
        "DB_PORT": os.environ.get("DB_PORT", "5432"), "DB_USER": os.environ.get("DB_USER", "postgres"),
        "DB_PASSWORD": os.environ.get("DB_PASSWORD") or dotenv.get("POSTGRES_PASSWORD") or "",
    }  # fmt: skip


def baseline_commit() -> str:
    ref = os.environ.get("BENCH_HOSTILE_BASELINE") or subprocess.run(
        ["git", "merge-base", "HEAD", "main"], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
    return subprocess.run(["git", "rev-parse", "--short", ref], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()


def ingest(code_root: Path, bomb: Path) -> tuple[float, str]:
    """Seconds until `python -m rates ingest` of the bomb exits, and the start of its answer."""
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(code_root), **database_env()}
    started = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "rates", "ingest", str(bomb), "--key", f"bomb-{uuid.uuid4().hex}"],
                              cwd=code_root, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return time.monotonic() - started, f"not refused within {TIMEOUT:g} s"
    answer = (proc.stderr or proc.stdout).strip()
    try:
        answer = json.loads(answer[answer.index("{"):])
        answer = f"{answer['status']} {answer.get('errors', [{}])[0].get('message') or answer['error']}"
    except (ValueError, KeyError):
        answer = answer.splitlines()[-1] if answer else f"exit {proc.returncode}"
    return time.monotonic() - started, answer[:110]


def over_http(url: str, bomb: Path) -> tuple[float, str]:
    headers = {"Authorization": f"Bearer {dotenv_values(ROOT / '.env').get('INGEST_TOKEN', '')}",
               "Content-Type": "text/csv", "Content-Encoding": "gzip", "Idempotency-Key": f"bomb-{uuid.uuid4().hex}"}
    started = time.monotonic()
    response = requests.post(url.rstrip("/") + "/batches", data=bomb.read_bytes(), headers=headers, timeout=TIMEOUT)
    elapsed = time.monotonic() - started
    answer = response.json()
    return elapsed, f"{response.status_code} {answer.get('errors', [{}])[0].get('message') or answer['error']}"[:110]


def a_port() -> str:
    import psycopg

    env = database_env()
    with psycopg.connect(host=env["DB_HOST"], port=env["DB_PORT"], user=env["DB_USER"], password=env["DB_PASSWORD"],
                         dbname="rates") as conn:
        return conn.execute("SELECT code FROM ports ORDER BY code LIMIT 1").fetchone()[0]


def refusals() -> None:
    port = a_port()
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as folder:
        commit = baseline_commit()
        base = Path(folder) / "baseline"
        base.mkdir()
        archive = subprocess.run(["git", "archive", commit, "rates"], cwd=ROOT, check=True, capture_output=True)
        tarfile.open(fileobj=io.BytesIO(archive.stdout)).extractall(base, filter="data")
        one_row = Path(folder) / "one-bad-row.csv"
        one_row.write_bytes(HEADER + b"XXXXX,XXXXX,2199-01-01,7\n")
        print(f"2. Time to refuse (the fixed cost of a run: {ingest(ROOT, one_row)[0]:.2f} s for one bad row)")
        for what, line in (("newlines", b"\n"), (f"the row {port},{port},2199-01-01,7", f"{port},{port},2199-01-01,7\n"
                                                                                       .encode())):
            bomb = Path(folder) / "bomb.csv.gz"
            size = gzip_bomb(bomb, line)
            print(f"\na gzip of {BOMB_BYTES >> 30} GiB of {what} ({size / 1e6:.2f} MB) as a CSV batch:")
            for name, code_root in ((f"before ({commit}), python -m rates ingest", base),
                                    ("now, python -m rates ingest", ROOT)):
                seconds, answer = ingest(code_root, bomb)
                print(f"  {name:<42} {seconds:>8.2f} s  {answer}")
            if url := os.environ.get("BENCH_API_URL"):
                seconds, answer = over_http(url, bomb)
                print(f"  {'now, POST ' + url:<42} {seconds:>8.2f} s  {answer}")


if __name__ == "__main__":
    ratios()
    refusals()
