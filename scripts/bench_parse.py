#!/usr/bin/env python3
"""Parse + validate throughput of batch bodies (a script printing figures, not a test): the code
of this tree against a baseline commit, measured in the same run on this machine.

For each case (CSV, NDJSON, compact JSON array, indented JSON array, and CSV with every price
distinct), BENCH_PARSE_ROWS rows (default 1,000,000) are written once to a temporary file. Each
implementation runs in a fresh interpreter (`--worker`) that reads the file into memory, feeds it
in 256 KiB chunks (as rates.batches.body does) to the parser and the validation, joins the COPY
blocks as ingest.py does (nothing touches a database), twice, and prints the CPU time of the
second pass: the first grows the allocator's pools, as in a server worker that has served a batch
before; process time rather than the wall clock, far steadier on a shared machine (the work is
one thread). The baseline's `rates` package is extracted with `git archive`
(BENCH_PARSE_BASELINE, default the merge base of HEAD and main) into a temporary folder.
Baseline and current alternate, BENCH_PARSE_REPEAT times (default 3); the medians and their ratio
are printed.

When `ijson` is importable, the JSON array cases also run `ijson.items` (C backend yajl2_c) feeding
the same validation, without any line numbers: the best case of a streaming JSON library.

BENCH_PARSE_COUNT_ROWS=100000 also counts the instructions per row of both implementations with
valgrind (cachegrind) on that many rows: a figure no other load on the machine moves.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROWS = int(os.environ.get("BENCH_PARSE_ROWS", "1000000"))
REPEAT = int(os.environ.get("BENCH_PARSE_REPEAT", "3"))
COUNT_ROWS = int(os.environ.get("BENCH_PARSE_COUNT_ROWS", "0"))  # > 0: also count instructions (valgrind)
CHUNK = 256 * 1024
PORTS = [f"{a}{b}{n:03d}" for a in "ABCDEFGH" for b in "XYZ" for n in range(30)]  # 720 port codes
CASES = {  # case -> (format, render)
    "csv": ("csv", "csv"),
    "ndjson": ("ndjson", "ndjson"),
    "json": ("json", "json"),
    "json indented": ("json", "json-indent"),
    "csv distinct prices": ("csv", "csv-distinct"),
}


def make_rows(n: int, distinct_prices: bool) -> list[tuple[str, str, str, int]]:
    rng = random.Random(7)
    routes = [(rng.choice(PORTS), rng.choice(PORTS)) for _ in range(2000)]
    days = [(date(2030, 1, 1) + timedelta(d)).isoformat() for d in range(730)]
    if distinct_prices:
        prices = rng.sample(range(1, 2**31), n)
        return [(*rng.choice(routes), rng.choice(days), prices[i]) for i in range(n)]
    return [(*rng.choice(routes), rng.choice(days), rng.randint(100, 5000)) for _ in range(n)]


def render(kind: str, rows: list[tuple[str, str, str, int]]) -> bytes:
    if kind.startswith("csv"):
        return ("orig_code,dest_code,day,price\n" + "".join(f"{o},{d},{day},{p}\n" for o, d, day, p in rows)).encode()
    objs = [{"orig_code": o, "dest_code": d, "day": day, "price": p} for o, d, day, p in rows]
    if kind == "ndjson":
        return "".join(json.dumps(obj) + "\n" for obj in objs).encode()
    return json.dumps(objs, indent=1 if kind == "json-indent" else None).encode()


def chunks(data: bytes):
    for i in range(0, len(data), CHUNK):
        yield data[i : i + CHUNK]


def worker(code_root: str, fmt: str, path: str, engine: str) -> None:
    """Time one parse + validation of the file with the `rates` package found in code_root."""
    sys.path.insert(0, code_root)
    from rates.batches import formats, rows

    data = Path(path).read_bytes()
    for _ in range(2):  # the first pass grows the allocator's pools, as a worker that served a batch before
        started = time.process_time()
        count, errors = _parse(fmt, data, engine, formats, rows)
        elapsed = time.process_time() - started
    print(json.dumps({"seconds": elapsed, "rows": count, "errors": errors}))


def _parse(fmt: str, data: bytes, engine: str, formats, rows) -> tuple[int, int]:
    """Parse and validate ``data``; (rows, errors) as counted by the code under test."""
    if hasattr(formats, "Tally"):  # the parsers before copy_blocks.py: blocks of lines, shared tally
        validator, tally = rows.Validator(PORTS), formats.Tally()
        for block in formats.parser(fmt)(chunks(data), validator, tally):
            "".join(block)
        return tally.rows, validator.errors.total
    from rates.batches.copy_blocks import CopyBlocks

    items = formats.parser(fmt)(chunks(data)) if engine == "stdlib" else _ijson_items(data)
    batch = CopyBlocks(items, rows.Validator(PORTS), fmt)
    for _ in batch.blocks():
        pass
    return batch.rows, batch.errors.total


def _ijson_items(data: bytes):
    import ijson

    assert ijson.backend == "yajl2_c", ijson.backend
    return ((0, obj) for obj in ijson.items(io.BytesIO(data), "item", buf_size=CHUNK))


def run_worker(code_root: Path, fmt: str, path: Path, engine: str = "stdlib") -> float:
    out = subprocess.run([sys.executable, __file__, "--worker", str(code_root), fmt, str(path), engine],
                         check=True, capture_output=True, text=True).stdout
    result = json.loads(out)
    if result["rows"] != ROWS or result["errors"]:
        sys.exit(f"{code_root} {fmt} {engine}: {result}")
    return ROWS / result["seconds"]


def baseline_commit() -> str:
    ref = os.environ.get("BENCH_PARSE_BASELINE") or subprocess.run(
        ["git", "merge-base", "HEAD", "main"], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
    return subprocess.run(["git", "rev-parse", "--short", ref], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()


def instructions_per_row(code_root: Path, fmt: str, path: Path, rows: int, empty: Path) -> float:
    """Instructions the worker executes per row, counted by valgrind (cachegrind), less the
    count of an empty body (interpreter start and imports); both passes counted."""

    def count(body: Path) -> int:
        out = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                              sys.executable, __file__, "--worker", str(code_root), fmt, str(body), "stdlib"],
                             check=True, capture_output=True, text=True).stderr
        return int(re.search(r"I\s+refs:\s+([\d,]+)", out).group(1).replace(",", ""))  # type: ignore[union-attr]

    return (count(path) - count(empty)) / (2 * rows)


def measure(case: str, fmt: str, kind: str, tmp: Path, base: Path, with_ijson: bool) -> tuple:
    path = tmp / f"body.{kind}"
    path.write_bytes(render(kind, make_rows(ROWS, kind == "csv-distinct")))
    old: list[float] = []
    new: list[float] = []
    extra: list[float] = []
    for r in range(REPEAT):
        pair = [(old, base), (new, ROOT)]
        for figures, code in pair if r % 2 == 0 else pair[::-1]:
            figures.append(run_worker(code, fmt, path))
        if with_ijson and fmt == "json":
            extra.append(run_worker(ROOT, fmt, path, "ijson"))
    size = path.stat().st_size
    path.unlink()
    counts: tuple[float, ...] = ()
    if COUNT_ROWS:
        small, empty = tmp / f"small.{kind}", tmp / "empty"
        small.write_bytes(render(kind, make_rows(COUNT_ROWS, kind == "csv-distinct")))
        empty.write_bytes(b"")
        counts = tuple(instructions_per_row(code, fmt, small, COUNT_ROWS, empty) for code in (base, ROOT))
    print(f"  {case:<20} baseline {' '.join(f'{x:>9,.0f}' for x in old)}   "
          f"now {' '.join(f'{x:>9,.0f}' for x in new)}" + (
              f"   ijson {' '.join(f'{x:>9,.0f}' for x in extra)}" if extra else ""), flush=True)
    return case, size, old, new, extra, counts


def main() -> int:
    try:
        import ijson  # noqa: F401

        with_ijson = True
    except ImportError:
        with_ijson = False
    commit = baseline_commit()
    with tempfile.TemporaryDirectory(prefix="bench-parse-") as tmp:
        base = Path(tmp) / "baseline"
        base.mkdir()
        archive = subprocess.run(["git", "archive", commit, "rates"], cwd=ROOT, check=True, capture_output=True)
        tarfile.open(fileobj=io.BytesIO(archive.stdout)).extractall(base, filter="data")
        print(f"parse + validate, rows per second of CPU time, {ROWS:,} rows, baseline {commit} vs this tree, "
              f"{REPEAT} runs each, load average {os.getloadavg()[0]:.2f}")
        results = [measure(case, fmt, kind, Path(tmp), base, with_ijson) for case, (fmt, kind) in CASES.items()]
    print(f"\n{'case':<20} {'MB':>6} {'baseline rows/s':>16} {'now rows/s':>11} {'now/baseline':>13} "
          f"{'ijson rows/s':>13}" + ("   instructions/row: baseline, now" if COUNT_ROWS else ""))
    for case, size, old, new, extra, counts in results:
        ratio = statistics.median(new) / statistics.median(old)
        ij = f"{statistics.median(extra):>13,.0f}" if extra else f"{'-':>13}"
        print(f"{case:<20} {size / 1e6:>6.1f} {statistics.median(old):>16,.0f} {statistics.median(new):>11,.0f} "
              f"{ratio:>13.2f} {ij}" + (f"   {counts[0]:,.0f}, {counts[1]:,.0f}" if counts else ""))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:6])
        sys.exit(0)
    sys.exit(main())
