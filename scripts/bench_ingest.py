#!/usr/bin/env python3
"""Batch ingestion benchmark (a script printing figures, not a test), for 50,000 and 1,000,000
rows, all measured in one run on this machine against the same freshly started stack:

  (a) the storage limit: COPY of the rows, in one transaction (COMMIT included), into a table
      shaped like prices with the same index and the same existing rows, but no foreign key and
      no trigger;
  (b) a naive baseline: the same rows inserted one INSERT per row, in one transaction, into such
      a table with the two foreign keys to ports the original schema had. Measured on the first
      BENCH_INGEST_NAIVE_ROWS rows (default 50,000) and scaled linearly to the full size when
      that is larger: such figures are marked "extrapolated";
  (c) POST /batches end to end, from the first byte sent to the 201 (CSV body prepared in
      memory beforehand, so the client costs nothing measurable).

(a) and (c) alternate BENCH_INGEST_REPEAT times per size (default 3, a CHECKPOINT before each);
the medians and the ratios (c)/(a) and (b)/(a) are printed.

For the decision record (docs/adr/0001-set-based-price-integrity.md), the cost of integrity
alone: the COPY of (a) again into the same table with the statement trigger of migration 0003,
and with the two per-row foreign keys instead (BENCH_INGEST_REPEAT times up to 200,000 rows,
once above; BENCH_INGEST_VARIANTS=0 skips them). Each (c) commits its rows, so the
table (a) copies into starts as a copy of prices at that moment: both write into the same size.

Runs its own compose project (BENCH_INGEST_PROJECT, default rates-bench-ingest, API port 3390,
database 5690), started from nothing and removed afterwards (BENCH_KEEP=1 keeps it).
BENCH_INGEST_SIZES=50000,1000000 picks the sizes. Extra environment reaches the stack.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import psycopg
import requests
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parent.parent

SIZES = [int(n) for n in os.environ.get("BENCH_INGEST_SIZES", "50000,1000000").split(",")]
REPEAT = int(os.environ.get("BENCH_INGEST_REPEAT", "3"))
NAIVE_ROWS = int(os.environ.get("BENCH_INGEST_NAIVE_ROWS", "50000"))
VARIANTS = os.environ.get("BENCH_INGEST_VARIANTS", "1") == "1"
ENV = {
    **os.environ,
    "COMPOSE_PROJECT_NAME": os.environ.get("BENCH_INGEST_PROJECT", "rates-bench-ingest"),
    "API_PORT": os.environ.get("BENCH_INGEST_API_PORT", "3390"),
    "DB_PUBLISH_PORT": os.environ.get("BENCH_INGEST_DB_PORT", "5690"),
}
COPY_COLUMNS = "(orig_code, dest_code, day, price)"


def sh(*cmd: str) -> str:
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def connect() -> psycopg.Connection:
    password = dotenv_values(ROOT / ".env")["POSTGRES_PASSWORD"]
    return psycopg.connect(f"host=127.0.0.1 port={ENV['DB_PUBLISH_PORT']} dbname=rates user=postgres "
                           f"password={password}", autocommit=True)


def make_rows(n: int, codes: list[str], seed: int) -> list[tuple[str, str, str, int]]:
    rng = random.Random(seed)
    routes = [(rng.choice(codes), rng.choice(codes)) for _ in range(2000)]
    days = [(date(2030, 1, 1) + timedelta(d)).isoformat() for d in range(730)]
    return [(*rng.choice(routes), rng.choice(days), rng.randint(100, 5000)) for _ in range(n)]


def copy_text(rows: list[tuple[str, str, str, int]]) -> bytes:
    return "".join(f"{o}\t{d}\t{day}\t{p}\n" for o, d, day, p in rows).encode()


def csv_body(rows: list[tuple[str, str, str, int]]) -> bytes:
    return ("orig_code,dest_code,day,price\n" + "".join(f"{o},{d},{day},{p}\n" for o, d, day, p in rows)).encode()


def fresh_table(conn: psycopg.Connection, name: str, foreign_keys: bool, with_rows: bool) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {name}")
    conn.execute(f"CREATE TABLE {name} (LIKE prices INCLUDING INDEXES)")  # the route/day index
    if with_rows:
        conn.execute(f"INSERT INTO {name} SELECT * FROM prices")
    if foreign_keys:
        conn.execute(f"ALTER TABLE {name} ADD FOREIGN KEY (orig_code) REFERENCES ports (code), "
                     "ADD FOREIGN KEY (dest_code) REFERENCES ports (code)")
    conn.execute(f"VACUUM ANALYZE {name}")


def measure_copy(conn: psycopg.Connection, data: bytes, integrity: str = "none") -> float:
    """COPY in one transaction into a copy of prices with its index: no check, the set-based
    trigger of migration 0003 ("trigger"), or the two foreign keys ("fk")."""
    fresh_table(conn, "bench_copy", foreign_keys=integrity == "fk", with_rows=True)
    if integrity == "trigger":
        conn.execute("CREATE TRIGGER bench_assert_ports AFTER INSERT ON bench_copy REFERENCING NEW TABLE AS "
                     "new_prices FOR EACH STATEMENT EXECUTE FUNCTION prices_assert_ports_exist()")
    conn.execute("CHECKPOINT")
    started = time.perf_counter()
    with conn.transaction(), conn.cursor() as cur, cur.copy(f"COPY bench_copy {COPY_COLUMNS} FROM STDIN") as cp:
        for i in range(0, len(data), 1 << 18):
            cp.write(data[i : i + (1 << 18)])
    elapsed = time.perf_counter() - started
    conn.execute("DROP TABLE bench_copy")
    return elapsed


def measure_naive(conn: psycopg.Connection, rows: list[tuple[str, str, str, int]]) -> float:
    fresh_table(conn, "bench_naive", foreign_keys=True, with_rows=False)
    conn.execute("CHECKPOINT")
    started = time.perf_counter()
    with conn.transaction(), conn.cursor() as cur:
        for row in rows:
            cur.execute("INSERT INTO bench_naive (orig_code, dest_code, day, price) VALUES (%s, %s, %s, %s)", row)
    elapsed = time.perf_counter() - started
    conn.execute("DROP TABLE bench_naive")
    return elapsed


def measure_post(conn: psycopg.Connection, body: bytes, rows: int, token: str) -> tuple[float, int]:
    conn.execute("CHECKPOINT")
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"bench-{uuid.uuid4().hex}",
               "Content-Type": "text/csv"}
    started = time.perf_counter()
    response = requests.post(f"http://127.0.0.1:{ENV['API_PORT']}/batches", data=body, headers=headers, timeout=3600)
    elapsed = time.perf_counter() - started
    if response.status_code != 201 or response.json()["rows"] != rows:
        sys.exit(f"POST /batches answered {response.status_code}: {response.text[:500]}")
    return elapsed, response.json()["duration_ms"]


def main() -> int:
    keep = os.environ.get("BENCH_KEEP") == "1"
    print(f"==> starting compose project {ENV['COMPOSE_PROJECT_NAME']} from nothing", flush=True)
    sh("docker", "compose", "down", "--volumes", "--remove-orphans")
    sh("make", "env")
    sh("make", "up")
    token = dotenv_values(ROOT / ".env")["INGEST_TOKEN"]
    for _ in range(20):  # every worker opens its database pools before anything is timed
        requests.get(f"http://127.0.0.1:{ENV['API_PORT']}/readyz", timeout=10)
        requests.post(f"http://127.0.0.1:{ENV['API_PORT']}/batches", data=b"orig_code,dest_code,day,price\n",
                      headers={"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex,
                               "Content-Type": "text/csv"}, timeout=10)  # empty: 422, nothing written
    results, variants = [], []
    try:
        with connect() as conn:
            codes = [code for (code,) in conn.execute("SELECT code FROM ports ORDER BY code")]
            print(f"    PostgreSQL {conn.info.server_version}, {os.cpu_count()} CPUs, load average "
                  f"{os.getloadavg()[0]:.1f} at start\n", flush=True)
            for size in SIZES:
                rows = make_rows(size, codes, seed=size)
                data, body = copy_text(rows), csv_body(rows)
                sample = min(size, NAIVE_ROWS)
                print(f"==> {size:,} rows ({len(body) / 1e6:.1f} MB of CSV)", flush=True)
                naive = measure_naive(conn, rows[:sample]) * size / sample
                print(f"    (b) naive row by row: {naive:.2f} s" + (f" (extrapolated from {sample:,} rows)"
                                                                     if sample < size else ""), flush=True)
                copies, posts, server = [], [], []
                for run in range(REPEAT):
                    copies.append(measure_copy(conn, data))
                    seconds, duration_ms = measure_post(conn, body, size, token)
                    posts.append(seconds)
                    server.append(duration_ms / 1000)
                    print(f"    run {run + 1}: (a) COPY {copies[-1]:.2f} s   (c) POST /batches {posts[-1]:.2f} s "
                          f"(server side {server[-1]:.2f} s)   (c)/(a) {posts[-1] / copies[-1]:.2f}", flush=True)
                results.append((size, statistics.median(copies), naive, sample < size, statistics.median(posts),
                                [p / c for p, c in zip(posts, copies, strict=True)]))
                if VARIANTS:
                    runs = REPEAT if size <= 200_000 else 1
                    trigger, fk = [], []
                    for _ in range(runs):
                        trigger.append(measure_copy(conn, data, "trigger"))
                        fk.append(measure_copy(conn, data, "fk"))
                    variants.append((size, statistics.median(copies), statistics.median(trigger),
                                     statistics.median(fk), runs))
                    print(f"    COPY with the 0003 trigger {variants[-1][2]:.2f} s, with the two foreign keys "
                          f"{variants[-1][3]:.2f} s ({runs} run(s))", flush=True)
            count = conn.execute("SELECT count(*) FROM prices").fetchone()[0]
        print(f"\nmedians of {REPEAT} runs; prices holds {count:,} rows at the end; load average "
              f"{os.getloadavg()[0]:.1f}\n")
        print(f"{'rows':>10}  {'(a) COPY limit':>14}  {'(b) naive':>22}  {'(c) POST /batches':>17}  "
              f"{'(c)/(a)':>7}  {'(b)/(a)':>7}  per-run (c)/(a)")
        for size, copy_s, naive_s, extrapolated, post_s, ratios in results:
            naive_label = f"{naive_s:.2f} s" + (" (extrap.)" if extrapolated else "")
            print(f"{size:>10,}  {copy_s:>12.2f} s  {naive_label:>22}  {post_s:>15.2f} s  "
                  f"{post_s / copy_s:>7.2f}  {naive_s / copy_s:>7.1f}  {', '.join(f'{r:.2f}' for r in ratios)}")
        print("\ntarget: (c)/(a) <= 2 for both sizes")
        if variants:
            print(f"\nintegrity cost, COPY of the same rows:\n{'rows':>10}  {'no check (a)':>12}  "
                  f"{'0003 trigger':>12}  {'two FKs':>9}  {'trigger/(a)':>11}  {'FKs/(a)':>7}")
            for size, copy_s, trigger_s, fk_s, runs in variants:
                print(f"{size:>10,}  {copy_s:>10.2f} s  {trigger_s:>10.2f} s  {fk_s:>7.2f} s  "
                      f"{trigger_s / copy_s:>11.2f}  {fk_s / copy_s:>7.2f}  ({runs} run(s))")
    except Exception:
        print("\n!! the benchmark failed; state and last database log lines:", file=sys.stderr)
        print(sh("docker", "compose", "ps", "--all") + sh("docker", "compose", "logs", "--no-color", "--tail", "40",
                                                          "db"), file=sys.stderr)
        raise
    finally:
        if keep:
            print(f"kept: compose project {ENV['COMPOSE_PROJECT_NAME']} (API {ENV['API_PORT']}, "
                  f"database {ENV['DB_PUBLISH_PORT']})")
        else:
            sh("docker", "compose", "down", "--volumes", "--remove-orphans")
    return 0


if __name__ == "__main__":
    sys.exit(main())
