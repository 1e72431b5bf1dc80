"""The request body as a stream of decoded chunks, never held whole in memory.

``Body.chunks()`` reads the raw stream in fixed-size pieces, undoes ``Content-Encoding: gzip``
on the fly (one zlib decompressor, output bounded per step, so a small "gzip bomb" cannot
inflate in memory), counts the decoded bytes against the limit and hashes them (the batch's
sha256 is that of its decoded content, so the same data sent compressed or not is the same
batch). A gzip body that expands more than ``MAX_GZIP_RATIO`` times is refused once a few MiB
are decoded, so a small "gzip bomb" costs milliseconds, not a decoded ``BATCH_MAX_BYTES``.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

from rates.errors import BadRequest, TooLarge, UnsupportedMedia
from rates.rules import shown

CHUNK_SIZE = 256 * 1024
GZIP_WBITS = 16 + zlib.MAX_WBITS  # gzip header and trailer, not raw deflate or zlib
GZIP_MAGIC = b"\x1f\x8b"
ENCODINGS = {"": None, "identity": None, "gzip": "gzip", "x-gzip": "gzip"}
# Decoded bytes per compressed byte: price batches measured 8-30 (gzip -6 and -9; CSV, NDJSON,
# JSON, indented JSON: docs/batch-ingestion.md, scripts/bench_hostile.py); blank lines or one
# repeated byte reach deflate's maximum, about 1,030. Checked once RATIO_FROM bytes are decoded.
MAX_GZIP_RATIO = 200
RATIO_FROM = 4 * 1024 * 1024


def parse_encoding(header: str | None) -> str | None:
    """``None`` for an identity body, ``"gzip"`` for gzip; anything else is a 415."""
    value = (header or "").strip().lower()
    if value not in ENCODINGS:
        raise UnsupportedMedia(f"Content-Encoding {shown(header)} is not supported: send gzip or no encoding")
    return ENCODINGS[value]


class Body:
    """Decoded chunks of a raw body stream, with the decoded size limited to ``max_bytes``."""

    def __init__(self, stream: BinaryIO, encoding: str | None, max_bytes: int, chunk_size: int = CHUNK_SIZE,
                 length: int | None = None) -> None:
        self.stream = stream
        self.length = length  # the Content-Length: a stream ending before it was cut short
        self.encoding = encoding
        self.max_bytes = max_bytes
        self.chunk_size = chunk_size
        self.raw_bytes = 0  # as received
        self.bytes = 0  # after decoding
        self._sha256 = hashlib.sha256()

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    def _raw(self) -> Iterator[bytes]:
        while True:
            data = self.stream.read(self.chunk_size)
            if not data:
                if self.length is not None and self.raw_bytes < self.length:
                    raise BadRequest(f"the body ended after {self.raw_bytes} of its {self.length} bytes "
                                     "(Content-Length): the client went away or sent too little; nothing was written")
                return
            self.raw_bytes += len(data)
            if self.raw_bytes > self.max_bytes:
                raise TooLarge(f"the body is larger than the limit of {self.max_bytes} bytes (BATCH_MAX_BYTES)")
            yield data

    def _counted(self, data: bytes) -> bytes:
        self.bytes += len(data)
        if self.bytes > self.max_bytes:
            raise TooLarge(
                f"the decoded body is larger than the limit of {self.max_bytes} bytes (BATCH_MAX_BYTES)"
            )
        self._sha256.update(data)
        return data

    def chunks(self) -> Iterator[bytes]:
        """The decoded content, chunk by chunk; raises TooLarge or BadRequest on the way."""
        source = self._raw() if self.encoding is None else self._gunzip(self._raw())
        for data in source:
            if data:
                yield self._counted(data)

    def _gunzip(self, raw: Iterator[bytes]) -> Iterator[bytes]:
        """Decode one or more concatenated gzip members; output bounded per step."""
        decoder = zlib.decompressobj(GZIP_WBITS)
        started, fed = False, 0  # fed: raw bytes given to the decoders
        for data in raw:
            fed += len(data)
            while data:
                if decoder.eof:  # a new member follows (gzip allows concatenation)
                    if not data.startswith(GZIP_MAGIC[: len(data)]):
                        raise BadRequest("invalid gzip body: unexpected data after the end of the gzip stream")
                    decoder = zlib.decompressobj(GZIP_WBITS)
                started = True
                try:
                    out = decoder.decompress(data, self.chunk_size)
                    yield self._not_a_bomb(out, fed, decoder)
                    while decoder.unconsumed_tail and not decoder.eof:
                        out = decoder.decompress(decoder.unconsumed_tail, self.chunk_size)
                        yield self._not_a_bomb(out, fed, decoder)
                except zlib.error as exc:
                    raise BadRequest(f"invalid gzip body: {exc}") from None
                # After the end of a member its rest is in unused_data (unconsumed_tail too: ignored).
                data = decoder.unused_data
        if not started or not decoder.eof:
            raise BadRequest("invalid gzip body: the gzip stream is truncated")

    def _not_a_bomb(self, out: bytes, fed: int, decoder: Any) -> bytes:
        """``out``, unless the body decoded so far is more than MAX_GZIP_RATIO times the gzip
        bytes it came from (those fed to the decoders that they did not leave aside)."""
        decoded = self.bytes + len(out)
        consumed = fed - len(decoder.unconsumed_tail) - len(decoder.unused_data)
        if decoded > RATIO_FROM and decoded > MAX_GZIP_RATIO * consumed:
            raise TooLarge(f"the gzip body expands more than {MAX_GZIP_RATIO} times ({decoded} bytes from the first "
                           f"{consumed}): refused as a compression bomb (price batches expand 8 to 30 times)")
        return out

    def drain(self, limit: int) -> None:
        """Read and discard up to ``limit`` more raw bytes, so the client can read our answer."""
        left = limit
        try:
            while left > 0:
                data = self.stream.read(min(self.chunk_size, left))
                if not data:
                    return
                left -= len(data)
        except Exception:  # noqa: BLE001 - a client gone away has nothing left to drain
            return
