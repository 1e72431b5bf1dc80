"""WSGI entry point: ``gunicorn wsgi`` from this folder, or ``gunicorn rates.wsgi`` from the top.

gunicorn looks for the callable named ``application``; ``app`` is the same object.
"""

import sys
from pathlib import Path

try:
    from rates.app import create_app
except ModuleNotFoundError:  # started from inside the package folder: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from rates.app import create_app

application = app = create_app()
