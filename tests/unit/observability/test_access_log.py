"""The access log writer: whole lines, in order, gathered into writes of at most PIPE_BUF bytes,
written when the buffer fills, after LOG_ACCESS_FLUSH seconds, or on demand."""

from __future__ import annotations

import os
import select
import time

import pytest

from rates.observability.access_log import PIPE_BUF, AccessLogWriter


class RecordingWriter(AccessLogWriter):
    """Records each write(2) the writer makes (the bytes reach the pipe as well)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.writes: list[bytes] = []

    def _write_all(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        super()._write_all(data)


@pytest.fixture
def pipe():
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    yield read_end, write_end
    os.close(read_end)
    os.close(write_end)


def drain(fd: int) -> bytes:
    out = b""
    while select.select([fd], [], [], 0)[0]:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        out += chunk
    return out


def line(i: int, size: int = 100) -> bytes:
    head = f'{{"n":{i},"pad":"'.encode()
    return head + b"x" * (size - len(head) - 3) + b'"}\n'


def test_lines_wait_until_the_buffer_is_full_then_go_in_one_write(pipe):
    read_end, write_end = pipe
    log = RecordingWriter(write_end, buffer_bytes=1000, flush_seconds=60)
    for i in range(9):
        log.write(line(i))
    assert drain(read_end) == b""  # 900 bytes gathered, nothing written yet
    log.write(line(9))
    log.write(line(10))  # does not fit: the ten before it are written together
    assert drain(read_end) == b"".join(line(i) for i in range(10))
    assert [len(w) for w in log.writes] == [1000]
    log.flush()
    assert drain(read_end) == line(10)


def test_each_write_holds_whole_lines_and_at_most_pipe_buf_bytes(pipe):
    read_end, write_end = pipe
    log = RecordingWriter(write_end, buffer_bytes=1 << 20, flush_seconds=60)  # capped at PIPE_BUF
    sent = [line(i, size=97 + i % 50) for i in range(400)]
    out = b""
    for data in sent:
        log.write(data)
        out += drain(read_end)
    log.flush()
    out += drain(read_end)
    assert out == b"".join(sent)
    assert all(len(w) <= PIPE_BUF and w.endswith(b"\n") for w in log.writes)
    assert len(log.writes) < len(sent) / 10


def test_a_line_longer_than_the_buffer_goes_alone_and_keeps_the_order(pipe):
    read_end, write_end = pipe
    log = RecordingWriter(write_end, buffer_bytes=500, flush_seconds=60)
    log.write(line(1))
    long = line(2, size=3000)
    log.write(long)
    assert drain(read_end) == line(1) + long
    assert log.writes == [line(1), long]


def test_buffer_zero_writes_every_line_at_once(pipe):
    read_end, write_end = pipe
    log = AccessLogWriter(write_end, buffer_bytes=0, flush_seconds=60)
    log.write(line(1))
    assert drain(read_end) == line(1)


def test_a_waiting_line_is_written_after_the_flush_interval(pipe):
    read_end, write_end = pipe
    log = AccessLogWriter(write_end, buffer_bytes=4096, flush_seconds=0.05)
    log.write(line(1))
    deadline = time.monotonic() + 5
    out = b""
    while not out and time.monotonic() < deadline:
        time.sleep(0.02)
        out = drain(read_end)
    assert out == line(1)


def test_a_forked_child_does_not_write_the_parents_waiting_lines(pipe):
    read_end, write_end = pipe
    log = AccessLogWriter(write_end, buffer_bytes=4096, flush_seconds=60)
    log.write(line(1))  # waiting in the parent's buffer
    pid = os.fork()
    if pid == 0:  # the child: its own line only
        try:
            log.write(line(2))
            log.flush()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert drain(read_end) == line(2)
    log.flush()
    assert drain(read_end) == line(1)
