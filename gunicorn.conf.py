"""Gunicorn settings of the web process, used by Procfile and Procfile.dev (`gunicorn -c gunicorn.conf.py`).
The bind address, worker count and access log stay on each Procfile's command line. Read by the master before
it loads the app, so the Prometheus multiprocess directory is in place before any worker imports
prometheus_client."""
import glob
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from app.config import web_process_settings  # noqa: E402

wsgi_app = "wsgi:app"

# --- Live log streams and thread sizing (issue 13, load) -----------------------------------------------------
# Each live log stream (SSE or WebSocket) and each chat reply stream (from the model's call to its last event)
# holds a thread for as long as it is open (app/http/streams.py counts them). A log stream holds no database
# connection while it waits (it blocks on Redis with a timeout). A worker gets one thread per stream slot plus
# KILN_WEB_THREADS for every other request; the stream endpoints answer 503 with Retry-After beyond
# KILN_STREAMS_PER_PROCESS, so the ordinary requests always keep their threads. bench/web.py measures it:
# 200 streams held by one worker, for about 50 MB more RSS, so threads are kept rather than gevent (which
# would run RQ, redis-py, SQLAlchemy and psycopg monkeypatched).
_web = web_process_settings()
worker_class = "gthread"
threads = _web["KILN_STREAMS_PER_PROCESS"] + _web["KILN_WEB_THREADS"]
# Open connections a worker tracks (streams, keep-alive clients, requests waiting for a thread).
worker_connections = max(1000, 2 * threads)
timeout = 120

# --- Prometheus multiprocess mode (issue 16, metrics) ---------------------------------------------------------
_multiproc = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR",
                                   os.path.join(tempfile.gettempdir(), f"kiln-prometheus-{os.getuid()}"))
os.makedirs(_multiproc, exist_ok=True)
# Counts of an earlier run's processes would be summed into this one's: drop prometheus_client's files
# (only those: the directory may be one an operator chose).
for _stale in glob.glob(os.path.join(_multiproc, "*.db")):
    os.unlink(_stale)


def child_exit(server, worker):
    """A dead gunicorn worker's live gauges (open log streams) leave the sum; its counters stay."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
