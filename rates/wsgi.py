"""WSGI entry point: ``gunicorn wsgi`` from this folder (the original run instruction), or
``rates.wsgi:application`` from the top (granian, ``python -m rates serve``).

gunicorn looks for the callable named ``application``; ``app`` is the same object.
"""

import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # imported as `wsgi` from inside the package folder
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rates import config  # noqa: E402
from rates.api.app import create_app  # noqa: E402
from rates.components import Components  # noqa: E402
from rates.observability.logs import configure_logging  # noqa: E402
from rates.serve import wake_main_thread_on_stop_signals  # noqa: E402

try:
    settings = config.get()
except config.ConfigError as exc:  # stops start-up with a message naming the variable
    print(f"configuration error: {exc}", file=sys.stderr)
    raise SystemExit(3) from None  # 3: gunicorn's "worker failed to boot", which stops it
if not logging.getLogger().handlers:
    configure_logging(settings.LOG_LEVEL)

if "granian" in sys.modules:  # a granian worker (gunicorn's handle their signals themselves)
    wake_main_thread_on_stop_signals()
application = app = create_app(Components.build(settings))
