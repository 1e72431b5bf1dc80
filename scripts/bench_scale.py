#!/usr/bin/env python3
"""Ingestion at scale (a script printing figures, not a test): what the design document's
section 7.1 and its capacity table rest on, measured in one run on this machine.

prices is first filled to BENCH_SCALE_ROWS rows (default 30,000,000: 5,000 routes over five years
of days, about 3.3 prices per route and day; triggers skipped, index built afterwards, autovacuum
off on the tables measured so that its WAL is not counted). Then, each batch being 1,000,000 rows
(BENCH_SCALE_BATCH) of 2,000 of those routes, COPY'd in one transaction through the real triggers:

  1. load rate and WAL per row into an index of realistic size: a batch of recent days (the 60
     days around the fill's last one) and a batch spread over the five years, into prices, against
     the same batch into a copy of prices holding 1,000,000 rows (the baseline of the earlier
     figures), measured in the same run. WAL is measured for the first batch after a CHECKPOINT
     (full-page images) and for the next one, with and without wal_compression;
  2. the same batch into prices partitioned by month (each month sub-partitioned by batch_id:
     a "stream" partition for batch ids >= 0), the rows filled in the same way;
  3. the attach path: each month's rows of a batch COPY'd into a table of their own, indexed,
     given a CHECK matching the partition bounds (negative batch ids: a range no stream partition
     covers), then one transaction that locks and checks the batch's ports, attaches every piece
     and bumps data_version: each phase timed;
  4. what the pieces cost readers: one route over 366 days, BENCH_SCALE_READS random queries, on
     prices, on the partitioned table, and on it again with 20 more pieces attached;
  5. what a batch_id column with a B-tree index costs a COPY, and a DELETE of one batch by it; the
     same with a BRIN index instead.

BENCH_SCALE_BATCH=50000 gives the figures of a median batch (the design plans WAL with them).

Runs its own compose project (BENCH_SCALE_PROJECT, default rates-bench-scale; API port 3391,
database 5691), started from nothing, removed afterwards (BENCH_KEEP=1 keeps it). Needs about
10 GB of disk and 15-30 minutes on 2 cores.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import psycopg
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parent.parent
ROWS = int(os.environ.get("BENCH_SCALE_ROWS", "30000000"))
BATCH = int(os.environ.get("BENCH_SCALE_BATCH", "1000000"))
READS = int(os.environ.get("BENCH_SCALE_READS", "300"))
ENV = {**os.environ,
       "COMPOSE_PROJECT_NAME": os.environ.get("BENCH_SCALE_PROJECT", "rates-bench-scale"),
       "API_PORT": os.environ.get("BENCH_SCALE_API_PORT", "3391"),
       "DB_PUBLISH_PORT": os.environ.get("BENCH_SCALE_DB_PORT", "5691")}
FIRST_DAY, DAYS, ROUTES = date(2031, 1, 1), 5 * 365, 5000
LAST_DAY = FIRST_DAY + timedelta(DAYS - 1)
COLUMNS = "(orig_code, dest_code, day, price)"


def sh(*cmd: str) -> str:
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def connect() -> psycopg.Connection:
    password = dotenv_values(ROOT / ".env")["POSTGRES_PASSWORD"]
    return psycopg.connect(f"host=127.0.0.1 port={ENV['DB_PUBLISH_PORT']} dbname=rates user=postgres "
                           f"password={password}", autocommit=True)


def say(text: str) -> None:
    print(f"{text}   [load {os.getloadavg()[0]:.1f}]", flush=True)


def timed(conn: psycopg.Connection, sql: str) -> float:
    started = time.perf_counter()
    conn.execute(sql)
    return time.perf_counter() - started


def fill(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """prices to ROWS rows, in day order (as batches arrive), index built afterwards."""
    conn.execute("CREATE TABLE bench_routes AS SELECT row_number() OVER () - 1 AS r, o, d FROM (SELECT a.code AS o, "
                 "b.code AS d FROM ports a, ports b WHERE a.code <> b.code ORDER BY md5(a.code || b.code) "
                 f"LIMIT {ROUTES}) x")
    conn.execute("ALTER TABLE prices SET (autovacuum_enabled = false)")
    conn.execute("DROP INDEX prices_orig_code_dest_code_day_idx")
    step, started = 5_000_000, time.perf_counter()
    for low in range(0, ROWS, step):
        conn.execute("SET session_replication_role = replica")  # fill only: no trigger
        conn.execute(f"""INSERT INTO prices SELECT r.o, r.d, DATE '{FIRST_DAY}' + (g * {DAYS}::bigint / {ROWS})::int,
                         100 + abs(hashint8(g * 31)) % 4900
                         FROM generate_series({low}::bigint, {min(low + step, ROWS) - 1}) g
                         JOIN bench_routes r ON r.r = abs(hashint8(g)) % {ROUTES}""")
        conn.execute("RESET session_replication_role")
        say(f"    filled {min(low + step, ROWS):,} rows")
    built = timed(conn, "CREATE INDEX prices_orig_code_dest_code_day_idx ON prices (orig_code, dest_code, day)")
    vacuumed = timed(conn, "VACUUM ANALYZE prices")
    size = conn.execute("SELECT pg_relation_size('prices'), pg_indexes_size('prices')").fetchone()
    say(f"    fill {time.perf_counter() - started:.0f} s (index {built:.0f} s, vacuum {vacuumed:.0f} s): heap "
        f"{size[0] / 1e9:.2f} GB, index {size[1] / 1e9:.2f} GB")
    return [(o, d) for o, d in conn.execute("SELECT o, d FROM bench_routes ORDER BY r")]


def batch(routes: list[tuple[str, str]], seed: int, spread: bool) -> list[tuple[str, str, date, int]]:
    """Recent days (the 60 around the fill's last day: two months) or the whole five years."""
    rng = random.Random(seed)
    mine = rng.sample(routes, 2000)
    first, span = (FIRST_DAY, DAYS) if spread else (LAST_DAY - timedelta(29), 60)
    days = [first + timedelta(i) for i in range(span)]
    return [(*rng.choice(mine), rng.choice(days), rng.randint(100, 5000)) for _ in range(BATCH)]


def text(rows, batch_id: int | None = None) -> bytes:
    tail = "" if batch_id is None else f"\t{batch_id}"
    return "".join(f"{o}\t{d}\t{day}\t{p}{tail}\n" for o, d, day, p in rows).encode()


def wal_and_checkpoints(conn: psycopg.Connection) -> tuple[str, str]:
    """The WAL position, and the start of the last checkpoint (it moves when one runs)."""
    return conn.execute("SELECT pg_current_wal_lsn()::text, redo_lsn::text FROM pg_control_checkpoint()").fetchone()


def copy(conn: psycopg.Connection, table: str, data: bytes, columns: str = COLUMNS, checkpoint: bool = False,
         label: str = "") -> tuple[float, float]:
    """COPY in one transaction (COMMIT included): seconds and WAL bytes per row."""
    if checkpoint:
        conn.execute("CHECKPOINT")
    lsn, redo = wal_and_checkpoints(conn)
    started = time.perf_counter()
    with conn.transaction(), conn.cursor() as cur, cur.copy(f"COPY {table} {columns} FROM STDIN") as cp:
        for i in range(0, len(data), 1 << 18):
            cp.write(data[i: i + (1 << 18)])
    elapsed = time.perf_counter() - started
    wal = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", (lsn,)).fetchone()[0] / BATCH
    during = wal_and_checkpoints(conn)[1] != redo
    say(f"    {label:<62} {elapsed:6.2f} s  {BATCH / elapsed:>9,.0f} rows/s  WAL {wal:6.0f} B/row"
        + ("  (a checkpoint started during it)" if during else ""))
    return elapsed, wal


def next_month(m: date) -> date:
    return (m.replace(day=28) + timedelta(4)).replace(day=1)


def months(first: date, last: date) -> list[date]:
    out, m = [], first.replace(day=1)
    while m <= last:
        out.append(m)
        m = next_month(m)
    return out


def partitioned(conn: psycopg.Connection) -> None:
    """prices_p: monthly on day, each month by batch_id (stream lane: batch ids >= 0)."""
    conn.execute("CREATE TABLE prices_p (orig_code text NOT NULL, dest_code text NOT NULL, day date NOT NULL, "
                 "price integer NOT NULL, batch_id bigint NOT NULL) PARTITION BY RANGE (day)")
    for m in months(FIRST_DAY, LAST_DAY + timedelta(62)):
        name = f"prices_p_{m:%Y%m}"
        conn.execute(f"CREATE TABLE {name} PARTITION OF prices_p FOR VALUES FROM ('{m}') TO "
                     f"('{next_month(m)}') PARTITION BY RANGE (batch_id)")
        conn.execute(f"CREATE TABLE {name}_stream PARTITION OF {name} FOR VALUES FROM (0) TO (MAXVALUE) "
                     "WITH (autovacuum_enabled = false)")
    started = time.perf_counter()
    conn.execute("INSERT INTO prices_p SELECT *, 1 FROM prices WHERE day >= %s", (FIRST_DAY,))
    conn.execute("CREATE INDEX prices_p_route_day ON prices_p (orig_code, dest_code, day)")
    conn.execute("VACUUM ANALYZE prices_p")
    # The same integrity trigger as prices (ADR 0001), on the partitioned table.
    conn.execute("CREATE TRIGGER prices_p_assert_ports AFTER INSERT ON prices_p REFERENCING NEW TABLE AS new_prices "
                 "FOR EACH STATEMENT EXECUTE FUNCTION prices_assert_ports_exist()")
    say(f"    prices_p filled with the same rows in {time.perf_counter() - started:.0f} s")


def attach(conn: psycopg.Connection, rows, batch_id: int, report: bool = True) -> dict[str, float]:
    """The attach path for one batch: build each month's piece, then one short transaction."""
    by_month: dict[date, list] = {}
    for row in rows:
        by_month.setdefault(row[2].replace(day=1), []).append(row)
    phases = dict.fromkeys(("copy", "index", "check", "codes", "commit", "wal"), 0.0)
    lsn = wal_and_checkpoints(conn)[0]
    codes: set[str] = set()
    pieces = []
    for month, part in sorted(by_month.items()):
        piece = f"piece_{batch_id}_{month:%Y%m}"
        conn.execute(f"CREATE TABLE {piece} (LIKE prices_p) WITH (autovacuum_enabled = false)")
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(f"COPY {piece} FROM STDIN") as cp:
            cp.write(text(part, -batch_id))
        phases["copy"] += time.perf_counter() - started
        phases["index"] += timed(conn, f"CREATE INDEX ON {piece} (orig_code, dest_code, day)")
        phases["check"] += timed(conn, f"ALTER TABLE {piece} ADD CONSTRAINT {piece}_bounds CHECK (day >= '{month}' "
                                 f"AND day < '{next_month(month)}' AND batch_id = {-batch_id})")
        started = time.perf_counter()
        codes |= {c for (c,) in conn.execute(f"SELECT DISTINCT unnest(ARRAY[orig_code, dest_code]) FROM "
                                             f"(SELECT DISTINCT orig_code, dest_code FROM {piece}) r")}
        phases["codes"] += time.perf_counter() - started
        pieces.append((month, piece))
    implied: list[str] = []

    def notice(diag: psycopg.errors.Diagnostic) -> None:
        if "implied by existing constraints" in (diag.message_primary or ""):
            implied.append(diag.message_primary or "")

    conn.add_notice_handler(notice)
    started = time.perf_counter()
    with conn.transaction():
        conn.execute("SET LOCAL lock_timeout = '5s'")
        conn.execute("SET LOCAL client_min_messages = debug1")  # reports each attach that skips its scan
        found = conn.execute("SELECT count(*) FROM (SELECT code FROM ports WHERE code = ANY(%s) FOR KEY SHARE) x",
                             (sorted(codes),)).fetchone()[0]
        if found != len(codes):
            raise RuntimeError("a port of the batch is missing")
        for month, piece in pieces:
            conn.execute(f"ALTER TABLE prices_p_{month:%Y%m} ATTACH PARTITION {piece} FOR VALUES FROM "
                         f"({-batch_id}) TO ({-batch_id + 1})")
        conn.execute("UPDATE data_version SET version = version + 1, changed_at = now()")
    phases["commit"] = time.perf_counter() - started
    conn.remove_notice_handler(notice)
    if len(implied) < len(pieces):
        raise RuntimeError(f"an ATTACH scanned its piece: {implied}")
    phases["wal"] = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)",
                                 (lsn,)).fetchone()[0] / len(rows)
    if report:
        build = phases["copy"] + phases["index"] + phases["check"] + phases["codes"]
        say(f"    attach path, {len(rows):,} rows in {len(pieces)} piece(s): COPY {phases['copy']:.2f} s "
            f"({len(rows) / phases['copy']:,.0f} rows/s), index {phases['index']:.2f} s, "
            f"CHECK {phases['check']:.2f} s, "
            f"ports {phases['codes']:.2f} s = build {build:.2f} s ({len(rows) / build:,.0f} rows/s); "
            f"attaching transaction {phases['commit'] * 1000:.0f} ms; WAL {phases['wal']:.0f} B/row")
    return phases


def reads(conn: psycopg.Connection, table: str, routes, label: str) -> float:
    rng = random.Random(7)
    times = []
    for _ in range(READS):
        o, d = rng.choice(routes)
        start = LAST_DAY - timedelta(rng.randrange(0, 300))
        began = time.perf_counter()
        conn.execute(f"SELECT day, count(*), avg(price) FROM {table} WHERE orig_code = %s AND dest_code = %s "
                     "AND day BETWEEN %s AND %s GROUP BY day", (o, d, start - timedelta(365), start)).fetchall()
        times.append(time.perf_counter() - began)
    times.sort()
    say(f"    reads, {label:<44} median {statistics.median(times) * 1000:6.2f} ms  "
        f"p90 {times[int(len(times) * 0.9)] * 1000:6.2f} ms")
    return statistics.median(times)


def batch_id_cost(conn: psycopg.Connection, routes) -> None:
    conn.execute("ALTER TABLE prices ADD COLUMN batch_id bigint")
    cols = "(orig_code, dest_code, day, price, batch_id)"
    without, _ = copy(conn, "prices", text(batch(routes, 81, False), 81), cols, True,
                      "prices + batch_id column, no index on it (first after CHECKPOINT)")
    built = timed(conn, "CREATE INDEX prices_batch_id ON prices (batch_id)")
    size_before = conn.execute("SELECT pg_relation_size('prices_batch_id')").fetchone()[0]
    with_index, _ = copy(conn, "prices", text(batch(routes, 82, False), 82), cols, True,
                         "prices + batch_id column and index (first after CHECKPOINT)")
    grown = conn.execute("SELECT pg_relation_size('prices_batch_id')").fetchone()[0] - size_before
    lsn = wal_and_checkpoints(conn)[0]
    deleted = timed(conn, "DELETE FROM prices WHERE batch_id = 82")
    wal = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", (lsn,)).fetchone()[0] / BATCH
    say(f"    batch_id index: built in {built:.0f} s on the whole table; COPY {with_index / without:.2f}x the COPY "
        f"without it; grows {grown / BATCH:.1f} B/row; DELETE of one {BATCH:,}-row batch by it {deleted:.2f} s, "
        f"WAL {wal:.0f} B/row")
    # A batch's rows are written together (COPY fills pages of its own), so a BRIN index on batch_id
    # narrows a DELETE to the batch's pages for a fraction of a B-tree's size and WAL.
    conn.execute("DROP INDEX prices_batch_id")
    built = timed(conn, "CREATE INDEX prices_batch_brin ON prices USING brin (batch_id) WITH (pages_per_range = 16)")
    size_before = conn.execute("SELECT pg_relation_size('prices_batch_brin')").fetchone()[0]
    with_brin, _ = copy(conn, "prices", text(batch(routes, 83, False), 83), cols, True,
                        "prices + batch_id column and a BRIN index (first after CHECKPOINT)")
    grown = conn.execute("SELECT pg_relation_size('prices_batch_brin')").fetchone()[0] - size_before
    lsn = wal_and_checkpoints(conn)[0]
    deleted = timed(conn, "DELETE FROM prices WHERE batch_id = 83")
    wal = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", (lsn,)).fetchone()[0] / BATCH
    say(f"    BRIN on batch_id: built in {built:.0f} s; COPY {with_brin / without:.2f}x the COPY without an index; "
        f"grows {grown / BATCH:.2f} B/row; DELETE of one batch by it {deleted:.2f} s, WAL {wal:.0f} B/row")


def measure(conn: psycopg.Connection) -> None:
    print(f"PostgreSQL {conn.info.server_version}, {os.cpu_count()} CPUs; shared_buffers "
          f"{conn.execute('SHOW shared_buffers').fetchone()[0]}, max_wal_size "
          f"{conn.execute('SHOW max_wal_size').fetchone()[0]}", flush=True)
    say(f"==> filling prices to {ROWS:,} rows")
    routes = fill(conn)
    say("==> 1. COPY of one batch: into 1,000,000 rows (baseline) and into the full table")
    conn.execute("CREATE TABLE small (LIKE prices INCLUDING INDEXES) WITH (autovacuum_enabled = false)")
    conn.execute("INSERT INTO small SELECT * FROM prices WHERE day > %s::date - 300 LIMIT 1000000", (LAST_DAY,))
    conn.execute("CREATE TRIGGER small_assert_ports AFTER INSERT ON small REFERENCING NEW TABLE AS new_prices "
                 "FOR EACH STATEMENT EXECUTE FUNCTION prices_assert_ports_exist()")
    conn.execute("VACUUM ANALYZE small")
    base, _ = copy(conn, "small", text(batch(routes, 1, False)), checkpoint=True,
                   label="1 M-row table, recent days (first after CHECKPOINT)")
    copy(conn, "small", text(batch(routes, 2, False)), label="1 M-row table, recent days (next)")
    big, _ = copy(conn, "prices", text(batch(routes, 3, False)), checkpoint=True,
                  label=f"{ROWS // 10**6} M-row prices, recent days (first after CHECKPOINT)")
    copy(conn, "prices", text(batch(routes, 4, False)), label="prices, recent days (next)")
    copy(conn, "prices", text(batch(routes, 5, False)), label="prices, recent days (next)")
    conn.execute("SET wal_compression = on")
    copy(conn, "prices", text(batch(routes, 6, False)), checkpoint=True,
         label="prices, recent days, wal_compression (first after CHECKPOINT)")
    copy(conn, "prices", text(batch(routes, 7, False)), label="prices, recent days, wal_compression (next)")
    conn.execute("RESET wal_compression")
    spread, _ = copy(conn, "prices", text(batch(routes, 8, True)), checkpoint=True,
                     label="prices, days over five years (first after CHECKPOINT)")
    copy(conn, "prices", text(batch(routes, 9, True)), label="prices, days over five years (next)")
    say(f"    load rate into {ROWS // 10**6} M rows / into 1 M rows: recent days {base / big:.2f}, "
        f"spread {base / spread:.2f}")
    say("==> 2. the same batches into prices partitioned by month")
    partitioned(conn)
    cols = "(orig_code, dest_code, day, price, batch_id)"
    copy(conn, "prices_p", text(batch(routes, 3, False), 3), cols, True,
         "partitioned, recent days (first after CHECKPOINT)")
    copy(conn, "prices_p", text(batch(routes, 4, False), 4), cols, label="partitioned, recent days (next)")
    say("==> 3. the attach path")
    conn.execute("CHECKPOINT")
    attach(conn, batch(routes, 10, False), 10)
    attach(conn, batch(routes, 11, False), 11)
    say("==> 4. reads")
    reads(conn, "prices", routes, f"prices ({ROWS // 10**6} M+ rows, one index)")
    reads(conn, "prices_p", routes, "prices_p, 2 pieces")
    rng = random.Random(12)
    for b in range(12, 22):
        attach(conn, rng.sample(batch(routes, b, False), 20_000), b, report=False)
    reads(conn, "prices_p", routes, "prices_p, 22 pieces in its last two months")
    say("==> 5. a batch_id column and its index")
    batch_id_cost(conn, routes)


def main() -> int:
    print(f"==> starting compose project {ENV['COMPOSE_PROJECT_NAME']} from nothing", flush=True)
    sh("docker", "compose", "down", "--volumes", "--remove-orphans")
    sh("make", "env")
    sh("make", "up")
    try:
        with connect() as conn:
            measure(conn)
    finally:
        if os.environ.get("BENCH_KEEP") != "1":
            sh("docker", "compose", "down", "--volumes", "--remove-orphans")
    return 0


if __name__ == "__main__":
    sys.exit(main())
