"""gunicorn settings for ``gunicorn -b :3000 wsgi`` run from this folder (gunicorn reads
./gunicorn.conf.py by default): only what keeps the metrics of several workers correct.
Workers, threads and timeouts are gunicorn's own options (``-w 4``, ``--threads``...).
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Workers share their metrics through files in this folder (rates.observability.metrics); a
# fresh one per server, so no earlier server's samples are summed in.
_OWN_METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if _OWN_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="rates-metrics-")
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

# Imported under another name: gunicorn reads every top-level name of this file as a setting.
from rates.observability.metrics import mark_process_dead as _mark_process_dead  # noqa: E402


def child_exit(server, worker):  # noqa: ANN001 - gunicorn hook signature
    # Runs in a signal handler of the master: no import here (a re-entrant import would fail).
    _mark_process_dead(worker.pid)


def on_exit(server):  # noqa: ANN001 - gunicorn hook signature
    if _OWN_METRICS_DIR:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
