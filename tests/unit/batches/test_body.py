"""rates.batches.body and the request checks: gzip decoded on the fly, byte limits before and
after decoding, the sha256 of the content, idempotency keys."""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib

import pytest

from rates.batches.body import Body, parse_encoding
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
