"""gunicorn settings, taken from rates.config (environment, .env, secret files).

gunicorn reads ./gunicorn.conf.py by default, so ``gunicorn -b :3000 wsgi`` run from this folder
uses it; the container runs ``gunicorn -c rates/gunicorn.conf.py rates.wsgi``. Command-line
options (``-b :3000``) override what is set here.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Imported under other names: gunicorn reads every top-level name of this file as a setting.
from rates import config as _rates_config  # noqa: E402
from rates.logs import configure_logging as _configure_logging  # noqa: E402
from rates.metrics import mark_process_dead as _mark_process_dead  # noqa: E402

try:
    _settings = _rates_config.get()
except _rates_config.ConfigError as exc:  # a bad value stops start-up with a message naming the variable
    sys.exit(f"configuration error: {exc}")

bind = [_settings.WEB_BIND]
workers = _settings.gunicorn_workers
threads = _settings.WEB_THREADS
timeout = _settings.WEB_TIMEOUT
graceful_timeout = _settings.WEB_GRACEFUL_TIMEOUT
keepalive = _settings.WEB_KEEPALIVE
loglevel = _settings.LOG_LEVEL.lower()
accesslog = "-"
errorlog = "-"
# The app is imported in each worker after fork, so every worker opens its own pool.
preload_app = False


def on_starting(server):  # noqa: ANN001 - gunicorn hook signature
    _configure_logging(_settings.LOG_LEVEL)
    server.log.info("rates settings: %s", _settings.redacted())


def child_exit(server, worker):  # noqa: ANN001 - gunicorn hook signature
    # Runs in a signal handler of the master: no import here (a re-entrant import would fail).
    _mark_process_dead(worker.pid)
