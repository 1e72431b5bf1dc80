"""rates.config: sources, precedence, parsing and errors that name the variable."""

import pytest
from pydantic import ValidationError

from rates import config
from rates.config import ConfigError, Settings, load


@pytest.fixture(autouse=True)
def no_dotenv(tmp_path, monkeypatch):
    """Run each test in an empty folder so a developer's .env never leaks in."""
    monkeypatch.chdir(tmp_path)


def test_defaults_apply_when_nothing_is_set():
    s = load({"RATES_SECRETS_DIR": "/nonexistent"})
    assert (s.DB_HOST, s.DB_PORT, s.DB_NAME, s.DB_USER, s.DB_PASSWORD) == ("localhost", 5432, "rates", "postgres", "")
    assert s.RATES_MAX_RANGE_DAYS == 366
    assert s.WEB_KEEPALIVE is True


def test_environment_values_are_parsed():
    s = load({"DB_PORT": "6543", "WEB_WORKERS": "3", "DB_POOL_TIMEOUT": "0.5", "LOG_LEVEL": "debug"})
    assert (s.DB_PORT, s.WEB_WORKERS, s.DB_POOL_TIMEOUT, s.LOG_LEVEL) == (6543, 3, 0.5, "DEBUG")


def test_process_environment_is_the_default_source(monkeypatch):
    monkeypatch.setenv("DB_PORT", "6001")
    assert load().DB_PORT == 6001


def test_empty_values_count_as_unset():
    """compose passes ${NAME:-}: an unset variable arrives empty and must mean the default."""
    s = load({"DB_PORT": "", "DB_HOST": "", "LOG_LEVEL": "", "WEB_KEEPALIVE": "", "DB_PASSWORD_FILE": ""})
    assert (s.DB_PORT, s.DB_HOST, s.LOG_LEVEL, s.WEB_KEEPALIVE, s.DB_PASSWORD) == (5432, "localhost", "INFO", True, "")


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("DB_PORT", "five", "expected an integer, got 'five'"),
        ("DB_PORT", "70000", "must be <= 65535"),
        ("WEB_THREADS", "0", "must be >= 1"),
        ("DB_POOL_TIMEOUT", "nan", "expected a finite number"),
        ("DB_POOL_TIMEOUT", "0", "must be >= 0.01"),
        ("LOG_ACCESS_FLUSH", "soon", "expected a number"),
        ("LOG_LEVEL", "loud", "must be one of"),
        ("DB_HOST", "  ", "must not be empty"),
        ("WEB_KEEPALIVE", "5", "expected on or off"),
    ],
)
def test_bad_value_names_the_variable(name, value, fragment):
    with pytest.raises(ConfigError) as err:
        load({name: value})
    assert str(err.value).startswith(f"{name}: ")
    assert fragment in str(err.value)


def test_every_bad_value_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        load({"DB_PORT": "five", "WEB_THREADS": "many"})
    assert str(err.value) == "DB_PORT: expected an integer, got 'five'; WEB_THREADS: expected an integer, got 'many'"


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("0", False), ("true", True), ("false", False),
                                                 ("on", True), ("off", False)])
def test_keepalive_is_on_or_off(value, expected):
    assert load({"WEB_KEEPALIVE": value}).WEB_KEEPALIVE is expected


def test_pool_bounds_are_checked_together():
    with pytest.raises(ConfigError, match="^DB_POOL_MIN_SIZE: must be <= DB_POOL_MAX_SIZE"):
        load({"DB_POOL_MIN_SIZE": "5", "DB_POOL_MAX_SIZE": "2"})


def test_relative_migration_paths_are_from_the_project_folder():
    s = load({"MIGRATE_DIR": "elsewhere/migrations", "MIGRATE_DUMP_PATH": "/dump/rates.sql"})
    assert s.MIGRATE_DIR == str(config.PROJECT_DIR / "elsewhere" / "migrations")
    assert s.MIGRATE_DUMP_PATH == "/dump/rates.sql"
    assert load({}).MIGRATE_DIR == str(config.PROJECT_DIR / "db" / "migrations")


def test_file_variable_reads_a_secret_file(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    assert load({"DB_PASSWORD_FILE": str(secret)}).DB_PASSWORD == "s3cret"


def test_file_variable_pointing_nowhere_names_it(tmp_path):
    with pytest.raises(ConfigError, match=r"^DB_PASSWORD_FILE: cannot read .*/missing"):
        load({"DB_PASSWORD_FILE": str(tmp_path / "missing")})


def test_both_value_and_file_is_an_error(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("x")
    with pytest.raises(ConfigError, match="either DB_PASSWORD or DB_PASSWORD_FILE"):
        load({"DB_PASSWORD": "y", "DB_PASSWORD_FILE": str(secret)})


def test_both_value_and_file_in_dotenv_is_an_error(tmp_path):
    (tmp_path / "pw").write_text("x")
    (tmp_path / ".env").write_text(f"DB_PASSWORD=y\nDB_PASSWORD_FILE={tmp_path / 'pw'}\n")
    with pytest.raises(ConfigError, match="either DB_PASSWORD or DB_PASSWORD_FILE"):
        load({})


def test_secrets_directory_is_used_for_secret_settings_only(tmp_path):
    (tmp_path / "db_password").write_text("from-secrets-dir")
    (tmp_path / "db_host").write_text("not-a-secret-setting")
    s = load({"RATES_SECRETS_DIR": str(tmp_path)})
    assert s.DB_PASSWORD == "from-secrets-dir"
    assert s.DB_HOST == "localhost"


def test_secrets_directory_can_be_named_in_dotenv(tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "ingest_token").write_text("t" * 32)
    (tmp_path / ".env").write_text(f"RATES_SECRETS_DIR={secrets}\n")
    assert load({}).INGEST_TOKEN == "t" * 32


def test_dotenv_file_is_read_and_environment_wins(tmp_path):
    (tmp_path / ".env").write_text(
        "# comment\nexport DB_HOST=dbhost\nDB_NAME='quoted name'\nDB_PORT=6000 # trailing comment\nDB_USER=fromfile\n"
    )
    s = load({"DB_USER": "fromenv"})
    assert (s.DB_HOST, s.DB_NAME, s.DB_PORT, s.DB_USER) == ("dbhost", "quoted name", 6000, "fromenv")


def test_dotenv_file_variable_is_read(tmp_path):
    (tmp_path / "pw").write_text("from-file-named-in-dotenv\n")
    (tmp_path / ".env").write_text(f"DB_PASSWORD_FILE={tmp_path / 'pw'}\n")
    assert load({}).DB_PASSWORD == "from-file-named-in-dotenv"


def test_precedence_environment_then_file_variable_then_dotenv_then_secrets_dir(tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "db_password").write_text("secrets-dir")
    (tmp_path / "pw").write_text("env-file")
    (tmp_path / ".env").write_text("DB_PASSWORD=dotenv\n")
    env = {"RATES_SECRETS_DIR": str(secrets)}
    assert load({**env, "DB_PASSWORD": "env", "DB_PASSWORD_FILE": ""}).DB_PASSWORD == "env"
    assert load({**env, "DB_PASSWORD_FILE": str(tmp_path / "pw")}).DB_PASSWORD == "env-file"
    assert load(env).DB_PASSWORD == "dotenv"
    (tmp_path / ".env").write_text("")
    assert load(env).DB_PASSWORD == "secrets-dir"


def test_empty_dotenv_value_counts_as_unset(tmp_path):
    (tmp_path / ".env").write_text("DB_HOST=\nWEB_THREADS=''\n")
    s = load({})
    assert (s.DB_HOST, s.WEB_THREADS) == ("localhost", 2)


def test_bad_dotenv_line_names_file_and_line_but_not_the_value(tmp_path):
    (tmp_path / ".env").write_text("DB_HOST=ok\nDB_PASSWORD hunter2\n")
    with pytest.raises(ConfigError, match=r"\.env:2: expected KEY=value") as err:
        load({})
    assert "hunter2" not in str(err.value)


def test_explicit_env_file_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="RATES_ENV_FILE"):
        load({"RATES_ENV_FILE": str(tmp_path / "nope.env")})


def test_explicit_env_file_is_read(tmp_path):
    (tmp_path / "other.env").write_text("DB_NAME=other\n")
    (tmp_path / ".env").write_text("DB_NAME=default-file\n")
    assert load({"RATES_ENV_FILE": str(tmp_path / "other.env")}).DB_NAME == "other"
    assert load({"RATES_ENV_FILE": "/dev/null"}).DB_NAME == "rates"


def test_settings_built_in_code_read_no_source(tmp_path, monkeypatch):
    """Settings(...) is the values given over the defaults: no environment, .env or secrets."""
    monkeypatch.setenv("DB_HOST", "from-environment")
    (tmp_path / ".env").write_text("DB_NAME=from-dotenv\n")
    s = Settings(DB_PORT=6000)
    assert (s.DB_HOST, s.DB_NAME, s.DB_PORT) == ("localhost", "rates", 6000)
    with pytest.raises(ValidationError):
        Settings(DB_PORT=0)


def test_settings_are_immutable():
    with pytest.raises(ValidationError):
        load({}).DB_PORT = 1


def test_redacted_masks_secrets():
    s = load({"DB_PASSWORD": "hunter2", "INGEST_TOKEN": "t" * 32})
    assert s.redacted()["DB_PASSWORD"] == s.redacted()["INGEST_TOKEN"] == "***"
    assert "hunter2" not in repr(s.redacted())
    assert s.redacted()["DB_HOST"] == "localhost"
    assert load({}).redacted()["DB_PASSWORD"] == ""  # nothing to hide: shows that it is unset


def test_conninfo_carries_every_connection_setting():
    s = load({"DB_HOST": "h", "DB_PORT": "1234", "DB_USER": "u", "DB_PASSWORD": "p w", "DB_NAME": "n"})
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(s.conninfo())
    got = (info["host"], info["port"], info["user"], info["password"], info["dbname"])
    assert got == ("h", "1234", "u", "p w", "n")
    assert conninfo_to_dict(s.conninfo("postgres"))["dbname"] == "postgres"


def test_unreadable_files_name_their_variable(tmp_path):
    (tmp_path / "latin1").write_bytes(b"caf\xe9\n")
    with pytest.raises(ConfigError, match=r"^DB_PASSWORD_FILE: .*latin1 is not UTF-8 text"):
        load({"DB_PASSWORD_FILE": str(tmp_path / "latin1")})
    with pytest.raises(ConfigError, match=r"^RATES_ENV_FILE: .*latin1 is not UTF-8 text"):
        load({"RATES_ENV_FILE": str(tmp_path / "latin1")})


def test_reads_may_go_to_another_server():
    s = load({"DB_HOST": "primary", "DB_PORT": "5000", "DB_READ_HOST": "replicas", "DB_READ_PORT": "5001"})
    from psycopg.conninfo import conninfo_to_dict

    assert (conninfo_to_dict(s.conninfo())["host"], conninfo_to_dict(s.conninfo())["port"]) == ("primary", "5000")
    reads = conninfo_to_dict(s.conninfo(pool="read"))
    assert (reads["host"], reads["port"]) == ("replicas", "5001")
    ingest = conninfo_to_dict(s.conninfo(pool="ingest"))
    assert (ingest["host"], ingest["port"]) == ("primary", "5000")
    same = load({"DB_HOST": "one", "DB_PORT": "5432"})
    assert same.conninfo(pool="read") == same.conninfo(pool="ingest") == same.conninfo()


def test_each_pool_connects_as_its_own_role_or_as_db_user():
    from psycopg.conninfo import conninfo_to_dict

    def who(settings, pool: str) -> tuple[str, str | None]:
        info = conninfo_to_dict(settings.conninfo(pool=pool))
        return info["user"], info.get("password")

    plain = load({"DB_USER": "admin", "DB_PASSWORD": "a"})  # `gunicorn wsgi` against any database
    assert who(plain, "") == who(plain, "read") == who(plain, "ingest") == ("admin", "a")
    roles = load({"DB_USER": "admin", "DB_PASSWORD": "a", "DB_READ_USER": "reader", "DB_READ_PASSWORD": "r",
                  "DB_INGEST_USER": "loader", "DB_INGEST_PASSWORD": "i"})
    assert (who(roles, ""), who(roles, "read"), who(roles, "ingest")) == (("admin", "a"), ("reader", "r"),
                                                                           ("loader", "i"))
    assert roles.credentials("read") == ("reader", "r")
    assert roles.redacted()["DB_READ_PASSWORD"] == roles.redacted()["DB_INGEST_PASSWORD"] == "***"
    no_password = load({"DB_PASSWORD": "a", "DB_READ_USER": "reader"})  # peer, trust or .pgpass
    assert who(no_password, "read") == ("reader", None)


def test_a_pool_password_without_its_role_is_an_error():
    with pytest.raises(ConfigError, match=r"^DB_INGEST_PASSWORD: set DB_INGEST_USER too"):
        load({"DB_INGEST_PASSWORD": "i"})


def test_pool_passwords_come_from_the_secrets_directory(tmp_path):
    (tmp_path / "db_read_password").write_text("from-a-file\n")
    s = load({"RATES_SECRETS_DIR": str(tmp_path), "DB_READ_USER": "reader"})
    assert s.credentials("read") == ("reader", "from-a-file")


@pytest.mark.parametrize("tokens", ["short", f"{'a' * 32},{'b' * 31}"])
def test_a_short_ingest_token_stops_start_up_without_showing_it(tokens):
    with pytest.raises(ConfigError) as caught:
        load({"INGEST_TOKEN": tokens})
    assert str(caught.value).startswith("INGEST_TOKEN: each token must have at least 32 characters")
    assert "short" not in str(caught.value) and "b" * 31 not in str(caught.value)
