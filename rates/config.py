"""Configuration of the rates service: every setting, its default, and where it comes from.

Each setting NAME is looked up, first match wins, in:

1. the process environment: ``NAME``;
2. a file named by the environment: ``NAME_FILE`` (Docker secrets, Kubernetes secret volumes);
3. the ``.env`` file (path from ``RATES_ENV_FILE``, default ``.env`` in the working directory),
   which may hold ``NAME`` or ``NAME_FILE`` too;
4. the secrets directory (``RATES_SECRETS_DIR``, default ``/run/secrets``): a file named ``name``
   in lower case, for settings marked secret;
5. the default below.

A value that does not parse stops start-up with a ``ConfigError`` naming the variable.
``.env.example`` at the top of the repository documents every variable.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
DEFAULT_SECRETS_DIR = "/run/secrets"


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


def cpu_count() -> int:
    """CPUs this process may run on (respects container CPU sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def _int(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
        if lo is not None and value < lo:
            raise ValueError(f"must be >= {lo}, got {value}")
        if hi is not None and value > hi:
            raise ValueError(f"must be <= {hi}, got {value}")
        return value

    return parse


def _float(lo: float = 0.0) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(f"expected a number, got {raw!r}") from None
        if not value >= lo:  # also rejects NaN
            raise ValueError(f"must be >= {lo}, got {raw.strip()}")
        return value

    return parse


def _str(raw: str) -> str:
    return raw


def _nonempty(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw.strip()


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().upper()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {raw!r}")
        return value

    return parse


def _setting(default: Any, parse: Callable[[str], Any], doc: str, secret: bool = False) -> Any:
    """Declare a setting: its default, its parser, and a one-line description."""
    return field(default=default, metadata={"parse": parse, "doc": doc, "secret": secret})


@dataclass(frozen=True)
class Settings:
    """All settings of the service. Field names in upper case are the variable names."""

    # Database connection.
    DB_HOST: str = _setting("localhost", _nonempty, "PostgreSQL host name or address")
    DB_PORT: int = _setting(5432, _int(1, 65535), "PostgreSQL TCP port")
    DB_NAME: str = _setting("rates", _nonempty, "database holding ports, regions and prices")
    DB_USER: str = _setting("postgres", _nonempty, "database role the service connects as")
    DB_PASSWORD: str = _setting("", _str, "password of DB_USER (prefer DB_PASSWORD_FILE)", secret=True)
    DB_SSLMODE: str = _setting("prefer", _nonempty, "libpq sslmode (disable, prefer, require, verify-full)")
    DB_CONNECT_TIMEOUT: int = _setting(3, _int(1, 600), "seconds to wait when opening a connection")
    DB_STATEMENT_TIMEOUT_MS: int = _setting(5000, _int(0), "server-side statement timeout, 0 = none")
    DB_POOL_MIN_SIZE: int = _setting(1, _int(0, 1000), "connections each worker keeps open")
    DB_POOL_MAX_SIZE: int = _setting(4, _int(1, 1000), "connections each worker may open")
    DB_POOL_TIMEOUT: float = _setting(2.0, _float(0.01), "seconds a request waits for a pooled connection before 503")

    # HTTP server.
    WEB_BIND: str = _setting("0.0.0.0:3000", _nonempty, "address:port the HTTP server listens on")
    WEB_WORKERS: int = _setting(0, _int(0, 256), "worker processes; 0 = one per CPU core")
    WEB_THREADS: int = _setting(2, _int(1, 256), "threads per worker running the application")
    WEB_GRACEFUL_TIMEOUT: int = _setting(30, _int(1, 3600), "seconds in-flight requests get to finish on SIGTERM")
    WEB_KEEPALIVE: int = _setting(
        5, _int(0, 3600), "HTTP/1.1 keep-alive: 0 = off, any other value = on"
    )
    LOG_LEVEL: str = _setting("INFO", _choice("DEBUG", "INFO", "WARNING", "ERROR"), "log level")
    LOG_ACCESS_BUFFER: int = _setting(
        4096, _int(0, 4096), "bytes of access lines gathered into one write to stderr; 0 = one write per line"
    )
    LOG_ACCESS_FLUSH: float = _setting(1.0, _float(0.01), "longest an access line waits in the buffer, seconds")

    # API behaviour.
    RATES_MAX_RANGE_DAYS: int = _setting(366, _int(1, 100_000), "longest date range /rates accepts, in days")
    RATES_CACHE_SIZE: int = _setting(4096, _int(0, 10_000_000), "responses each worker caches (0 = no cache)")

    # Migrations (python -m rates migrate).
    MIGRATE_DUMP_PATH: str = _setting(
        str(PROJECT_DIR / "db" / "rates.sql"), _nonempty, "dump loaded once into an empty database"
    )
    MIGRATE_DIR: str = _setting(str(PROJECT_DIR / "db" / "migrations"), _nonempty, "folder of NNNN_name.sql migrations")
    MIGRATE_MAINTENANCE_DB: str = _setting("postgres", _nonempty, "database used to CREATE DATABASE DB_NAME")
    MIGRATE_WAIT_SECONDS: float = _setting(
        60.0, _float(0), "how long migrate waits for the database to accept connections"
    )

    # Batch ingestion.
    INGEST_TOKEN: str = _setting(
        "", _str, "bearer token(s) for POST /batches, comma-separated; empty = ingestion disabled", secret=True
    )
    BATCH_MAX_ROWS: int = _setting(2_000_000, _int(1), "most rows in one batch (413 beyond)")
    BATCH_MAX_BYTES: int = _setting(
        512 * 1024 * 1024, _int(1), "most bytes in one batch body, also after gzip decoding (413 beyond)"
    )
    BATCH_STATEMENT_TIMEOUT_MS: int = _setting(
        600_000, _int(0), "longest a batch's transaction may run, upload included, in ms (0 = no limit)"
    )
    BATCH_DB_CONNECTIONS: int = _setting(
        4, _int(1, 1000), "connections each worker may open for batches, apart from the read pool"
    )

    def conninfo(self, dbname: str | None = None) -> str:
        """libpq connection string; the password never appears in logs (see ``redacted``)."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=self.DB_HOST,
            port=self.DB_PORT,
            dbname=dbname or self.DB_NAME,
            user=self.DB_USER,
            password=self.DB_PASSWORD or None,
            sslmode=self.DB_SSLMODE,
            connect_timeout=self.DB_CONNECT_TIMEOUT,
            application_name="rates",
        )

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict with secrets masked, for logging."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = "***" if f.metadata["secret"] and value else value
        return out


def parse_env_file(path: Path) -> dict[str, str]:
    """Read a ``.env`` file: ``KEY=value`` lines, ``#`` comments, optional ``export`` and quotes."""
    values: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            raise ConfigError(f"{path}:{lineno}: expected KEY=value, got {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:  # trailing comment on an unquoted value
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def _read_secret_file(path: str, variable: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read {path}: {exc.strerror}") from None


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from the environment, ``*_FILE`` files, ``.env`` and the secrets dir."""
    env = dict(os.environ if environ is None else environ)
    env_file = Path(env.get("RATES_ENV_FILE", ".env"))
    dotenv: dict[str, str] = {}
    if env_file.exists() and not env_file.is_dir():  # /dev/null is a valid empty file
        dotenv = parse_env_file(env_file)
    elif "RATES_ENV_FILE" in env:
        raise ConfigError(f"RATES_ENV_FILE: file not found: {env_file}")
    secrets_dir = Path(env.get("RATES_SECRETS_DIR", dotenv.get("RATES_SECRETS_DIR", DEFAULT_SECRETS_DIR)))

    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        name = f.name
        raw: str | None = None
        for source in (env, dotenv):
            direct, via_file = source.get(name), source.get(f"{name}_FILE")
            if direct is not None and via_file is not None:
                raise ConfigError(f"{name}: set either {name} or {name}_FILE, not both")
            if direct is not None:
                raw = direct
            elif via_file is not None:
                raw = _read_secret_file(via_file, f"{name}_FILE")
            if raw is not None:
                break
        if raw is None and f.metadata["secret"]:
            candidate = secrets_dir / name.lower()
            if candidate.is_file():
                raw = _read_secret_file(str(candidate), name)
        if raw is None:
            continue
        try:
            values[name] = f.metadata["parse"](raw)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from None

    settings = Settings(**values)
    if settings.DB_POOL_MIN_SIZE > settings.DB_POOL_MAX_SIZE:
        raise ConfigError(
            f"DB_POOL_MIN_SIZE: must be <= DB_POOL_MAX_SIZE ({settings.DB_POOL_MIN_SIZE} > {settings.DB_POOL_MAX_SIZE})"
        )
    return settings


_cached: Settings | None = None


def get() -> Settings:
    """The process-wide settings, loaded once on first use."""
    global _cached
    if _cached is None:
        _cached = load()
    return _cached


def describe() -> list[tuple[str, Any, str]]:
    """(name, default, description) of every setting, for docs and ``python -m rates config``."""
    return [(f.name, f.default, f.metadata["doc"]) for f in dataclasses.fields(Settings)]
