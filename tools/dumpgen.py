"""Deterministic generator of a synthetic ``rates`` database dump.

The output mimics a PostgreSQL 13 ``pg_dump`` plain-format dump of the rates
database: same schema (``regions``, ``ports``, ``prices``), same statement
ordering and formatting, and a similar shape of data:

* about 20 regions forming a hierarchy (China and Northern Europe),
* about 140 ports identified by real UN/LOCODE codes,
* about 57,000 prices on about 700 routes, mostly China -> Northern Europe and
  a few in the reverse direction, for the days 2021-01-01 .. 2021-01-31.

Each route has a base price and one to five price "sources" that drift slowly
from day to day.  Some routes lose sources on some days and some routes are
not quoted on every day, so the data contains days with one or two prices and
days with none.  The route CNGGZ -> EETLL is always present with three prices
on every day.

Only a seeded :class:`random.Random` instance is used (no global random state,
no clock), and only integer-based or plain arithmetic random operations, so the
same seed always yields byte-identical output.

Usage::

    python3 tools/dumpgen.py [--seed N] [--output PATH]   (make dump)
"""

from __future__ import annotations

import argparse
import datetime
import io
import random
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TextIO

__all__ = ["DEFAULT_SEED", "DumpStats", "write_dump", "main"]

DEFAULT_SEED = 2021

FIRST_DAY = datetime.date(2021, 1, 1)
DAY_COUNT = 31
DAYS: tuple[str, ...] = tuple((FIRST_DAY + datetime.timedelta(days=offset)).isoformat() for offset in range(DAY_COUNT))

#: The route that must always be present, with three prices on every day.
PINNED_ROUTE = ("CNGGZ", "EETLL")

# (slug, name, parent slug or None)
REGIONS: tuple[tuple[str, str, str | None], ...] = (
    ("china_main", "China Main", None),
    ("china_east_main", "China East Main", "china_main"),
    ("china_south_main", "China South Main", "china_main"),
    ("china_north_main", "China North Main", "china_main"),
    ("northern_europe", "Northern Europe", None),
    ("baltic", "Baltic", "northern_europe"),
    ("finland_main", "Finland Main", "baltic"),
    ("baltic_main", "Baltic Main", "baltic"),
    ("poland_main", "Poland Main", "baltic"),
    ("scandinavia", "Scandinavia", "northern_europe"),
    ("kattegat", "Kattegat", "scandinavia"),
    ("norway_north_west", "Norway North West", "scandinavia"),
    ("norway_south_east", "Norway South East", "scandinavia"),
    ("norway_south_west", "Norway South West", "scandinavia"),
    ("stockholm_area", "Stockholm Area", "scandinavia"),
    ("north_europe_main", "North Europe Main", "northern_europe"),
    ("uk_main", "UK Main", "north_europe_main"),
    ("north_europe_sub", "North Europe Sub", "northern_europe"),
    ("uk_sub", "UK Sub", "north_europe_sub"),
    ("russia_north_west", "Russia North West", "northern_europe"),
)

# Origin ports in China: (UN/LOCODE, name, region, tier).  The tier controls
# how many routes leave the port: 3 = major hub, 2 = medium, 1 = small.
ORIGIN_PORTS: tuple[tuple[str, str, str, int], ...] = (
    ("CNGGZ", "Guangzhou", "china_south_main", 3),
    ("CNYTN", "Yantian", "china_south_main", 3),
    ("CNSZX", "Shenzhen", "china_south_main", 3),
    ("HKHKG", "Hong Kong", "china_south_main", 3),
    ("CNSHK", "Shekou", "china_south_main", 2),
    ("CNNSA", "Nansha", "china_south_main", 2),
    ("CNCWN", "Chiwan", "china_south_main", 2),
    ("CNZUH", "Zhuhai", "china_south_main", 1),
    ("CNSWA", "Shantou", "china_south_main", 1),
    ("CNSHA", "Shanghai", "china_east_main", 3),
    ("CNNGB", "Ningbo", "china_east_main", 3),
    ("CNQIN", "Qingdao", "china_east_main", 3),
    ("CNXMN", "Xiamen", "china_east_main", 3),
    ("CNFOC", "Fuzhou", "china_east_main", 2),
    ("CNLYG", "Lianyungang", "china_east_main", 2),
    ("CNTAG", "Taicang", "china_east_main", 2),
    ("CNYNT", "Yantai", "china_east_main", 1),
    ("CNNKG", "Nanjing", "china_east_main", 1),
    ("CNZJG", "Zhangjiagang", "china_east_main", 1),
    ("CNWNZ", "Wenzhou", "china_east_main", 1),
    ("CNTXG", "Xingang (Tianjin New Port)", "china_north_main", 3),
    ("CNDLC", "Dalian", "china_north_main", 3),
    ("CNTSN", "Tianjin", "china_north_main", 1),
    ("CNYIK", "Yingkou", "china_north_main", 1),
    ("CNCFD", "Caofeidian", "china_north_main", 1),
    ("CNDDG", "Dandong", "china_north_main", 1),
)

# Destination ports in Northern Europe: (UN/LOCODE, name, region).
DESTINATION_PORTS: tuple[tuple[str, str, str], ...] = (
    ("FIHEL", "Helsinki (Helsingfors)", "finland_main"),
    ("FIKTK", "Kotka", "finland_main"),
    ("FIHMN", "Hamina (Fredrikshamn)", "finland_main"),
    ("FIRAU", "Rauma (Raumo)", "finland_main"),
    ("FITKU", "Turku (Åbo)", "finland_main"),
    ("FIHKO", "Hanko (Hangö)", "finland_main"),
    ("FIUKI", "Uusikaupunki (Nystad)", "finland_main"),
    ("FIINK", "Inkoo (Ingå)", "finland_main"),
    ("FIOUL", "Oulu (Uleåborg)", "baltic"),
    ("FIKOK", "Kokkola (Karleby)", "baltic"),
    ("FIKEM", "Kemi", "baltic"),
    ("FIPOR", "Pori (Björneborg)", "baltic"),
    ("FIKAS", "Kaskinen (Kaskö)", "baltic"),
    ("RULED", "Saint Petersburg", "baltic"),
    ("RUULU", "Ust-Luga", "baltic"),
    ("RUKGD", "Kaliningrad", "baltic"),
    ("RUPRI", "Primorsk", "baltic"),
    ("EETLL", "Tallinn", "baltic_main"),
    ("EEMUG", "Muuga", "baltic_main"),
    ("EEPLA", "Paldiski", "baltic_main"),
    ("LVRIX", "Riga", "baltic_main"),
    ("LVVNT", "Ventspils", "baltic_main"),
    ("LTKLJ", "Klaipėda", "baltic_main"),
    ("PLGDN", "Gdańsk", "poland_main"),
    ("PLGDY", "Gdynia", "poland_main"),
    ("PLSZZ", "Szczecin", "poland_main"),
    ("PLSWI", "Świnoujście", "poland_main"),
    ("RUARH", "Arkhangelsk", "russia_north_west"),
    ("RUMMK", "Murmansk", "russia_north_west"),
    ("SESTO", "Stockholm", "stockholm_area"),
    ("SENYN", "Nynäshamn", "stockholm_area"),
    ("SESOE", "Södertälje", "stockholm_area"),
    ("SENRK", "Norrköping", "stockholm_area"),
    ("SEOXE", "Oxelösund", "stockholm_area"),
    ("SEGVX", "Gävle", "stockholm_area"),
    ("SEGOT", "Gothenburg (Göteborg)", "kattegat"),
    ("SEHAD", "Halmstad", "kattegat"),
    ("SEHEL", "Helsingborg", "kattegat"),
    ("SEMMA", "Malmö", "kattegat"),
    ("SEVAR", "Varberg", "kattegat"),
    ("SEWAL", "Wallhamn", "kattegat"),
    ("SEUDD", "Uddevalla", "kattegat"),
    ("DKCPH", "Copenhagen (København)", "kattegat"),
    ("DKAAR", "Aarhus (Århus)", "kattegat"),
    ("DKFRC", "Fredericia", "kattegat"),
    ("SEAHU", "Åhus", "scandinavia"),
    ("SEKAN", "Karlshamn", "scandinavia"),
    ("SETRG", "Trelleborg", "scandinavia"),
    ("SELLA", "Luleå", "scandinavia"),
    ("SEUME", "Umeå", "scandinavia"),
    ("DKAAL", "Aalborg", "scandinavia"),
    ("DKEBJ", "Esbjerg", "scandinavia"),
    ("ISREY", "Reykjavík", "scandinavia"),
    ("FOTHO", "Tórshavn", "scandinavia"),
    ("NOTOS", "Tromsø", "scandinavia"),
    ("NOOSL", "Oslo", "norway_south_east"),
    ("NOFRK", "Fredrikstad", "norway_south_east"),
    ("NODRM", "Drammen", "norway_south_east"),
    ("NOTON", "Tønsberg", "norway_south_east"),
    ("NOLAR", "Larvik", "norway_south_east"),
    ("NOBVK", "Brevik", "norway_south_east"),
    ("NOMSS", "Moss", "norway_south_east"),
    ("NOKRS", "Kristiansand", "norway_south_east"),
    ("NOPOR", "Porsgrunn", "norway_south_east"),
    ("NOSVG", "Stavanger", "norway_south_west"),
    ("NOBGO", "Bergen", "norway_south_west"),
    ("NOHAU", "Haugesund", "norway_south_west"),
    ("NOSAS", "Sandnes", "norway_south_west"),
    ("NOTAE", "Tananger", "norway_south_west"),
    ("NOEGE", "Egersund", "norway_south_west"),
    ("NOAES", "Ålesund", "norway_north_west"),
    ("NOMOL", "Molde", "norway_north_west"),
    ("NOKSU", "Kristiansund", "norway_north_west"),
    ("NOTRD", "Trondheim", "norway_north_west"),
    ("NOORK", "Orkanger", "norway_north_west"),
    ("NOFRO", "Florø", "norway_north_west"),
    ("NLRTM", "Rotterdam", "north_europe_main"),
    ("BEANR", "Antwerp (Antwerpen)", "north_europe_main"),
    ("DEHAM", "Hamburg", "north_europe_main"),
    ("DEBRV", "Bremerhaven", "north_europe_main"),
    ("FRLEH", "Le Havre", "north_europe_main"),
    ("BEZEE", "Zeebrugge", "north_europe_main"),
    ("DEWVN", "Wilhelmshaven", "north_europe_main"),
    ("GBFXT", "Felixstowe", "uk_main"),
    ("GBSOU", "Southampton", "uk_main"),
    ("GBLGP", "London Gateway Port", "uk_main"),
    ("NLAMS", "Amsterdam", "north_europe_sub"),
    ("NLMOE", "Moerdijk", "north_europe_sub"),
    ("DEBRE", "Bremen", "north_europe_sub"),
    ("DEKEL", "Kiel", "north_europe_sub"),
    ("DELBC", "Lübeck", "north_europe_sub"),
    ("DERSK", "Rostock", "north_europe_sub"),
    ("BEGNE", "Ghent (Gent)", "north_europe_sub"),
    ("FRDKK", "Dunkerque", "north_europe_sub"),
    ("FRMTX", "Montoir-de-Bretagne", "north_europe_sub"),
    ("FRNTE", "Nantes", "north_europe_sub"),
    ("FRBOD", "Bordeaux", "north_europe_sub"),
    ("ESBIO", "Bilbao", "north_europe_sub"),
    ("ESVGO", "Vigo", "north_europe_sub"),
    ("ESGIJ", "Gijón", "north_europe_sub"),
    ("IEDUB", "Dublin", "north_europe_sub"),
    ("IEORK", "Cork", "north_europe_sub"),
    ("GBTIL", "Tilbury", "uk_sub"),
    ("GBPME", "Portsmouth", "uk_sub"),
    ("GBTEE", "Teesport", "uk_sub"),
    ("GBHUL", "Hull", "uk_sub"),
    ("GBIMM", "Immingham", "uk_sub"),
    ("GBLIV", "Liverpool", "uk_sub"),
    ("GBGRG", "Grangemouth", "uk_sub"),
    ("GBBEL", "Belfast", "uk_sub"),
    ("GBBRS", "Bristol", "uk_sub"),
    ("GBAVO", "Avonmouth", "uk_sub"),
    ("GBABD", "Aberdeen", "uk_sub"),
    ("GBHRW", "Harwich", "uk_sub"),
    ("GBPLY", "Plymouth", "uk_sub"),
)

# How often a destination region is picked by a route (integer weights).
_DESTINATION_REGION_WEIGHT = {
    "north_europe_main": 4,
    "uk_main": 4,
    "finland_main": 3,
    "baltic_main": 3,
    "poland_main": 3,
    "kattegat": 3,
    "stockholm_area": 3,
    "norway_south_east": 3,
    "norway_south_west": 3,
    "norway_north_west": 2,
}
_DEFAULT_DESTINATION_WEIGHT = 1

# Number of distinct destinations per origin tier: (low, high), inclusive.
_ROUTES_PER_TIER = {3: (44, 56), 2: (16, 28), 1: (3, 9)}
# European ports that also quote a few return routes to China.
_REVERSE_ORIGINS = ("NLRTM", "DEHAM", "BEANR", "GBFXT", "FIHEL", "SEGOT", "PLGDN", "NOOSL")
_REVERSE_ROUTES = (2, 4)
# Number of price sources per route (repeated values act as weights).
_SOURCE_COUNTS = (1,) * 9 + (2,) * 7 + (3,) * 72 + (4,) * 8 + (5,) * 4
# Per-route probability that a source is missing on a given day.
_DROP_RATES = (0.0, 0.0, 0.0, 0.0, 0.02, 0.05, 0.1, 0.35)
_MIN_PRICE = 50

_HEADER = """\
--
-- PostgreSQL database dump
--

-- Dumped from database version 13.5
-- Dumped by pg_dump version 13.5

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_with_oids = false;
SET default_table_access_method = heap;

"""

# (table, [(column, type, not null)]) in pg_dump order (alphabetical).
_TABLES: tuple[tuple[str, tuple[tuple[str, str, bool], ...]], ...] = (
    ("ports", (("code", "text", True), ("name", "text", True), ("parent_slug", "text", True))),
    (
        "prices",
        (
            ("orig_code", "text", True),
            ("dest_code", "text", True),
            ("day", "date", True),
            ("price", "integer", True),
        ),
    ),
    ("regions", (("slug", "text", True), ("name", "text", True), ("parent_slug", "text", False))),
)

# (table, constraint, kind, definition) in pg_dump order: primary keys first.
_CONSTRAINTS: tuple[tuple[str, str, str, str], ...] = (
    ("ports", "ports_pkey", "CONSTRAINT", "PRIMARY KEY (code)"),
    ("regions", "regions_pkey", "CONSTRAINT", "PRIMARY KEY (slug)"),
    (
        "ports",
        "ports_parent_slug_fkey",
        "FK CONSTRAINT",
        "FOREIGN KEY (parent_slug) REFERENCES public.regions(slug)",
    ),
    (
        "prices",
        "prices_dest_code_fkey",
        "FK CONSTRAINT",
        "FOREIGN KEY (dest_code) REFERENCES public.ports(code)",
    ),
    (
        "prices",
        "prices_orig_code_fkey",
        "FK CONSTRAINT",
        "FOREIGN KEY (orig_code) REFERENCES public.ports(code)",
    ),
    (
        "regions",
        "regions_parent_slug_fkey",
        "FK CONSTRAINT",
        "FOREIGN KEY (parent_slug) REFERENCES public.regions(slug)",
    ),
)

_FOOTER = """\
--
-- PostgreSQL database dump complete
--

"""


@dataclass(frozen=True)
class DumpStats:
    """Row counts of a generated dump."""

    regions: int
    ports: int
    prices: int
    routes: int


# --------------------------------------------------------------------------
# Data generation
# --------------------------------------------------------------------------


def _pick_destinations(rng: random.Random, pool: Sequence[str], count: int) -> list[str]:
    """Draw ``count`` distinct codes from a weighted pool (codes repeated by weight)."""
    picked: list[str] = []
    seen: set[str] = set()
    while len(picked) < count:
        code = rng.choice(pool)
        if code not in seen:
            seen.add(code)
            picked.append(code)
    return picked


def _pick_routes(rng: random.Random) -> list[tuple[str, str]]:
    """Choose the (origin, destination) pairs, pinned route first."""
    dest_pool = [
        code
        for code, _name, region in DESTINATION_PORTS
        for _ in range(_DESTINATION_REGION_WEIGHT.get(region, _DEFAULT_DESTINATION_WEIGHT))
    ]
    origins = list(ORIGIN_PORTS)
    rng.shuffle(origins)
    # The pinned route's origin goes first, as in the original dump.
    origins.sort(key=lambda port: port[0] != PINNED_ROUTE[0])

    routes: list[tuple[str, str]] = []
    for code, _name, _region, tier in origins:
        low, high = _ROUTES_PER_TIER[tier]
        destinations = _pick_destinations(rng, dest_pool, rng.randint(low, high))
        if code == PINNED_ROUTE[0]:
            if PINNED_ROUTE[1] in destinations:
                destinations.remove(PINNED_ROUTE[1])
            destinations.insert(0, PINNED_ROUTE[1])
        routes.extend((code, dest) for dest in destinations)

    china_pool = [code for code, _name, _region, tier in ORIGIN_PORTS for _ in range(tier)]
    for code in _REVERSE_ORIGINS:
        for dest in _pick_destinations(rng, china_pool, rng.randint(*_REVERSE_ROUTES)):
            routes.append((code, dest))
    return routes


def _quoted_days(rng: random.Random) -> list[bool]:
    """Which of the days of the month a route is quoted on."""
    roll = rng.random()
    if roll < 0.045:  # quoted for a contiguous part of the month only
        length = rng.randint(3, DAY_COUNT - 3)
        start = rng.randint(0, DAY_COUNT - length)
        return [start <= day < start + length for day in range(DAY_COUNT)]
    if roll < 0.065:  # quoted on scattered days
        chosen = set(rng.sample(range(DAY_COUNT), rng.randint(5, 25)))
        return [day in chosen for day in range(DAY_COUNT)]
    quoted = [True] * DAY_COUNT
    if roll < 0.10:  # a few gaps
        for day in rng.sample(range(DAY_COUNT), rng.randint(1, 3)):
            quoted[day] = False
    return quoted


def _route_rows(rng: random.Random, orig: str, dest: str, reverse: bool) -> list[str]:
    """COPY data lines (orig, dest, day, price) of one route, by day then source."""
    pinned = (orig, dest) == PINNED_ROUTE
    base = rng.randint(300, 1100) if reverse else rng.randint(800, 2500)
    source_count = 3 if pinned else rng.choice(_SOURCE_COUNTS)
    drop_rate = 0.0 if pinned else rng.choice(_DROP_RATES)
    quoted = [True] * DAY_COUNT if pinned else _quoted_days(rng)

    # Each source: [current level, anchor level, daily volatility].
    sources: list[list[float]] = []
    for _ in range(source_count):
        anchor = rng.uniform(0.85, 1.15)
        volatility = 0.0 if rng.random() < 0.4 else rng.uniform(0.001, 0.008)
        sources.append([anchor, anchor, volatility])

    prefix = f"{orig}\t{dest}\t"
    rows: list[str] = []
    for day in range(DAY_COUNT):
        for source in sources:
            level, anchor, volatility = source
            if volatility:
                level *= 1.0 + rng.uniform(-volatility, volatility)
                level += (anchor - level) * 0.05
                source[0] = level
        if not quoted[day]:
            continue
        for level, _anchor, _volatility in sources:
            if drop_rate and rng.random() < drop_rate:
                continue
            price = max(_MIN_PRICE, round(base * level))
            rows.append(f"{prefix}{DAYS[day]}\t{price}\n")
    return rows


# --------------------------------------------------------------------------
# pg_dump formatting
# --------------------------------------------------------------------------


def _copy_value(value: str | None) -> str:
    """Encode one value in COPY text format (``\\N`` for NULL)."""
    if value is None:
        return "\\N"
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _copy_line(values: Iterable[str | None]) -> str:
    return "\t".join(_copy_value(value) for value in values) + "\n"


def _toc_comment(name: str, kind: str, data: bool = False) -> str:
    label = "Data for Name" if data else "Name"
    return f"--\n-- {label}: {name}; Type: {kind}; Schema: public; Owner: -\n--\n\n"


def _create_table(table: str, columns: Sequence[tuple[str, str, bool]]) -> str:
    body = ",\n".join(f"    {name} {type_}{' NOT NULL' if not_null else ''}" for name, type_, not_null in columns)
    return _toc_comment(table, "TABLE") + f"CREATE TABLE public.{table} (\n{body}\n);\n\n\n"


def _copy_start(table: str) -> str:
    columns = next(cols for name, cols in _TABLES if name == table)
    names = ", ".join(name for name, _type, _not_null in columns)
    return _toc_comment(table, "TABLE DATA", data=True) + (f"COPY public.{table} ({names}) FROM stdin;\n")


_COPY_END = "\\.\n\n\n"


def _constraint(table: str, name: str, kind: str, definition: str) -> str:
    return _toc_comment(f"{table} {name}", kind) + (
        f"ALTER TABLE ONLY public.{table}\n    ADD CONSTRAINT {name} {definition};\n\n\n"
    )


def write_dump(out: TextIO, seed: int = DEFAULT_SEED) -> DumpStats:
    """Write a complete pg_dump-style plain SQL dump to ``out``.

    ``out`` should be opened with UTF-8 encoding and without newline
    translation (``newline="\\n"``) for the output to be byte-identical across
    platforms.  Returns the row counts written.
    """
    rng = random.Random(seed)

    ports = [(code, name, region) for code, name, region, _tier in ORIGIN_PORTS]
    ports.extend(DESTINATION_PORTS)
    rng.shuffle(ports)
    regions = list(REGIONS)
    rng.shuffle(regions)

    routes = _pick_routes(rng)
    reverse_from = set(_REVERSE_ORIGINS)

    out.write(_HEADER)
    for table, columns in _TABLES:
        out.write(_create_table(table, columns))

    out.write(_copy_start("ports"))
    out.writelines(_copy_line(port) for port in ports)
    out.write(_COPY_END)

    out.write(_copy_start("prices"))
    price_count = 0
    for orig, dest in routes:
        rows = _route_rows(rng, orig, dest, reverse=orig in reverse_from)
        price_count += len(rows)
        out.write("".join(rows))
    out.write(_COPY_END)

    out.write(_copy_start("regions"))
    out.writelines(_copy_line(region) for region in regions)
    out.write(_COPY_END)

    for constraint in _CONSTRAINTS:
        out.write(_constraint(*constraint))
    out.write(_FOOTER)

    return DumpStats(regions=len(regions), ports=len(ports), prices=price_count, routes=len(routes))


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(
        prog="tools/dumpgen.py",
        description="Generate a synthetic pg_dump plain SQL dump of the rates database.",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    parser.add_argument("--output", metavar="PATH", help="file to write (default: standard output)")
    args = parser.parse_args(argv)

    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="\n") as out:
            stats = write_dump(out, seed=args.seed)
        print(
            f"{args.output}: {stats.regions} regions, {stats.ports} ports, "
            f"{stats.prices} prices on {stats.routes} routes (seed {args.seed})",
            file=sys.stderr,
        )
    else:
        stdout = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="\n")
        try:
            write_dump(stdout, seed=args.seed)
            stdout.flush()
        finally:
            stdout.detach()  # leave sys.stdout usable
    return 0


if __name__ == "__main__":
    sys.exit(main())
