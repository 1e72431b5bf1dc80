"""Configuration of the rates service: every setting and its default (the one place of the
service's defaults; .env.example documents them). Each setting NAME comes from, first match
wins: the environment (NAME); the file NAME_FILE names; the .env file (RATES_ENV_FILE, default
./.env, NAME or NAME_FILE); for secret settings, the file ``name`` of the secrets directory
(RATES_SECRETS_DIR, default /run/secrets); the default. An empty value counts as unset, so
compose passes ``${NAME:-}`` without restating defaults. A bad value stops start-up with a
``ConfigError`` naming the variable.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from dotenv.parser import parse_stream
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.exceptions import SettingsError

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
DEFAULT_ENV_FILE = ".env"
DEFAULT_SECRETS_DIR = "/run/secrets"
MIN_TOKEN = 32  # characters of a bearer token: guessing one is out of reach


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


def cpu_count() -> int:
    """CPUs this process may run on (respects container CPU sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


# Masked by ``redacted()``; also read from the secrets directory.
SECRETS = frozenset({"DB_PASSWORD", "DB_READ_PASSWORD", "DB_INGEST_PASSWORD", "INGEST_TOKEN"})
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Level = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(lambda v: str(v).strip().upper())]
# A relative path is taken from the project folder (the folder holding db/ and rates/).
ProjectPath = Annotated[Text, AfterValidator(lambda v: str(PROJECT_DIR / v))]


def _seconds(default: float, lo: float, doc: str) -> Any:
    return Field(default, ge=lo, allow_inf_nan=False, description=doc)


class Settings(BaseSettings):
    """All settings of the service. Field names in upper case are the variable names.

    ``Settings(NAME=value, ...)`` validates those values over the defaults and reads nothing
    else; ``load()`` reads the sources listed in the module's docstring.
    """

    model_config = SettingsConfigDict(frozen=True, extra="ignore", validate_default=True, case_sensitive=True)

    # Database connection.
    DB_HOST: Text = Field("localhost", description="PostgreSQL host name or address")
    DB_PORT: int = Field(5432, ge=1, le=65535, description="PostgreSQL TCP port")
    DB_NAME: Text = Field("rates", description="database holding ports, regions and prices")
    DB_USER: Text = Field("postgres", description="database role of migrations, and of the pools by default")
    DB_PASSWORD: str = Field("", description="password of DB_USER (prefer DB_PASSWORD_FILE)")
    DB_READ_USER: str = Field("", description="role of the read pool; empty = DB_USER with DB_PASSWORD")
    DB_READ_PASSWORD: str = Field("", description="password of DB_READ_USER (prefer DB_READ_PASSWORD_FILE)")
    DB_INGEST_USER: str = Field("", description="role of the batch pools; empty = DB_USER with DB_PASSWORD")
    DB_INGEST_PASSWORD: str = Field("", description="password of DB_INGEST_USER (prefer DB_INGEST_PASSWORD_FILE)")
    DB_SSLMODE: Text = Field("prefer", description="libpq sslmode (disable, prefer, require, verify-full)")
    DB_CONNECT_TIMEOUT: int = Field(3, ge=1, le=600, description="seconds to wait when opening a connection")
    DB_STATEMENT_TIMEOUT_MS: int = Field(5000, ge=0, description="server-side statement timeout, 0 = none")
    DB_POOL_MIN_SIZE: int = Field(1, ge=0, le=1000, description="connections each worker keeps open")
    DB_POOL_MAX_SIZE: int = Field(4, ge=1, le=1000, description="connections each worker may open")
    DB_POOL_TIMEOUT: float = _seconds(2.0, 0.01, "seconds a request waits for a pooled connection before 503")
    # Reads (GET routes) may go elsewhere than writes: replicas behind a proxy in the HA stack.
    DB_READ_HOST: str = Field("", description="host of the read pool; empty = DB_HOST")
    DB_READ_PORT: int = Field(0, ge=0, le=65535, description="port of the read pool; 0 = DB_PORT")

    # HTTP server.
    WEB_BIND: Text = Field("0.0.0.0:3000", description="address:port the HTTP server listens on")  # noqa: S104
    WEB_WORKERS: int = Field(0, ge=0, le=256, description="worker processes; 0 = one per CPU core")
    WEB_THREADS: int = Field(2, ge=1, le=256, description="threads per worker running the application")
    WEB_GRACEFUL_TIMEOUT: int = Field(30, ge=1, le=3600, description="seconds in-flight requests get on SIGTERM")
    WEB_KEEPALIVE: bool = Field(True, description="HTTP/1.1 keep-alive on or off")
    LOG_LEVEL: Level = Field("INFO", description="log level")
    LOG_ACCESS_BUFFER: int = Field(4096, ge=0, le=4096, description="bytes of access lines per write; 0 = one per line")
    LOG_ACCESS_FLUSH: float = _seconds(1.0, 0.01, "longest an access line waits in the buffer, seconds")

    # API behaviour.
    RATES_MAX_RANGE_DAYS: int = Field(366, ge=1, le=100_000, description="longest date range /rates accepts, days")
    RATES_CACHE_SIZE: int = Field(4096, ge=0, le=10_000_000, description="responses each worker caches (0 = none)")

    # Migrations (python -m rates migrate).
    MIGRATE_DUMP_PATH: ProjectPath = Field("db/rates.sql", description="dump loaded once into an empty database")
    MIGRATE_DIR: ProjectPath = Field("db/migrations", description="folder of NNNN_name.sql migrations")
    MIGRATE_MAINTENANCE_DB: Text = Field("postgres", description="database used to CREATE DATABASE DB_NAME")
    MIGRATE_WAIT_SECONDS: float = _seconds(60.0, 0, "how long migrate waits for the database to accept connections")

    # Batch ingestion.
    INGEST_TOKEN: str = Field("", description="bearer token(s) for POST /batches, comma-separated; empty = disabled")
    BATCH_MAX_ROWS: int = Field(2_000_000, ge=1, description="most rows in one batch (413 beyond)")
    BATCH_MAX_BYTES: int = Field(512 * 1024 * 1024, ge=1, description="most bytes per body, also decoded (413 beyond)")
    BATCH_STATEMENT_TIMEOUT_MS: int = Field(600_000, ge=0, description="longest time a batch may run, ms (0: none)")
    BATCH_DB_CONNECTIONS: int = Field(4, ge=1, le=1000, description="connections per worker for batches (not reads)")

    @field_validator("INGEST_TOKEN")
    @classmethod
    def _long_tokens(cls, value: str) -> str:
        if any(len(token) < MIN_TOKEN for token in value.replace(",", " ").split()):
            raise ValueError(f"each token must have at least {MIN_TOKEN} characters (make env writes 64)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.DB_POOL_MIN_SIZE > self.DB_POOL_MAX_SIZE:
            raise ValueError(f"DB_POOL_MIN_SIZE: must be <= DB_POOL_MAX_SIZE "
                             f"({self.DB_POOL_MIN_SIZE} > {self.DB_POOL_MAX_SIZE})")
        for pool in ("READ", "INGEST"):
            if getattr(self, f"DB_{pool}_PASSWORD") and not getattr(self, f"DB_{pool}_USER").strip():
                raise ValueError(f"DB_{pool}_PASSWORD: set DB_{pool}_USER too (the pool's role)")
        return self

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   **_: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # the other sources are load()'s

    def credentials(self, pool: str = "") -> tuple[str, str]:
        """(role, password) of a pool, ``read`` or ``ingest``: its own if set, else DB_USER's."""
        user = getattr(self, f"DB_{pool.upper()}_USER").strip() if pool else ""
        return (user, getattr(self, f"DB_{pool.upper()}_PASSWORD")) if user else (self.DB_USER, self.DB_PASSWORD)

    def conninfo(self, dbname: str | None = None, *, pool: str = "") -> str:
        """libpq connection string, as DB_USER or as the role of ``pool`` (the ``read`` pool on its
        own server); the password never appears in logs (see ``redacted``)."""
        from psycopg.conninfo import make_conninfo

        reads, (user, password) = pool == "read", self.credentials(pool)
        return make_conninfo(
            host=(reads and self.DB_READ_HOST) or self.DB_HOST, port=(reads and self.DB_READ_PORT) or self.DB_PORT,
            dbname=dbname or self.DB_NAME, user=user, password=password or None,
            sslmode=self.DB_SSLMODE, connect_timeout=self.DB_CONNECT_TIMEOUT, application_name="rates",
        )

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict with secrets masked, for logging."""
        return {name: "***" if name in SECRETS and getattr(self, name) else getattr(self, name)
                for name in type(self).model_fields}


def _read_file(path: str | Path, variable: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{variable}: {path} is not UTF-8 text") from None


class _Environment(EnvSettingsSource):
    """``NAME`` from a mapping of variables: the process environment, unless load() is given one."""

    def __init__(self, settings_cls: type[BaseSettings], variables: Mapping[str, str]) -> None:
        self._variables = variables
        super().__init__(settings_cls, case_sensitive=True, env_ignore_empty=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name: value for name, value in self._variables.items() if value}


class _DotEnv(DotEnvSettingsSource):
    """The ``.env`` file, read by python-dotenv; a line it cannot parse is an error, by line number."""

    def _read_env_file(self, file_path: Path) -> Mapping[str, str | None]:
        text = _read_file(file_path, "RATES_ENV_FILE")
        bad = next((b.original.line for b in parse_stream(io.StringIO(text)) if b.error), None)
        if bad is not None:
            raise ConfigError(f"{file_path}:{bad}: expected KEY=value (line not shown: it may hold a secret)")
        return super()._read_env_file(file_path)


class _FileVariables(PydanticBaseSettingsSource):
    """``NAME`` read from the file that ``NAME_FILE`` names, in the environment or in .env."""

    def __init__(self, settings_cls: type[BaseSettings], variables: Mapping[str, str | None]) -> None:
        super().__init__(settings_cls)  # an empty NAME or NAME_FILE counts as unset
        self._variables = variables

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        path = self._variables.get(f"{field_name}_FILE")
        if not path:
            return None, field_name, False
        if self._variables.get(field_name):
            raise ConfigError(f"{field_name}: set either {field_name} or {field_name}_FILE, not both")
        return _read_file(path, f"{field_name}_FILE"), field_name, False

    def __call__(self) -> dict[str, Any]:
        values = {name: self.get_field_value(f, name)[0] for name, f in self.settings_cls.model_fields.items()}
        return {name: value for name, value in values.items() if value is not None}


class _SecretsDir(SecretsSettingsSource):
    """The secrets directory (``/run/secrets/<name>``), for the settings marked secret only."""

    def __call__(self) -> dict[str, Any]:
        return super().__call__() if Path(str(self.secrets_dir)).is_dir() else {}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name not in SECRETS:
            return None, field_name, False
        try:
            return super().get_field_value(field, field_name)
        except OSError as exc:
            raise ConfigError(f"{field_name}: cannot read it from {self.secrets_dir}: {exc.strerror}") from None


_MESSAGES = {
    "int_parsing": "expected an integer, got {input!r}",
    "int_from_float": "expected an integer, got {input!r}",
    "float_parsing": "expected a number, got {input!r}",
    "finite_number": "expected a finite number, got {input!r}",
    "bool_parsing": "expected on or off (1, 0, true, false), got {input!r}",
    "greater_than_equal": "must be >= {ge}, got {input}",
    "less_than_equal": "must be <= {le}, got {input}",
    "string_too_short": "must not be empty",
    "literal_error": "must be one of {expected}, got {input!r}",
}


def _explain(exc: ValidationError) -> str:
    """One line per invalid setting, ``NAME: what is wrong``."""
    lines = []
    for error in exc.errors():
        context = error.get("ctx", {})
        template = _MESSAGES.get(error["type"])
        text = template.format(input=error["input"], **context) if template else str(context.get("error", error["msg"]))
        lines.append(f"{error['loc'][0]}: {text}" if error["loc"] else text)
    return "; ".join(lines)


def _sources(environ: Mapping[str, str]) -> tuple[PydanticBaseSettingsSource, ...]:
    env_file = Path(environ.get("RATES_ENV_FILE") or DEFAULT_ENV_FILE)
    if "RATES_ENV_FILE" in environ and not env_file.exists():
        raise ConfigError(f"RATES_ENV_FILE: file not found: {env_file}")
    dotenv = _DotEnv(Settings, env_file=env_file if env_file.exists() else None, case_sensitive=True,
                     env_ignore_empty=True)
    secrets_dir = environ.get("RATES_SECRETS_DIR") or dotenv.env_vars.get("RATES_SECRETS_DIR") or DEFAULT_SECRETS_DIR
    return (
        _Environment(Settings, environ),
        _FileVariables(Settings, environ),
        dotenv,
        _FileVariables(Settings, dotenv.env_vars),
        _SecretsDir(Settings, secrets_dir=secrets_dir, case_sensitive=False),
    )


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from the environment, ``*_FILE`` files, ``.env`` and the secrets dir."""
    try:
        return Settings(_build_sources=(_sources(os.environ if environ is None else environ), {}))
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None
    except SettingsError as exc:
        if isinstance(exc.__cause__, ConfigError):
            raise exc.__cause__ from None
        raise ConfigError(str(exc)) from None


_cached: Settings | None = None


def get() -> Settings:
    """The process-wide settings, loaded once on first use."""
    global _cached
    if _cached is None:
        _cached = load()
    return _cached

