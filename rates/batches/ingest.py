"""One batch, one transaction: record the key, stream the rows into COPY, check, commit.

The order inside the transaction is what gives the guarantees:

1. ``INSERT INTO batches (key)`` first. A second request with the same Idempotency-Key blocks
   on the unique index until the first transaction ends, then either inserts (the first one
   rolled back) or finds the committed record (200 if the content's sha256 matches, 409 if not).
2. ``SELECT code FROM ports``: every row's codes are checked against this set while streaming,
   so an unknown code is reported with its line.
3. ``COPY prices FROM STDIN`` fed block by block as the body is parsed; the body is never held
   whole. The first invalid row aborts the COPY (the rest of the body is still parsed, without
   a database connection, to report every error); a limit exceeded aborts it too.
4. The end of the COPY statement fires the set-based integrity trigger of migration 0003 (which
   locks the batch's ports) and bumps the data version once; then the batch row is completed
   and the transaction commits. Any failure before the commit rolls everything back: the
   batch's rows and its record appear together or not at all, which is also what a crash of
   the process or of its container leaves (PostgreSQL rolls back a transaction whose client
   connection is gone).
"""

from __future__ import annotations

import logging
import re
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout

from rates.batches import store
from rates.batches.body import Body, parse_encoding
from rates.batches.copy_blocks import CopyBlocks
from rates.batches.formats import parse_media_type, parser
from rates.batches.rows import Errors, Validator
from rates.batches.watchdog import Watchdog
from rates.errors import BadRequest, Conflict, Invalid, TimedOut, TooLarge, Unavailable
from rates.observability.batch_metrics import BatchObservation

log = logging.getLogger("rates.batches")

KEY = re.compile(r"[\x21-\x7e]{1,200}")  # visible ASCII, as HTTP header tokens go
DRAIN_LIMIT = 64 * 1024 * 1024  # body bytes read after an early 413, so the client sees it


@dataclass(frozen=True)
class Limits:
    max_rows: int
    max_bytes: int
    statement_timeout_ms: int


@dataclass(frozen=True)
class Outcome:
    """201 for a batch committed now, 200 for the record of one committed before."""

    status: int
    record: dict[str, Any]


class _Rejected(Exception):
    """Leave the transaction (rolling it back) and report the errors collected."""


@dataclass
class _Attempt:
    """What one attempt at a batch's transaction found and did."""

    errors: Errors
    existing: tuple[Any, ...] | None = None  # the record of the batch committed before with this key
    batch: CopyBlocks | None = None
    record: tuple[Any, ...] | None = None
    rejected: bool = False
    watchdog: Watchdog | None = None
    committing: bool = False
    warnings: list[str] = field(default_factory=list)

    def notice(self, diag: psycopg.errors.Diagnostic) -> None:
        """A commit whose wait for the synchronous standbys was cancelled (a cancel, a terminated
        session) is reported committed locally with a WARNING: on the primary only, so it must
        not be acknowledged."""
        if self.committing and diag.severity_nonlocalized == "WARNING":
            self.warnings.append(diag.message_primary or "warning")


def check_key(key: str | None) -> str:
    if key is None or key == "":
        raise BadRequest("the Idempotency-Key header is required: a name for this batch, unique per batch")
    if not KEY.fullmatch(key):
        raise BadRequest("Idempotency-Key must be 1 to 200 visible ASCII characters")
    return key


class Connections(Protocol):
    """Where a batch's connection and its watchdog's come from (rates.db.pools.BatchPools)."""

    def batch(self) -> AbstractContextManager[psycopg.Connection[Any]]: ...

    def watchdog(self) -> AbstractContextManager[psycopg.Connection[Any]]: ...


class Ingestor:
    """Loads batches, each on a connection of ``connections.batch()``."""

    def __init__(self, connections: Connections, limits: Limits) -> None:
        self.connections = connections
        self.limits = limits

    def ingest(
        self,
        stream: BinaryIO,
        *,
        key: str | None,
        content_type: str | None,
        content_encoding: str | None = None,
        content_length: int | None = None,
    ) -> Outcome:
        """Load one batch; raise a BatchError (errors.py) when it cannot be committed. Whatever
        its outcome, the batch is counted (rates.observability.batch_metrics)."""
        with BatchObservation() as seen:
            fmt = parse_media_type(content_type)
            encoding = parse_encoding(content_encoding)
            key = check_key(key)
            if content_length is not None and content_length > self.limits.max_bytes:
                raise TooLarge(
                    f"Content-Length {content_length} is larger than the limit of "
                    f"{self.limits.max_bytes} bytes (BATCH_MAX_BYTES)"
                )
            body = Body(stream, encoding, self.limits.max_bytes, length=content_length)
            try:
                outcome = self._ingest(body, fmt, key)
            except TooLarge:
                body.drain(DRAIN_LIMIT)
                raise
            seen.answered(outcome.status, outcome.record["rows"], body.bytes)
            return outcome

    def _ingest(self, body: Body, fmt: str, key: str) -> Outcome:
        attempt = _Attempt(errors=Errors())
        timeout_ms = self.limits.statement_timeout_ms
        try:
            with self.connections.batch() as conn:
                conn.add_notice_handler(attempt.notice)
                try:
                    self._transaction(conn, attempt, body, fmt, key)
                finally:
                    conn.remove_notice_handler(attempt.notice)
        except (psycopg.errors.QueryCanceled, psycopg.OperationalError, psycopg.InterfaceError) as exc:
            if attempt.committing:
                raise Unavailable("the connection was lost while the batch committed: it may be committed or not; "
                                  "retry with the same Idempotency-Key to know") from exc
            if isinstance(exc, psycopg.errors.QueryCanceled) or (attempt.watchdog and attempt.watchdog.fired):
                raise TimedOut(
                    f"the batch did not finish within {timeout_ms} ms (BATCH_STATEMENT_TIMEOUT_MS); "
                    "nothing was written"
                ) from exc
            raise Unavailable("the database is not reachable; nothing was written, retry with the same key") from exc
        except PoolTimeout as exc:
            raise Unavailable("no database connection available; retry with the same key") from exc
        if attempt.warnings:
            raise Unavailable(f"the batch is committed on the primary, but its copy on the standbys was not "
                              f"confirmed ({attempt.warnings[0]}); retry with the same Idempotency-Key: the "
                              "retry confirms it before answering")
        if attempt.existing is not None:
            return self._replay(body, attempt.existing)
        if attempt.rejected:
            self._finish_parsing(attempt.batch)
            rows = attempt.batch.rows if attempt.batch else 0
            raise Invalid(self._summary(attempt.errors, rows), attempt.errors.items, attempt.errors.total)
        record = attempt.record
        log.info("batch %s committed: %d rows, %d bytes", record[0], record[2], body.bytes)
        return Outcome(201, store.as_json(record))

    def _transaction(self, conn: psycopg.Connection[Any], attempt: _Attempt, body: Body, fmt: str, key: str) -> None:
        """Record the key, stream the rows, check, commit; or find the batch committed before."""
        timeout_ms = self.limits.statement_timeout_ms
        try:
            with conn.transaction():
                pid, xact_start = conn.execute(store.BEGIN, (f"{timeout_ms}ms",)).fetchone()[:2]
                with Watchdog(self.connections.watchdog, pid, xact_start, timeout_ms) as attempt.watchdog:
                    started = conn.execute(store.START, {"key": key}).fetchone()
                    if started is None:
                        attempt.existing = conn.execute(store.BY_KEY, {"key": key}).fetchone()
                        if attempt.existing is None:  # pragma: no cover - the key's row vanished meanwhile
                            raise Unavailable("the batch with this key changed concurrently; retry")
                    else:
                        ports = [code for (code,) in conn.execute(store.PORT_CODES)]
                        attempt.batch = CopyBlocks(parser(fmt)(body.chunks()), Validator(ports), fmt, attempt.errors)
                        self._copy(conn, attempt.batch)
                        attempt.record = conn.execute(
                            store.FINISH,
                            {"rows": attempt.batch.rows, "sha256": body.sha256, "batch_id": started[0]},
                        ).fetchone()
                attempt.committing = True  # the COMMIT runs as the block ends
        except _Rejected:
            attempt.rejected = True
        except pg_errors.ForeignKeyViolation as exc:
            # A port of the batch was deleted between the start and the integrity check.
            detail = (exc.diag.message_detail or "").removeprefix("missing port codes: ")
            for code in filter(None, detail.split(",")):
                attempt.errors.add(None, None, f"port code {code!r} was deleted while the batch was loading")
            attempt.rejected = True

    def _copy(self, conn: psycopg.Connection[Any], batch: CopyBlocks) -> None:
        """Stream the valid rows into COPY; leave by _Rejected or TooLarge on the first problem."""
        with conn.cursor() as cursor, cursor.copy(store.COPY_PRICES) as copy:
            for text in batch.blocks():
                self._check(batch)
                if text:
                    copy.write(text)
            self._check(batch)
            if batch.rows == 0:
                batch.errors.add(None, None, "the batch has no rows")
                raise _Rejected

    def _check(self, batch: CopyBlocks) -> None:
        if batch.errors:
            raise _Rejected
        if batch.rows > self.limits.max_rows:
            raise self._too_many_rows()

    def _too_many_rows(self) -> TooLarge:
        return TooLarge(f"the batch has more than {self.limits.max_rows} rows (BATCH_MAX_ROWS)")

    def _finish_parsing(self, batch: CopyBlocks | None) -> None:
        """After a rollback: parse the rest of the body (no database) to count every error."""
        if batch is None:
            return
        for _ in batch.blocks():
            if batch.rows > self.limits.max_rows:
                raise self._too_many_rows()
        if batch.rows > self.limits.max_rows:
            raise self._too_many_rows()

    def _replay(self, body: Body, existing: tuple[Any, ...]) -> Outcome:
        """The key names a committed batch: same content -> its record (200), else 409."""
        for _ in body.chunks():
            pass
        record = store.as_json(existing)
        if body.sha256 != record["sha256"]:
            raise Conflict(
                f"Idempotency-Key {record['key']!r} was used by batch {record['batch_id']} with different "
                f"content (sha256 {record['sha256']}); use a new key for new content"
            )
        return Outcome(200, record)

    @staticmethod
    def _summary(errors: Errors, rows: int) -> str:
        shown = f" (the first {len(errors.items)} are listed)" if errors.total > len(errors.items) else ""
        return f"{errors.total} error(s) in the batch of {rows} row(s){shown}; nothing was written"
