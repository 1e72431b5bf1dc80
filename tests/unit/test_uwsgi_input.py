"""The chunked-body stream used under uWSGI: any read sizes over any chunk sizes."""

from __future__ import annotations

import pytest

from rates.batches.uwsgi_input import ChunkedInput, under_uwsgi_chunked


def stream(*chunks: bytes) -> ChunkedInput:
    pending = [*chunks, b""]
    return ChunkedInput(lambda: pending.pop(0) if pending else b"")


@pytest.mark.parametrize("size", [1, 3, 7, 64, 1 << 20])
def test_reads_of_any_size_return_the_whole_body_in_order(size):
    chunks = [b"orig_code,", b"dest_code,day,price\n", b"CNGGZ,EETLL,2021-01-01,100\n" * 5, b"x"]
    body = stream(*chunks)
    out = []
    while data := body.read(size):
        assert len(data) <= size
        out.append(data)
    assert b"".join(out) == b"".join(chunks)
    assert body.read(size) == b""  # stays at the end


def test_read_all_and_empty_body():
    assert stream(b"ab", b"cd").read() == b"abcd"
    assert stream().read(10) == b""


def test_a_failing_chunk_read_propagates():
    def broken() -> bytes:
        raise OSError("unable to receive chunked part")

    with pytest.raises(OSError, match="chunked part"):
        ChunkedInput(broken).read(10)


def test_only_chunked_requests_under_uwsgi_use_it():
    assert under_uwsgi_chunked({"uwsgi.version": b"2.0.30", "HTTP_TRANSFER_ENCODING": "chunked"})
    assert not under_uwsgi_chunked({"uwsgi.version": b"2.0.30", "CONTENT_LENGTH": "10"})
    assert not under_uwsgi_chunked({"HTTP_TRANSFER_ENCODING": "chunked"})  # granian, gunicorn: wsgi.input
