"""rates.batches.formats, json_array, rows and copy_blocks: CSV, NDJSON and JSON arrays parsed
incrementally into COPY lines, every invalid row reported with its line and field, the list capped
at 100 plus the total."""

from __future__ import annotations

import json
import random

import pytest

from rates.batches.copy_blocks import CopyBlocks
from rates.batches.formats import MAX_LINE, TOO_MANY_BLANK_LINES, parse_media_type, parser
from rates.batches.items import MAX_BLANK, MAX_BLANK_LINES, Problem
from rates.batches.rows import MAX_PRICE, Errors, Validator
from rates.errors import UnsupportedMedia
from rates.rules import shown

PORTS = ("CNGGZ", "EETLL", "NLRTM")
HEADER = "orig_code,dest_code,day,price\n"


def run(fmt: str, text: str | bytes, chunk: int = 7) -> tuple[list[str], Errors, int]:
    """Parse ``text`` fed in chunks of ``chunk`` bytes (small, to cut lines and values anywhere)."""
    data = text.encode() if isinstance(text, str) else text
    chunks = (data[i : i + chunk] for i in range(0, len(data), chunk))
    batch = CopyBlocks(parser(fmt)(chunks), Validator(PORTS), fmt)
    lines = [line for block in batch.blocks() for line in block.splitlines(keepends=True)]
    return lines, batch.errors, batch.rows


def errors_of(fmt: str, text: str | bytes, chunk: int = 7) -> list[tuple]:
    _, errors, _ = run(fmt, text, chunk)
    return [(e["line"], e["field"], e["message"]) for e in errors.items]


def as_ndjson(*rows: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


ROW = {"orig_code": "CNGGZ", "dest_code": "EETLL", "day": "2021-01-31", "price": 1154}
COPY_LINE = "CNGGZ\tEETLL\t2021-01-31\t1154\n"


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1 << 20])
@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("csv", HEADER + "CNGGZ,EETLL,2021-01-31,1154\nNLRTM,CNGGZ,2021-02-01,7\n"),
        ("csv", "price,day,dest_code,orig_code\r\n1154,2021-01-31,EETLL,CNGGZ\r\n7,2021-02-01,CNGGZ,NLRTM"),
        ("csv", '\ufeff"orig_code","dest_code","day","price"\n"CNGGZ","EETLL","2021-01-31","1154"\n\n'
                'NLRTM,CNGGZ,2021-02-01,7\n'),
        ("ndjson", as_ndjson(ROW, {**ROW, "orig_code": "NLRTM", "dest_code": "CNGGZ", "day": "2021-02-01",
                                   "price": 7})),
        ("ndjson", "\n" + json.dumps(ROW) + "\r\n  \n" + json.dumps({"price": 7, "day": "2021-02-01",
                   "dest_code": "CNGGZ", "orig_code": "NLRTM"})),
        ("json", json.dumps([ROW, {**ROW, "orig_code": "NLRTM", "dest_code": "CNGGZ", "day": "2021-02-01",
                                   "price": 7}], indent=2)),
        ("json", " [" + json.dumps(ROW) + " , " + json.dumps({"price": 7, "day": "2021-02-01",
                 "dest_code": "CNGGZ", "orig_code": "NLRTM"}) + "]\n"),
    ],
)
def test_valid_rows_become_copy_lines_whatever_the_chunking(fmt, text, chunk):
    lines, errors, rows = run(fmt, text, chunk)
    assert errors.total == 0, errors.items
    assert lines == [COPY_LINE, "NLRTM\tCNGGZ\t2021-02-01\t7\n"]
    assert rows == 2


def test_csv_errors_name_line_and_field():
    text = HEADER + "\n".join([
        "CNGGZ,EETLL,2021-01-31,1154",  # 2: valid
        "XXXXX,EETLL,2021-01-31,10",  # 3: unknown port
        "CNGGZ,cn-ggz,2021-01-31,10",  # 4: not a code
        "CNGGZ,EETLL,2021-02-30,10",  # 5: no such day
        "CNGGZ,EETLL,31/01/2021,10",  # 6: not ISO
        "CNGGZ,EETLL,2021-01-31,0",  # 7: not positive
        "CNGGZ,EETLL,2021-01-31,-5",  # 8: negative
        "CNGGZ,EETLL,2021-01-31,12.5",  # 9: not an integer
        f"CNGGZ,EETLL,2021-01-31,{MAX_PRICE + 1}",  # 10: out of range
        "CNGGZ,EETLL,2021-01-31",  # 11: a value missing
        "CNGGZ,EETLL,2021-01-31,10,extra",  # 12: a value too many
        "CNGGZ,EETLL,2021-01-31,١٢",  # 13: non-ASCII digits
        f"CNGGZ,EETLL,2021-01-31,{MAX_PRICE}",  # 14: valid, the largest price
    ]) + "\n"
    assert errors_of("csv", text) == [
        (3, "orig_code", "unknown port code 'XXXXX': not in ports"),
        (4, "dest_code", "expected a port code like CNGGZ, got 'cn-ggz'"),
        (5, "day", "not a valid date: '2021-02-30'"),
        (6, "day", "expected an ISO date YYYY-MM-DD, got '31/01/2021'"),
        (7, "price", "must be a positive integer, got 0"),
        (8, "price", "expected a positive integer, got '-5'"),
        (9, "price", "expected a positive integer, got '12.5'"),
        (10, "price", f"must be at most {MAX_PRICE}, got {MAX_PRICE + 1}"),
        (11, None, "expected 4 values (orig_code,dest_code,day,price), got 3"),
        (12, None, "expected 4 values (orig_code,dest_code,day,price), got 5"),
        (13, "price", "expected a positive integer, got '١٢'"),
    ]
    lines, _, rows = run("csv", text)
    assert rows == 13
    assert lines == [COPY_LINE, f"CNGGZ\tEETLL\t2021-01-31\t{MAX_PRICE}\n"]


def test_csv_leading_zeros_are_accepted_and_normalised():
    lines, errors, _ = run("csv", HEADER + "CNGGZ,EETLL,2021-01-31,0007\n")
    assert errors.total == 0
    assert lines == ["CNGGZ\tEETLL\t2021-01-31\t7\n"]


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ("orig_code,dest_code,day", "missing field 'price'"),
        ("orig_code,dest_code,day,price,comment", "unexpected field 'comment'"),
        ("orig,dest,day,price", "missing field 'orig_code'"),
        ("orig_code,orig_code,day,price", "missing field 'dest_code'"),
    ],
)
def test_csv_header_must_name_the_four_fields(header, fragment):
    errors = errors_of("csv", header + "\nCNGGZ,EETLL,2021-01-31,1\n")
    assert len(errors) == 1
    assert errors[0][0] == 1 and fragment in errors[0][2]


def test_csv_quoting_errors_are_reported_and_parsing_goes_on():
    text = HEADER + 'CNGGZ,"EETLL"x,2021-01-31,1\nXXXXX,EETLL,2021-01-31,1\n'
    errors = errors_of("csv", text)
    assert errors[0][:2] == (2, None) and errors[0][2].startswith("invalid CSV")
    assert errors[1] == (3, "orig_code", "unknown port code 'XXXXX': not in ports")


def test_ndjson_errors_name_line_and_field():
    text = "\n".join([
        json.dumps(ROW),  # 1 valid
        '{"orig_code": "CNGGZ", "dest_code": "EETLL", "day": "2021-01-31"}',  # 2 missing price
        json.dumps({**ROW, "note": "x"}),  # 3 extra field
        json.dumps({**ROW, "price": "1154"}),  # 4 price as a string
        json.dumps({**ROW, "price": 12.0}),  # 5 price as a float
        json.dumps({**ROW, "price": True}),  # 6 a boolean is not a price
        json.dumps({**ROW, "day": 20210131}),  # 7 day not a string
        json.dumps({**ROW, "orig_code": ["CNGGZ"]}),  # 8 a list as a code
        "[1, 2]",  # 9 not an object
        '{"orig_code": "CNGGZ",',  # 10 broken JSON
        "",  # 11 blank: skipped
        json.dumps({**ROW, "dest_code": "ZZZZZ"}),  # 12 unknown port
    ])
    assert errors_of("ndjson", text) == [
        (2, "price", "missing field"),
        (3, "note", "unexpected field"),
        (4, "price", "expected a positive integer, got '1154'"),
        (5, "price", "expected a positive integer, got 12.0"),
        (6, "price", "expected a positive integer, got True"),
        (7, "day", "expected an ISO date YYYY-MM-DD, got 20210131"),
        (8, "orig_code", "expected a port code string, got ['CNGGZ']"),
        (9, None, "expected an object with the fields orig_code, dest_code, day, price"),
        (10, None, "invalid JSON: Expecting property name enclosed in double quotes"),
        (12, "dest_code", "unknown port code 'ZZZZZ': not in ports"),
    ]
    _, _, rows = run("ndjson", text)
    assert rows == 11  # blank lines are not rows


def test_ndjson_fast_path_never_merges_lines_into_a_valid_row():
    # Joined by commas, the three invalid lines of the second chunk would decode as three valid
    # objects (the first chunk puts the day in the validator's cache, as in a real batch);
    # each line must still be judged on its own.
    first = json.dumps(ROW) + "\n"
    second = '{"orig_code":"CNGGZ","dest_code":"EETLL"\n"day":"2021-01-31","price":5}\n' + \
        json.dumps(ROW) + "," + json.dumps(ROW) + "\n"
    batch = CopyBlocks(parser("ndjson")([first.encode(), second.encode()]), Validator(PORTS), "ndjson")
    assert list(batch.blocks()) == [COPY_LINE]
    assert [e["line"] for e in batch.errors.items] == [2, 3, 4]


def test_json_array_errors_give_the_line_where_the_element_starts():
    elements = [ROW, {**ROW, "price": -1}, ROW, {**ROW, "orig_code": "XXXXX"}]
    text = "[\n" + ",\n".join(json.dumps(e, indent=1) for e in elements) + "\n]"
    # Each element spans 6 lines ("{", 4 fields, "}"), the first starts on line 2.
    assert errors_of("json", text, chunk=5) == [
        (8, "price", "must be a positive integer, got -1"),
        (20, "orig_code", "unknown port code 'XXXXX': not in ports"),
    ]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ('{"orig_code": 1}', 1, "expected a JSON array"),
        ("[" + json.dumps(ROW) + "\n" + json.dumps(ROW) + "]", 2, "expected ',' or ']'"),
        ("[" + json.dumps(ROW) + ",\n{bad}]", 2, "invalid JSON"),
        ("[" + json.dumps(ROW) + ",", 1, "not closed"),
        ("[" + json.dumps(ROW) + "]\n[]", 2, "after the end of the JSON array"),
    ],
)
def test_json_array_syntax_errors_stop_with_their_line(text, line, fragment):
    errors = errors_of("json", text)
    assert len(errors) == 1
    assert errors[0][0] == line and fragment in errors[0][2]


def test_json_array_fast_path_falls_back_for_invalid_rows_without_losing_any():
    rows = [{**ROW, "price": n + 1} for n in range(20000)]
    rows[12345] = {**ROW, "price": 0}
    lines, errors, count = run("json", json.dumps(rows), chunk=100_000)
    assert count == 20000
    assert len(lines) == 19999
    assert [(e["line"], e["field"]) for e in errors.items] == [(1, "price")]


@pytest.mark.parametrize(("fmt", "text"), [("json", " [ ] "), ("csv", HEADER), ("csv", ""), ("ndjson", "\n \n")])
def test_empty_bodies_have_no_rows_and_no_errors(fmt, text):
    lines, errors, rows = run(fmt, text)
    assert (lines, errors.total, rows) == ([], 0, 0)


def test_error_list_is_capped_at_100_and_counts_the_total():
    text = HEADER + "".join(f"CNGGZ,EETLL,2021-01-31,{n}\n" if n % 2 else "XXXXX,EETLL,2021-01-31,1\n"
                            for n in range(500))
    lines, errors, rows = run("csv", text, chunk=4096)
    assert errors.total == 250 and len(errors.items) == 100
    assert errors.items[0]["line"] == 2 and errors.items[-1]["line"] == 200
    assert rows == 500 and len(lines) == 250


def test_invalid_utf8_is_reported_at_its_line():
    data = (HEADER + "CNGGZ,EETLL,2021-01-31,1\n").encode() + b"CNGGZ,EE\xffLL,2021-01-31,1\n"
    lines, errors, _ = run("csv", data, chunk=1 << 20)
    assert lines == [COPY_LINE.replace("1154", "1")]
    assert [(e["line"], e["field"], e["message"]) for e in errors.items] == [
        (3, None, "not valid UTF-8"),
        (3, "dest_code", "expected a port code like CNGGZ, got 'EE\ufffdLL'"),
    ]


def test_a_line_longer_than_the_limit_stops_parsing():
    text = HEADER + "x" * (MAX_LINE + 10)
    errors = errors_of("csv", text, chunk=65536)
    assert errors == [(2, None, f"line longer than {MAX_LINE} bytes")]


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
@pytest.mark.parametrize("chunk", [7, 4096, 1 << 20])
def test_a_flood_of_blank_lines_stops_parsing(fmt, chunk):
    row = "CNGGZ,EETLL,2021-01-31,1154\n" if fmt == "csv" else json.dumps(ROW) + "\n"
    head = HEADER if fmt == "csv" else ""
    allowed = head + row + "\n" * MAX_BLANK_LINES + row  # as many as allowed, then a row: fine
    lines, errors, rows = run(fmt, allowed, chunk)
    assert (len(lines), errors.total, rows) == (2, 0, 2)
    flood = head + row + "\r\n" * (MAX_BLANK_LINES + 1) + row * 3
    first_row = 2 if fmt == "csv" else 1
    assert errors_of(fmt, flood, chunk) == [(first_row + MAX_BLANK_LINES + 1, None, TOO_MANY_BLANK_LINES)]
    assert "blank lines in a row" in TOO_MANY_BLANK_LINES


def test_a_flood_of_whitespace_in_a_json_array_stops_parsing():
    text = "[" + json.dumps(ROW) + "," + " " * (MAX_BLANK + 1) + json.dumps(ROW) + "]"
    assert errors_of("json", text, chunk=65536) == [(1, None, f"more than {MAX_BLANK} characters of whitespace "
                                                               "in a row: refused")]
    indented = json.dumps([ROW] * 3, indent=4)
    assert run("json", indented, chunk=4096)[1].total == 0


@pytest.mark.parametrize(
    ("header", "fmt"),
    [
        ("text/csv", "csv"),
        ("text/csv; charset=utf-8", "csv"),
        ("application/x-ndjson", "ndjson"),
        ("application/jsonl", "ndjson"),
        ("Application/JSON; charset=UTF-8", "json"),
    ],
)
def test_media_types(header, fmt):
    assert parse_media_type(header) == fmt


@pytest.mark.parametrize("header", [None, "", "text/plain", "application/xml", "text/csv; charset=latin-1"])
def test_unsupported_media_types_are_415(header):
    with pytest.raises(UnsupportedMedia) as err:
        parse_media_type(header)
    assert err.value.status == 415


def test_a_quoted_value_over_several_lines_is_an_error_not_a_joined_value():
    # Joined without its line break, "CN<newline>GGZ" would read as the port CNGGZ.
    text = HEADER + 'CNGGZ,"EE\nTLL",2021-01-31,5\nCNGGZ,EETLL,2021-01-31,6\n'
    lines, errors, rows = run("csv", text, chunk=1 << 20)
    assert [(e["line"], e["message"]) for e in errors.items] == [(2, "a quoted value spans several lines")]
    assert lines == ["CNGGZ\tEETLL\t2021-01-31\t6\n"] and rows == 2


def test_dates_need_ascii_digits():
    errors = errors_of("csv", HEADER + "CNGGZ,EETLL,２０２１-０１-３１,5\n")
    assert errors == [(2, "day", "expected an ISO date YYYY-MM-DD, got '２０２１-０１-３１'")]


def test_parsers_only_yield_numbered_rows_and_problems():
    text = HEADER + "CNGGZ,EETLL,2021-01-31,5\n\nCNGGZ,\"x\"y,2021-01-31,5\nprice,day,dest_code,orig_code,extra\n"
    items = list(parser("csv")([text.encode()]))
    assert [line for line, _ in items] == [2, 4, 5]
    assert items[0][1] == ["CNGGZ", "EETLL", "2021-01-31", "5"]
    problem = items[1][1]
    assert isinstance(problem, Problem) and problem.message.startswith("invalid CSV") and problem.row
    assert items[2][1] == ["price", "day", "dest_code", "orig_code", "extra"]  # judged by the validation
    *_, (line, last) = parser("json")([b'[{"a": 1}, 7 8]'])
    assert line == 1 and last.final and not last.row and "expected ','" in last.message


@pytest.mark.parametrize("digits", [4301, 100_000])
def test_a_csv_price_of_thousands_of_digits_is_an_error_at_its_line(digits):
    # int() refuses more than 4300 digits (ValueError) and is slow below: never called on them.
    text = HEADER + f"CNGGZ,EETLL,2021-01-31,{'9' * digits}\nCNGGZ,EETLL,2021-01-31,{'0' * digits}7\n"
    lines, errors, rows = run("csv", text, chunk=65536)
    assert [(e["line"], e["field"], e["message"]) for e in errors.items] == [
        (2, "price", f"must be at most {MAX_PRICE}, got {'9' * 37}...")]
    assert lines == ["CNGGZ\tEETLL\t2021-01-31\t7\n"] and rows == 2


@pytest.mark.parametrize("depth", [5_000, 200_000])
def test_json_nested_thousands_of_levels_deep_is_an_error_at_its_line(depth):
    deep = "[" * depth + "]" * depth
    ndjson = json.dumps(ROW) + "\n" + deep + "\n" + '{"orig_code": ' + deep + "}\n" + json.dumps(ROW) + "\n"
    assert errors_of("ndjson", ndjson, chunk=1 << 20) == [
        (2, None, "invalid JSON: nested too deeply"), (3, None, "invalid JSON: nested too deeply")]
    array = "[" + json.dumps(ROW) + ",\n" + '{"orig_code": ' + deep + "}, " + json.dumps(ROW) + "]"
    assert errors_of("json", array, chunk=1 << 20) == [(2, None, "invalid JSON: nested too deeply")]


def test_a_value_too_deep_to_show_is_named_by_its_type():
    nested: list = []
    for _ in range(100_000):
        nested = [nested]
    assert shown(nested) == "<list nested too deeply>"


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("odd", [0.0, 0.2], ids=["flat", "mixed"])
@pytest.mark.parametrize("chunk", [7, 4096, 1 << 20])
def test_json_array_items_carry_the_line_where_each_element_starts(seed, odd, chunk):
    # Elements laid out irregularly (compact, indented, several per line, blank lines between),
    # a share ``odd`` of them not flat rows (nested values, braces in strings, not objects): each
    # item's line must be where its element starts, whichever way the parser decoded it.
    rng = random.Random(seed)
    shapes = [ROW, {**ROW, "price": {"nested": [1, {"x": 2}]}}, {**ROW, "day": "{}"}, 5, [ROW], {}]
    text, expected = "[", []
    for n in range(300):
        value = rng.choice(shapes) if rng.random() < odd else {**ROW, "price": n + 1}
        text += rng.choice(["", " ", "\n", "\n\n  "])
        expected.append((text.count("\n") + 1, value))
        text += json.dumps(value, indent=rng.choice([None, None, 1, 2])) + rng.choice(["", "\n"]) + ","
    text = text[:-1] + "\n]"
    assert list(parser("json")(text.encode()[i : i + chunk] for i in range(0, len(text), chunk))) == expected
