"""A chunked request body under uWSGI, read as a stream.

With ``--http-chunked-input`` uWSGI hands a ``Transfer-Encoding: chunked`` body to the
application one chunk at a time through ``uwsgi.chunked_read()`` instead of ``wsgi.input``.
``ChunkedInput`` turns that into the ``read(size)`` stream the batch reader expects, holding
at most one chunk beyond what was asked for.
"""

from __future__ import annotations

from collections.abc import Callable


def under_uwsgi_chunked(environ: dict) -> bool:
    """True when uWSGI serves this request and its body is chunked."""
    return "uwsgi.version" in environ and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()


class ChunkedInput:
    """``read(size)`` over a function returning the next chunk, ``b""`` at the end."""

    def __init__(self, next_chunk: Callable[[], bytes]) -> None:
        self._next_chunk = next_chunk
        self._buffer = bytearray()
        self._ended = False

    @classmethod
    def from_uwsgi(cls, timeout: int) -> ChunkedInput:
        import uwsgi  # noqa: PLC0415 - exists only inside a uWSGI worker

        return cls(lambda: uwsgi.chunked_read(timeout))

    def read(self, size: int = -1) -> bytes:
        while not self._ended and (size < 0 or len(self._buffer) < size):
            chunk = self._next_chunk()  # OSError when the client stalls or goes away
            if not chunk:
                self._ended = True
            else:
                self._buffer += chunk
        if size < 0 or size >= len(self._buffer):
            data = bytes(self._buffer)
            self._buffer.clear()
        else:
            data = bytes(self._buffer[:size])
            del self._buffer[:size]
        return data
