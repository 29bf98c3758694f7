"""An RQ worker for Kiln's queues, inside the app context (jobs take ids and write to the database).

Before it takes a job, a worker claims its scratch directory, reclaims what dead workers left behind
(their processes, mounts and temp trees) and reaps once; then, beside the jobs, it runs the reaper on a
thread: builds whose worker died (no heartbeat) are marked `worker_lost` and retried, whichever worker is
left alive notices first. Requests never do this.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
import threading

from rq import Worker
from rq.serializers import JSONSerializer

from app import create_app
from app.extensions import db, redis
from app.services.builds import reaper as build_reaper
from app.services.builds import scratch

QUEUES = ["builds", "tests", "webhooks", "default"]


def reaper_loop(app, stop: threading.Event) -> None:
    """Every KILN_BUILD_REAPER_INTERVAL seconds: reap lost work and reclaim dead workers' scratch space."""
    log = logging.getLogger("kiln.worker")
    with app.app_context():
        interval = float(app.config["KILN_BUILD_REAPER_INTERVAL"])
        while not stop.wait(interval):
            try:
                for path in scratch.reclaim_dead():
                    log.warning("reaper: reclaimed %s", path)
                for item_id, outcome in build_reaper.reap():
                    log.warning("reaper: %s %s", item_id, outcome)
            except Exception:  # noqa: BLE001 - keep reaping after a transient DB/Redis error
                log.exception("reaper pass failed")
                db.session.rollback()
            finally:
                db.session.remove()


def main(argv: list[str]) -> int:
    app = create_app()
    with app.app_context():
        name = os.environ.get("KILN_WORKER_NAME") or f"{socket.gethostname()}.{os.getpid()}"
        for item_id, outcome in build_reaper.start_worker(name):
            app.logger.warning("worker start: %s %s", item_id, outcome)
        db.session.remove()
        stop = threading.Event()
        reaper = threading.Thread(target=reaper_loop, args=(app, stop), name="build-reaper", daemon=True)
        reaper.start()
        from app.tasks.webhooks import sweeper_loop

        threading.Thread(target=sweeper_loop, args=(app, stop), name="webhook-sweeper", daemon=True).start()
        from app.tasks.billing import schedule_cycle

        # The hourly billing cycle (token periods, artifact retention) runs from this worker's scheduler.
        schedule_cycle()
        worker = Worker(argv or QUEUES, connection=redis.client, serializer=JSONSerializer, name=name)
        try:
            worker.work(with_scheduler=True)
        finally:
            stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
