"""rates.batches.body and the request checks: gzip decoded on the fly, byte limits before and
after decoding, the sha256 of the content, idempotency keys."""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib

import pytest

from rates.batches.body import CHUNK_SIZE, MAX_GZIP_RATIO, RATIO_FROM, Body, parse_encoding
from rates.batches.ingest import check_key
from rates.errors import BadRequest, TooLarge, UnsupportedMedia

CONTENT = b"orig_code,dest_code,day,price\n" + b"CNGGZ,EETLL,2021-01-31,1154\n" * 5000


class Trickle(io.RawIOBase):
    """A stream that returns at most ``step`` bytes per read, like a slow network."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.pos, self.step = data, 0, step

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.step if n < 0 else min(n, self.step)
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out


def decoded(raw: bytes, encoding: str | None, max_bytes: int = 1 << 30, step: int = 1000, chunk: int = 4096) -> Body:
    body = Body(Trickle(raw, step), encoding, max_bytes, chunk_size=chunk)
    assert b"".join(body.chunks()) == CONTENT
    return body


def test_identity_body_is_passed_through_and_hashed():
    body = decoded(CONTENT, None)
    assert body.sha256 == hashlib.sha256(CONTENT).hexdigest()
    assert body.bytes == body.raw_bytes == len(CONTENT)


def test_gzip_is_decoded_in_bounded_steps_and_hashed_as_decoded():
    raw = gzip.compress(CONTENT)
    body = decoded(raw, "gzip", step=333, chunk=1024)
    assert body.sha256 == hashlib.sha256(CONTENT).hexdigest()
    assert body.raw_bytes == len(raw) < body.bytes == len(CONTENT)


def test_concatenated_gzip_members_are_one_body():
    half = len(CONTENT) // 2
    decoded(gzip.compress(CONTENT[:half]) + gzip.compress(CONTENT[half:]), "gzip", step=100)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (gzip.compress(CONTENT)[:-20], "truncated"),
        (b"", "truncated"),
        (b"not gzip at all", "invalid gzip body"),
        (gzip.compress(CONTENT) + b"trailing", "after the end of the gzip stream"),
        (zlib.compress(CONTENT), "invalid gzip body"),
    ],
)
def test_bad_gzip_is_a_400(raw, fragment):
    body = Body(io.BytesIO(raw), "gzip", 1 << 30)
    with pytest.raises(BadRequest) as err:
        b"".join(body.chunks())
    assert fragment in err.value.message and err.value.status == 400


def test_raw_bytes_over_the_limit_are_a_413():
    body = Body(io.BytesIO(CONTENT), None, len(CONTENT) - 1)
    with pytest.raises(TooLarge) as err:
        for _ in body.chunks():
            pass
    assert err.value.status == 413 and "BATCH_MAX_BYTES" in err.value.message


def test_a_small_gzip_bomb_is_stopped_at_the_decoded_limit():
    bomb = gzip.compress(b"0" * (50 * 1024 * 1024))  # 50 MiB of zeros, about 50 KiB compressed
    body = Body(Trickle(bomb, 1000), "gzip", 1024 * 1024, chunk_size=64 * 1024)
    seen = 0
    with pytest.raises(TooLarge, match="decoded body"):
        for chunk in body.chunks():
            assert len(chunk) <= 64 * 1024  # never inflated whole
            seen += len(chunk)
    assert seen <= 1024 * 1024
    assert body.raw_bytes < len(bomb)  # stopped before reading it all


def price_rows(n: int) -> bytes:
    """``n`` rows of varied routes, days and prices, as a price batch would be."""
    return CONTENT[:30] + b"".join(b"CN%03d,EE%03d,2021-01-%02d,%d\n" % (i % 701, i % 379, i % 28 + 1,
                                                                         100 + i * 7919 % 5000) for i in range(n))


@pytest.mark.parametrize("level", [6, 9])
def test_a_real_batch_expands_well_below_the_ratio_limit(level):
    content = price_rows(200_000)  # 5.6 MB: past RATIO_FROM
    raw = gzip.compress(content, level)
    assert len(content) / len(raw) < MAX_GZIP_RATIO / 5
    body = Body(io.BytesIO(raw), "gzip", 1 << 30)
    assert b"".join(body.chunks()) == content


@pytest.mark.parametrize("filler", [b"\n", b"0", b"CNGGZ,EETLL,2021-01-31,1154\n"])
def test_a_gzip_body_expanding_past_the_ratio_limit_is_refused_after_a_few_mib(filler):
    bomb = gzip.compress(filler * (32 * 1024 * 1024 // len(filler)), 9)  # 32 MiB in about 32 KiB
    body = Body(Trickle(bomb, 64 * 1024), "gzip", 1 << 30)
    with pytest.raises(TooLarge, match=f"the gzip body expands more than {MAX_GZIP_RATIO} times") as err:
        for _ in body.chunks():
            pass
    assert err.value.status == 413
    assert RATIO_FROM - CHUNK_SIZE < body.bytes <= RATIO_FROM  # refused at the first check
    assert body.raw_bytes <= 64 * 1024  # from the first read


def test_the_ratio_counts_only_the_gzip_bytes_decoded_so_far():
    """A first read of a whole bomb must not hide it: its unread part does not count."""
    bomb = gzip.compress(b"\n" * (64 * 1024 * 1024), 9)
    body = Body(io.BytesIO(bomb), "gzip", 1 << 30, chunk_size=len(bomb))  # one read, decoded in steps
    with pytest.raises(TooLarge, match="compression bomb"):
        for _ in body.chunks():
            pass
    assert body.bytes <= RATIO_FROM + len(bomb)


@pytest.mark.parametrize("encoding", [None, "gzip"])
def test_a_body_ending_before_its_content_length_is_a_400(encoding):
    """A client gone mid-upload: what arrived must not pass for the whole batch."""
    raw = gzip.compress(CONTENT) if encoding else CONTENT
    body = Body(io.BytesIO(raw[:-100] if encoding is None else raw), encoding, 1 << 30, length=len(raw) + 1)
    with pytest.raises(BadRequest, match=r"the body ended after \d+ of its \d+ bytes \(Content-Length\)"):
        for _ in body.chunks():
            pass
    assert decoded(raw, encoding).bytes == len(CONTENT)  # without a length, the end of the stream is the end


def test_drain_reads_at_most_the_limit():
    stream = io.BytesIO(b"x" * 10_000)
    Body(stream, None, 1 << 30, chunk_size=1000).drain(4500)
    assert stream.tell() == 4500


@pytest.mark.parametrize(("header", "expected"), [(None, None), ("", None), ("identity", None), ("GZIP", "gzip"),
                                                  ("x-gzip", "gzip")])
def test_encodings(header, expected):
    assert parse_encoding(header) == expected


@pytest.mark.parametrize("header", ["br", "deflate", "gzip, br"])
def test_other_encodings_are_415(header):
    with pytest.raises(UnsupportedMedia):
        parse_encoding(header)


@pytest.mark.parametrize("key", ["k", "batch-2021-01-31T00:00:00Z", "x" * 200, "a/b+c=d"])
def test_idempotency_keys(key):
    assert check_key(key) == key


@pytest.mark.parametrize("key", [None, "", "x" * 201, "has space", "tab\t", "é"])
def test_bad_idempotency_keys_are_400(key):
    with pytest.raises(BadRequest, match="Idempotency-Key"):
        check_key(key)
