"""rates.config: sources, precedence, parsing and errors that name the variable."""

import pytest

from rates import config
from rates.config import ConfigError, load


@pytest.fixture(autouse=True)
def no_dotenv(tmp_path, monkeypatch):
    """Run each test in an empty folder so a developer's .env never leaks in."""
    monkeypatch.chdir(tmp_path)


def test_defaults_apply_when_nothing_is_set():
    s = load({"RATES_SECRETS_DIR": "/nonexistent"})
    assert (s.DB_HOST, s.DB_PORT, s.DB_NAME, s.DB_USER, s.DB_PASSWORD) == ("localhost", 5432, "rates", "postgres", "")
    assert s.RATES_MAX_RANGE_DAYS == 366


def test_environment_values_are_parsed():
    s = load({"DB_PORT": "6543", "WEB_WORKERS": "3", "DB_POOL_TIMEOUT": "0.5", "LOG_LEVEL": "debug"})
    assert (s.DB_PORT, s.WEB_WORKERS, s.DB_POOL_TIMEOUT, s.LOG_LEVEL) == (6543, 3, 0.5, "DEBUG")


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("DB_PORT", "five", "expected an integer"),
        ("DB_PORT", "70000", "must be <= 65535"),
        ("WEB_THREADS", "0", "must be >= 1"),
        ("DB_POOL_TIMEOUT", "nan", "must be >= "),
        ("LOG_LEVEL", "loud", "must be one of"),
        ("DB_HOST", "  ", "must not be empty"),
    ],
)
def test_bad_value_names_the_variable(name, value, fragment):
    with pytest.raises(ConfigError) as err:
        load({name: value})
    assert str(err.value).startswith(f"{name}: ")
    assert fragment in str(err.value)


def test_pool_bounds_are_checked_together():
    with pytest.raises(ConfigError, match="DB_POOL_MIN_SIZE"):
        load({"DB_POOL_MIN_SIZE": "5", "DB_POOL_MAX_SIZE": "2"})


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


def test_secrets_directory_is_used_for_secret_settings_only(tmp_path):
    (tmp_path / "db_password").write_text("from-secrets-dir")
    (tmp_path / "db_host").write_text("not-a-secret-setting")
    s = load({"RATES_SECRETS_DIR": str(tmp_path)})
    assert s.DB_PASSWORD == "from-secrets-dir"
    assert s.DB_HOST == "localhost"


def test_dotenv_file_is_read_and_environment_wins(tmp_path):
    (tmp_path / ".env").write_text(
        "# comment\nexport DB_HOST=dbhost\nDB_NAME='quoted name'\nDB_PORT=6000 # trailing comment\nDB_USER=fromfile\n"
    )
    s = load({"DB_USER": "fromenv"})
    assert (s.DB_HOST, s.DB_NAME, s.DB_PORT, s.DB_USER) == ("dbhost", "quoted name", 6000, "fromenv")


def test_bad_dotenv_line_names_file_and_line(tmp_path):
    (tmp_path / ".env").write_text("DB_HOST=ok\nthis is not an assignment\n")
    with pytest.raises(ConfigError, match=r"\.env:2: expected KEY=value"):
        load({})


def test_explicit_env_file_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="RATES_ENV_FILE"):
        load({"RATES_ENV_FILE": str(tmp_path / "nope.env")})


def test_redacted_masks_secrets():
    s = load({"DB_PASSWORD": "hunter2"})
    assert s.redacted()["DB_PASSWORD"] == "***"
    assert "hunter2" not in repr(s.redacted())


def test_conninfo_carries_every_connection_setting():
    s = load({"DB_HOST": "h", "DB_PORT": "1234", "DB_USER": "u", "DB_PASSWORD": "p w", "DB_NAME": "n"})
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(s.conninfo())
    got = (info["host"], info["port"], info["user"], info["password"], info["dbname"])
    assert got == ("h", "1234", "u", "p w", "n")
    assert conninfo_to_dict(s.conninfo("postgres"))["dbname"] == "postgres"


def test_every_setting_is_documented_in_env_example():
    example = (config.PROJECT_DIR / ".env.example").read_text()
    missing = [name for name, _, _ in config.describe() if f"# {name}=" not in example and f"\n{name}=" not in example]
    assert missing == []
