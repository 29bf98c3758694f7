"""An RQ worker for Kiln's queues, inside the app context (jobs take ids and write to the database).

Besides running jobs, every worker runs the build reaper on a thread: builds whose worker died (no
heartbeat) are marked `worker_lost` and retried, whichever worker is left alive notices first.
"""
from __future__ import annotations

import os
import socket
import sys
import threading

from rq import Worker
from rq.serializers import JSONSerializer

from app import create_app
from app.extensions import redis

QUEUES = ["builds", "tests", "webhooks", "default"]


def main(argv: list[str]) -> int:
    app = create_app()
    with app.app_context():
        from app.tasks.builds import reaper_loop

        name = os.environ.get("KILN_WORKER_NAME") or f"{socket.gethostname()}.{os.getpid()}"
        stop = threading.Event()
        reaper = threading.Thread(target=reaper_loop, args=(app, stop), name="build-reaper", daemon=True)
        reaper.start()
        from app.tasks.webhooks import sweeper_loop

        threading.Thread(target=sweeper_loop, args=(app, stop), name="webhook-sweeper", daemon=True).start()
        worker = Worker(argv or QUEUES, connection=redis.client, serializer=JSONSerializer, name=name)
        try:
            worker.work(with_scheduler=True)
        finally:
            stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
