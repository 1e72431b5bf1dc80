"""Schema migrations: load the dump once, then apply db/migrations/NNNN_*.sql in order.

Safe to run any number of times and from several processes at once: a session advisory lock
serialises runs, and every step is recorded in ``public.schema_migrations`` in the same
transaction that performs it, so a step is either applied and recorded, or neither.
The dump is loaded by psql (rates/db/psql.py), in one transaction with its ledger row; the
decision to load it is taken here, under the lock. The migrations run through psycopg.
Works against any PostgreSQL it can reach (no reliance on an image's init scripts).

Roles (migration 0005): the job connects as DB_USER, the platform's admin (it creates the
database and the roles). Each migration runs as the owner of the ledger: DB_USER until 0005
hands every object of the schema to ``rates_owner``, that role after (``SET LOCAL ROLE``), so
later objects are the owner's too. Then the passwords of the pools' roles (DB_READ_USER,
DB_INGEST_USER) are set from the settings on every run: a changed secret applies at the next start.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.errors import DuplicateDatabase, InvalidCatalogName, UndefinedObject, UniqueViolation

from rates.config import Settings
from rates.db import psql

log = logging.getLogger("rates.migrate")

DUMP_VERSION = "0000"
MIGRATION_FILE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")
LOCK_KEY = 0x7261746573  # "rates"

CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS public.schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
# Run by psql after the dump, in its transaction (the dump empties search_path: names are
# qualified). A dump without the service's tables is refused rather than recorded.
RECORD_DUMP = """
DO $$
BEGIN
    IF to_regclass('public.ports') IS NULL OR to_regclass('public.regions') IS NULL
            OR to_regclass('public.prices') IS NULL THEN
        RAISE EXCEPTION 'the dump did not create public.ports, public.regions and public.prices: '
            'is it a dump of the rates database?';
    END IF;
END
$$;
INSERT INTO public.schema_migrations (version, name, checksum) VALUES (:'version', :'name', :'checksum');
"""
LEDGER_OWNER = """SELECT pg_catalog.pg_get_userbyid(relowner), current_user FROM pg_catalog.pg_class
WHERE oid = 'public.schema_migrations'::regclass"""


class MigrationError(RuntimeError):
    """Migrating cannot go on; the message says why and what to do. When loading the dump failed,
    the cause is psql's DumpError (with psql's exit code)."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    @property
    def checksum(self) -> str:
        return sha256_file(self.path)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def discover(directory: Path) -> list[Migration]:
    """The migrations in ``directory``, ordered by version; malformed names are an error."""
    if not directory.is_dir():
        raise MigrationError(f"MIGRATE_DIR: not a directory: {directory}")
    found: dict[str, Migration] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        m = MIGRATION_FILE.fullmatch(path.name)
        if not m:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lower_snake.sql")
        version, name = m.groups()
        if version == DUMP_VERSION or version in found:
            raise MigrationError(f"{path.name}: version {version} is reserved or used twice")
        found[version] = Migration(version, name, path)
    return [found[v] for v in sorted(found)]


def connect_when_ready(settings: Settings) -> psycopg.Connection:
    """Connect to DB_NAME, creating it if missing, retrying until MIGRATE_WAIT_SECONDS pass."""
    deadline = time.monotonic() + settings.MIGRATE_WAIT_SECONDS
    delay, attempt = 0.5, 0
    while True:
        attempt += 1
        try:
            return psycopg.connect(settings.conninfo())
        except psycopg.OperationalError as exc:
            if database_missing(exc, settings.DB_NAME):
                create_database(settings)
                continue
            if time.monotonic() + delay > deadline:
                raise MigrationError(
                    f"database {settings.DB_HOST}:{settings.DB_PORT} not reachable after {attempt} attempts "
                    f"in {settings.MIGRATE_WAIT_SECONDS:g}s: {str(exc).strip()}"
                ) from exc
            log.info("waiting for the database (attempt %d): %s", attempt, str(exc).strip().splitlines()[-1])
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def database_missing(exc: psycopg.OperationalError, dbname: str) -> bool:
    """Whether a connection failed because the database does not exist (SQLSTATE 3D000)."""
    return isinstance(exc, InvalidCatalogName) or f'database "{dbname}" does not exist' in str(exc)


def create_database(settings: Settings) -> None:
    log.info("creating database %s", settings.DB_NAME)
    with psycopg.connect(settings.conninfo(settings.MIGRATE_MAINTENANCE_DB), autocommit=True) as conn:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(settings.DB_NAME)))
        except (DuplicateDatabase, UniqueViolation):
            pass  # created concurrently by another run (the catalog's unique index may say so first)


def applied(conn: psycopg.Connection) -> dict[str, tuple[str, str]]:
    rows = conn.execute("SELECT version, name, checksum FROM public.schema_migrations").fetchall()
    return {version: (name, checksum) for version, name, checksum in rows}


def load_dump(conn: psycopg.Connection, settings: Settings, done: dict[str, tuple[str, str]]) -> None:
    """Load the dump with psql, in one transaction with its ledger row, exactly once per database."""
    dump_path = Path(settings.MIGRATE_DUMP_PATH)
    if DUMP_VERSION in done:
        name, checksum = done[DUMP_VERSION]
        log.info("dump already loaded (%s), skipping", name)
        if dump_path.is_file() and checksum not in ("-", sha256_file(dump_path)):
            log.warning("the dump file changed since it was loaded; `make reset` reloads it")
        return
    with conn.transaction():
        if conn.execute("SELECT to_regclass('public.prices') IS NOT NULL").fetchone()[0]:
            # Loaded by other means (a managed database, a manual psql): adopt it as is.
            log.info("tables already exist: recording them as the baseline, not loading the dump")
            record(conn, DUMP_VERSION, "pre-existing schema", "-")
            return
    if not dump_path.is_file():
        raise MigrationError(f"MIGRATE_DUMP_PATH: dump file not found: {dump_path} (set RATES_DUMP for make up)")
    started = time.monotonic()
    try:
        dump = psql.read_dump(dump_path)
        variables = {"version": DUMP_VERSION, "name": f"dump {dump_path.name}", "checksum": dump.checksum}
        warnings = psql.load(settings, dump, RECORD_DUMP, variables)
    except psql.DumpError as exc:
        raise MigrationError(str(exc)) from exc
    for line in warnings:
        log.warning("psql: %s", line)
    log.info("loaded %s (%d lines) with psql in %.1fs", dump_path, dump.lines, time.monotonic() - started)


def record(conn: psycopg.Connection, version: str, name: str, checksum: str) -> None:
    conn.execute(
        "INSERT INTO public.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
        (version, name, checksum),
    )


def apply_migrations(conn: psycopg.Connection, migrations: list[Migration], done: dict[str, tuple[str, str]]) -> int:
    count = 0
    for m in migrations:
        if m.version in done:
            if done[m.version][1] != m.checksum:
                raise MigrationError(
                    f"{m.path.name} was changed after it was applied; add a new migration instead"
                )
            continue
        with conn.transaction():
            owner, user = conn.execute(LEDGER_OWNER).fetchone()
            if owner != user:  # the schema's owner (0005), for the rest of this transaction
                conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner)))
            try:
                conn.execute(m.path.read_text(encoding="utf-8"))
            except psycopg.Error as exc:
                raise MigrationError(f"{m.path.name} failed: {str(exc).strip()}") from exc
            record(conn, m.version, m.name, m.checksum)
        log.info("applied %s", m.path.name)
        count += 1
    return count


def set_role_passwords(conn: psycopg.Connection, settings: Settings) -> None:
    """ALTER ROLE ... PASSWORD for the roles of the read and ingest pools that have their own. The
    password is hashed here (SCRAM-SHA-256): it never reaches the server's logs or activity view."""
    for pool in ("read", "ingest"):
        user, password = settings.credentials(pool)
        if user == settings.DB_USER or not password:
            continue
        verifier = conn.pgconn.encrypt_password(password.encode(), user.encode(), b"scram-sha-256").decode()
        try:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(user), sql.Literal(verifier)))
        except UndefinedObject:
            raise MigrationError(f"DB_{pool.upper()}_USER: role {user!r} does not exist "
                                 "(migration 0005 creates rates_read and rates_ingest)") from None
        log.info("set the password of role %s (DB_%s_USER)", user, pool.upper())


def run(settings: Settings) -> None:
    """Bring the database up to date; raise MigrationError with a clear message otherwise."""
    migrations = discover(Path(settings.MIGRATE_DIR))
    with connect_when_ready(settings) as conn:
        conn.autocommit = True  # explicit transactions below
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        conn.execute(CREATE_LEDGER)
        load_dump(conn, settings, applied(conn))
        count = apply_migrations(conn, migrations, applied(conn))
        set_role_passwords(conn, settings)
        conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    log.info(
        "database %s is up to date (%d migration(s) applied now, %d known)", settings.DB_NAME, count, len(migrations)
    )
