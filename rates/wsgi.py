"""WSGI entry point: ``gunicorn wsgi`` from this folder, or ``gunicorn rates.wsgi`` from the top
(uWSGI and granian load ``rates.wsgi:application``).

gunicorn looks for the callable named ``application``; ``app`` is the same object.
"""

import logging
import sys
from pathlib import Path

try:
    from rates.app import create_app
except ModuleNotFoundError:  # started from inside the package folder: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from rates.app import create_app

from rates import config
from rates.logs import configure_logging

if not logging.getLogger().handlers:
    # gunicorn and granian set up logging before they import the app; uWSGI does not.
    configure_logging(config.get().LOG_LEVEL)

application = app = create_app()
