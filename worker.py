"""An RQ worker for Kiln's queues, inside the app context (jobs take ids and write to the database).

Before it takes a job, a worker claims its scratch directory, reclaims what dead workers left behind
(their processes, mounts and temp trees) and reaps once; then, beside the jobs, it runs the reaper on a
thread: builds whose worker died (no heartbeat) are marked `worker_lost` and retried, whichever worker is
left alive notices first. Requests never do this. If Redis goes away, RQ's loop starts again once it is back.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from flask import current_app
from rq import Worker
from rq.serializers import JSONSerializer

from app import create_app, queues
from app.extensions import db, redis
from app.services.builds import reaper as build_reaper
from app.services.builds import scratch
from app.services.ops import backups
from app.services.ops import workers as factory_workers

QUEUES = list(queues.QUEUE_NAMES)


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


def heartbeat_loop(app, name: str, worker_queues: list[str], stop: threading.Event) -> None:
    """Register this worker (what it can build, KVM or TCG, free disk, cores), then heartbeat until it stops;
    a clean stop removes the entry, so only a worker that died shows as lost."""
    log = logging.getLogger("kiln.worker")
    with app.app_context():
        entry = None
        try:
            while entry is None and not stop.is_set():
                try:
                    entry = factory_workers.register(name, worker_queues, factory_workers.capabilities(app.config))
                except Exception:  # noqa: BLE001 - Redis down at start: try again next beat
                    log.exception("worker registration failed")
                    stop.wait(float(app.config["KILN_WORKER_HEARTBEAT_INTERVAL"]))
            while not stop.wait(float(app.config["KILN_WORKER_HEARTBEAT_INTERVAL"])):
                try:
                    factory_workers.heartbeat(entry)
                except Exception:  # noqa: BLE001 - a transient Redis error must not end the heartbeats
                    log.exception("worker heartbeat failed")
        finally:
            if entry is not None:
                try:
                    factory_workers.unregister(name)
                except Exception:  # noqa: BLE001 - Redis gone: the entry turns lost on its own
                    log.exception("worker unregistration failed")


def main(argv: list[str]) -> int:
    app = create_app()
    with app.app_context():
        name = os.environ.get("KILN_WORKER_NAME") or f"{socket.gethostname()}.{os.getpid()}"
        for item_id, outcome in build_reaper.start_worker(name):
            app.logger.warning("worker start: %s %s", item_id, outcome)
        backups.ensure_schedule()
        db.session.remove()
        stop = threading.Event()
        reaper = threading.Thread(target=reaper_loop, args=(app, stop), name="build-reaper", daemon=True)
        reaper.start()
        from app.tasks.webhooks import sweeper_loop

        threading.Thread(target=sweeper_loop, args=(app, stop), name="webhook-sweeper", daemon=True).start()
        from app.tasks.billing import schedule_cycle

        # The hourly billing cycle (token periods, artifact retention) runs from this worker's scheduler.
        schedule_cycle()
        worker_queues = argv or QUEUES
        heartbeat = threading.Thread(target=heartbeat_loop, args=(app, name, worker_queues, stop),
                                     name="worker-heartbeat", daemon=True)
        heartbeat.start()
        try:
            work(worker_queues, name)
        finally:
            stop.set()
            heartbeat.join(timeout=5)
    return 0


def _redis_answers() -> bool:
    try:
        return bool(redis.client.ping())
    except RedisError:
        return False


class KilnWorker(Worker):
    """RQ's worker, remembering a stop request (SIGTERM/SIGINT): RQ ends its loop the same way for a stop
    request while idle and for an error, and only the error should make `work` start it again."""

    stop_signalled = False

    def request_stop(self, signum, frame):
        self.stop_signalled = True
        super().request_stop(signum, frame)


def work(queues: list[str], name: str) -> None:
    """RQ's loop, started again after a Redis outage: RQ gives up (and quits) on a connection error outside
    its job fetch, but a restarted Redis should not need every worker restarted by hand."""
    log = logging.getLogger("kiln.worker")
    while True:
        # The started job's heartbeat as often as a build's: the reaper re-enqueues a queued build whose job's
        # worker died before the build began (app.queues.job_is_live).
        beat = max(1, int(float(current_app.config["KILN_BUILD_HEARTBEAT_INTERVAL"])))
        worker = KilnWorker(queues, connection=redis.client, serializer=JSONSerializer, name=name,
                            job_monitoring_interval=beat)
        try:
            worker.work(with_scheduler=True)
        except (RedisConnectionError, RedisTimeoutError):
            pass  # RQ's own teardown could not reach Redis either
        if worker.stop_signalled:
            return  # SIGTERM/SIGINT: RQ finished the job at hand (warm shutdown)
        # A worker that is not bursting only ends on a stop request or an error it could not handle.
        log.warning("RQ stopped taking jobs after an error; taking them again once Redis answers")
        while not _redis_answers():
            time.sleep(1)
        time.sleep(1)
        try:
            worker.register_death()  # its registration outlived it: a new one under the same name needs it marked
        except RedisError:
            continue


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
