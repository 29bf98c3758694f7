"""gunicorn settings for the `web` process (Procfile). Read by the master before it loads the app, so the
Prometheus multiprocess directory is in place before any worker imports prometheus_client."""
from __future__ import annotations

import glob
import os
import tempfile

_multiproc = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR",
                                   os.path.join(tempfile.gettempdir(), f"kiln-prometheus-{os.getuid()}"))
os.makedirs(_multiproc, exist_ok=True)
# Counts of an earlier run's processes would be summed into this one's: drop prometheus_client's files
# (only those: the directory may be one an operator chose).
for _stale in glob.glob(os.path.join(_multiproc, "*.db")):
    os.unlink(_stale)

bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = 16
timeout = 120


def child_exit(server, worker):
    """A dead gunicorn worker's live gauges (open log streams) leave the sum; its counters stay."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
