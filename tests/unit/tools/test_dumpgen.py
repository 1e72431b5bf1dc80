"""Tests of the synthetic dump generator (no database needed)."""

from __future__ import annotations

import collections
import datetime
import io
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tools import dumpgen

REPO_ROOT = Path(__file__).resolve().parents[3]
COMMITTED_DUMP = REPO_ROOT / "db" / "rates.sql"

REQUIRED_PORTS = (
    "CNGGZ", "EETLL", "CNSHA", "CNNGB", "CNYTN", "CNSZX", "CNTXG", "CNDLC", "CNQIN", "CNXMN",
    "EEMUG", "FIHEL", "FIKTK", "FITKU", "SEGOT", "SESTO", "NOOSL", "NOBGO", "DKAAR", "DKCPH",
    "PLGDN", "PLGDY", "LVRIX", "LTKLJ", "RULED", "GBFXT", "GBSOU", "GBLGP",
)  # fmt: skip


def generate(seed: int = dumpgen.DEFAULT_SEED) -> tuple[str, dumpgen.DumpStats]:
    out = io.StringIO()
    stats = dumpgen.write_dump(out, seed=seed)
    return out.getvalue(), stats


@dataclass
class ParsedDump:
    statements: list[str]  # without their semicolon
    copies: dict[str, tuple[list[str], list[list[str | None]]]]  # table -> (columns, rows)


COPY_LINE = re.compile(r"COPY public\.(\w+) \(([^)]*)\) FROM stdin;")


def parse(text: str) -> ParsedDump:
    """The generator's own output, read line by line as pg_dump lays it out: comments and blank
    lines between statements, statements ending with ``;`` at the end of a line, COPY data up to
    a ``\\.`` line. (psql loading the committed dump is tested in tests/integration/db.)"""
    parsed = ParsedDump([], {})
    lines = iter(text.splitlines())
    pending: list[str] = []
    for line in lines:
        if copy := COPY_LINE.fullmatch(line):
            rows = [[None if value == "\\N" else value for value in data.split("\t")]
                    for data in iter(lines.__next__, "\\.")]
            parsed.copies[copy.group(1)] = (copy.group(2).split(", "), rows)
        elif pending or (line and not line.startswith("--")):
            pending.append(line)
            if line.endswith(";"):
                parsed.statements.append("\n".join(pending)[:-1])
                pending = []
    assert not pending, f"unterminated statement: {pending}"
    return parsed


@pytest.fixture(scope="module")
def default_dump() -> tuple[str, dumpgen.DumpStats]:
    return generate()


@pytest.fixture(scope="module")
def parsed(default_dump: tuple[str, dumpgen.DumpStats]) -> ParsedDump:
    return parse(default_dump[0])


# --- determinism --------------------------------------------------------------


def test_same_seed_gives_identical_bytes(default_dump: tuple[str, dumpgen.DumpStats]) -> None:
    again, _ = generate()
    assert again.encode("utf-8") == default_dump[0].encode("utf-8")
    assert generate(7)[0] == generate(7)[0]


def test_other_seed_gives_other_dump(default_dump: tuple[str, dumpgen.DumpStats]) -> None:
    assert generate(dumpgen.DEFAULT_SEED + 1)[0] != default_dump[0]


def test_committed_dump_matches_default_seed(default_dump: tuple[str, dumpgen.DumpStats]) -> None:
    assert COMMITTED_DUMP.read_bytes() == default_dump[0].encode("utf-8"), (
        "db/rates.sql is stale: run make dump"
    )


def test_cli_output_file(tmp_path: Path) -> None:
    target = tmp_path / "dump.sql"
    assert dumpgen.main(["--seed", "5", "--output", str(target)]) == 0
    assert target.read_bytes() == generate(5)[0].encode("utf-8")


def test_cli_stdout(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert dumpgen.main(["--seed", "5"]) == 0
    assert capsysbinary.readouterr().out == generate(5)[0].encode("utf-8")


def test_generation_is_fast() -> None:
    started = time.perf_counter()
    generate()
    assert time.perf_counter() - started < 2.0


# --- pg_dump format -------------------------------------------------------------


def test_pg_dump_framing(default_dump: tuple[str, dumpgen.DumpStats]) -> None:
    text = default_dump[0]
    assert text.startswith("--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version 13.5\n")
    assert text.endswith("--\n-- PostgreSQL database dump complete\n--\n\n")
    assert "\r" not in text


def test_statements_follow_pg_dump_order(parsed: ParsedDump) -> None:
    sqls = parsed.statements
    assert "SELECT pg_catalog.set_config('search_path', '', false)" in sqls
    assert "SET client_encoding = 'UTF8'" in sqls
    creates = [re.match(r"CREATE TABLE public\.(\w+) \(", sql) for sql in sqls]
    assert [m.group(1) for m in creates if m] == ["ports", "prices", "regions"]
    alters = [sql for sql in sqls if sql.startswith("ALTER TABLE ONLY public.")]
    assert len(alters) == 6
    assert sum("PRIMARY KEY" in sql for sql in alters) == 2
    assert sum("FOREIGN KEY" in sql for sql in alters) == 4
    # Constraints come after the data, as in pg_dump output.
    assert sqls.index(alters[0]) > max(i for i, m in enumerate(creates) if m)


def test_create_table_columns(parsed: ParsedDump) -> None:
    sqls = {statement.split(" (")[0]: statement for statement in parsed.statements}
    assert sqls["CREATE TABLE public.prices"] == (
        "CREATE TABLE public.prices (\n    orig_code text NOT NULL,\n"
        "    dest_code text NOT NULL,\n    day date NOT NULL,\n    price integer NOT NULL\n)"
    )
    assert "    parent_slug text\n)" in sqls["CREATE TABLE public.regions"]
    assert "    parent_slug text NOT NULL\n)" in sqls["CREATE TABLE public.ports"]


def test_copy_columns(parsed: ParsedDump) -> None:
    assert list(parsed.copies) == ["ports", "prices", "regions"]
    assert parsed.copies["ports"][0] == ["code", "name", "parent_slug"]
    assert parsed.copies["prices"][0] == ["orig_code", "dest_code", "day", "price"]
    assert parsed.copies["regions"][0] == ["slug", "name", "parent_slug"]
    for table, (columns, rows) in parsed.copies.items():
        assert all(len(row) == len(columns) for row in rows), table


# --- shape of the data --------------------------------------------------------------


def test_counts(parsed: ParsedDump, default_dump: tuple[str, dumpgen.DumpStats]) -> None:
    stats = default_dump[1]
    prices = parsed.copies["prices"][1]
    routes = {(row[0], row[1]) for row in prices}
    assert stats == dumpgen.DumpStats(
        regions=len(parsed.copies["regions"][1]),
        ports=len(parsed.copies["ports"][1]),
        prices=len(prices),
        routes=len(routes),
    )
    assert 15 <= stats.regions <= 25
    assert 120 <= stats.ports <= 160
    assert 50_000 <= stats.prices <= 65_000
    assert 600 <= stats.routes <= 800


def test_ports(parsed: ParsedDump) -> None:
    ports = parsed.copies["ports"][1]
    codes = [row[0] for row in ports]
    assert len(codes) == len(set(codes))
    assert all(code and re.fullmatch(r"[A-Z]{5}", code) for code in codes)
    names = {row[0]: row[1] for row in ports}
    assert names["CNGGZ"] == "Guangzhou"
    assert names["EETLL"] == "Tallinn"
    assert set(REQUIRED_PORTS) <= set(codes)
    assert all(row[1] and row[2] for row in ports)


def test_regions_form_a_forest(parsed: ParsedDump) -> None:
    regions = {row[0]: row[2] for row in parsed.copies["regions"][1]}
    assert len(regions) == len(parsed.copies["regions"][1])
    assert any(parent is None for parent in regions.values())
    for slug in regions:
        seen = {slug}
        parent = regions[slug]
        while parent is not None:
            assert parent in regions, f"{slug}: unknown parent {parent}"
            assert parent not in seen, f"cycle through {slug}"
            seen.add(parent)
            parent = regions[parent]
    ports_regions = {row[2] for row in parsed.copies["ports"][1]}
    assert ports_regions <= set(regions)


def test_prices(parsed: ParsedDump) -> None:
    codes = {row[0] for row in parsed.copies["ports"][1]}
    january = {(datetime.date(2021, 1, 1) + datetime.timedelta(days=n)).isoformat() for n in range(31)}
    per_route_day: collections.Counter[tuple[str | None, ...]] = collections.Counter()
    days_per_route: dict[tuple[str | None, str | None], set[str | None]] = collections.defaultdict(set)
    for orig, dest, day, price in parsed.copies["prices"][1]:
        assert orig in codes and dest in codes and orig != dest
        assert day in january
        assert price is not None and re.fullmatch(r"[0-9]+", price)
        assert 0 < int(price) < 2**31
        per_route_day[(orig, dest, day)] += 1
        days_per_route[(orig, dest)].add(day)

    sizes = collections.Counter(per_route_day.values())
    assert sizes[1] > 0 and sizes[2] > 0 and sizes[3] > 0
    assert max(sizes) <= 6
    full = sum(len(days) == 31 for days in days_per_route.values())
    assert full > 0.7 * len(days_per_route)
    assert full < len(days_per_route)  # some route-days without prices

    assert days_per_route[("CNGGZ", "EETLL")] == january
    assert all(per_route_day[("CNGGZ", "EETLL", day)] == 3 for day in january)

    origins = collections.Counter(orig[:2] for orig, _dest in days_per_route if orig)
    assert origins["CN"] + origins["HK"] > 0.9 * len(days_per_route)
    assert origins["CN"] + origins["HK"] < len(days_per_route)  # some reverse routes
