"""RQ plumbing: the queues, idempotent enqueue, and run-after-commit. Services import this module; it
names the job functions of `app.tasks` by their dotted path only, so nothing here imports upward.

The database is the source of truth; a job only carries ids. Jobs are enqueued after the transaction that
made the row `queued` commits, so a worker never loads a row that is not there yet.
"""
from __future__ import annotations

from datetime import datetime, timezone

from flask import current_app
from rq import Callback, Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.extensions import db, redis

BUILDS_QUEUE = "builds"
TESTS_QUEUE = "tests"
# Every queue a default worker serves, in the order it takes jobs.
QUEUE_NAMES = ("builds", "tests", "webhooks", "default")
_LIVE = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}
_PENDING_KEY = "kiln_after_commit"


def get_queue(name: str) -> Queue:
    return Queue(name, connection=redis.client, serializer=JSONSerializer)


def fetch_job(job_id: str) -> Job | None:
    try:
        return Job.fetch(job_id, connection=redis.client, serializer=JSONSerializer)
    except NoSuchJobError:
        return None


def build_job_id(build_id, attempt: int) -> str:
    # Attempt 1 is the build id itself; automatic retries of the same build get their own job.
    return str(build_id) if attempt <= 1 else f"{build_id}-attempt{attempt}"


def _is_live(job: Job) -> bool:
    """Queued, scheduled, or started by a worker that still heartbeats it. A worker beats its started job every
    KILN_BUILD_HEARTBEAT_INTERVAL (worker.py); one that died after taking the job but before the build or test
    run began leaves it `started` for good, and the row `queued` with nothing to run it."""
    status = job.get_status(refresh=True)
    if status != JobStatus.STARTED or job.last_heartbeat is None:
        return status in _LIVE
    beat = job.last_heartbeat if job.last_heartbeat.tzinfo else job.last_heartbeat.replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - beat).total_seconds() < int(current_app.config["KILN_BUILD_HEARTBEAT_TTL"])


def job_is_live(job_id: str) -> bool:
    job = fetch_job(job_id)
    return job is not None and _is_live(job)


def _enqueue_once(queue_name: str, func: str, args: tuple, job_id: str, timeout: int, on_failure: str) -> Job:
    existing = fetch_job(job_id)
    if existing is not None:
        if _is_live(existing):
            return existing  # already queued or running: enqueueing again is a no-op
        existing.delete()
    return get_queue(queue_name).enqueue(
        func, args=args, job_id=job_id, job_timeout=timeout, result_ttl=24 * 3600, failure_ttl=7 * 24 * 3600,
        on_failure=Callback(on_failure), description=f"{func}{args}")


def enqueue_build(build_id, attempt: int) -> Job:
    return _enqueue_once(BUILDS_QUEUE, "app.tasks.builds.run_build", (str(build_id), attempt),
                         build_job_id(build_id, attempt), int(current_app.config["KILN_BUILD_JOB_TIMEOUT"]),
                         "app.tasks.builds.build_job_failed")


def test_run_job_id(test_run_id) -> str:
    return f"tests-{test_run_id}"


def enqueue_test_run(test_run_id) -> Job:
    return _enqueue_once(TESTS_QUEUE, "app.tasks.builds.run_tests", (str(test_run_id),), test_run_job_id(test_run_id),
                         int(current_app.config["KILN_TEST_JOB_TIMEOUT"]), "app.tasks.builds.test_job_failed")


def dequeue_build(build_id, attempt: int) -> None:
    """Take a queued build's job out of the queue (cancel before a worker picked it)."""
    job = fetch_job(build_job_id(build_id, attempt))
    if job is not None and job.get_status(refresh=True) in (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED):
        job.cancel()


def after_commit(fn) -> None:
    """Run `fn` once the current transaction commits (dropped if it rolls back)."""
    db.session.info.setdefault(_PENDING_KEY, []).append(fn)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session) -> None:
    callbacks = session.info.pop(_PENDING_KEY, [])
    for fn in callbacks:
        try:
            fn()
        except Exception:  # noqa: BLE001 - the row is committed; the reaper/start re-enqueues a lost job
            current_app.logger.exception("after-commit action failed")


@event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session) -> None:
    session.info.pop(_PENDING_KEY, None)


# The outbox consumers (webhooks, notification e-mails) ----------------------------------------------

WEBHOOKS_QUEUE = "webhooks"
JOB_TIMEOUT = 120  # a dispatch pass or one HTTP try; the HTTP timeouts are far shorter


def webhooks_queue() -> Queue:
    return get_queue(WEBHOOKS_QUEUE)


def enqueue_dispatch() -> None:
    """Fan out every unpublished outbox event (a no-op pass when another job got there first)."""
    webhooks_queue().enqueue("app.tasks.webhooks.dispatch_outbox", job_timeout=JOB_TIMEOUT, result_ttl=600,
                     failure_ttl=7 * 24 * 3600, description="dispatch outbox events")


def enqueue_delivery(delivery_id) -> None:
    webhooks_queue().enqueue("app.tasks.webhooks.run_delivery", args=(str(delivery_id),), job_timeout=JOB_TIMEOUT,
                     result_ttl=600, failure_ttl=7 * 24 * 3600, description=f"webhook delivery {delivery_id}")


def enqueue_emails(notification_ids) -> None:
    if notification_ids:
        webhooks_queue().enqueue("app.tasks.webhooks.send_notification_emails", args=([str(i) for i in notification_ids],),
                         job_timeout=JOB_TIMEOUT, result_ttl=600, failure_ttl=7 * 24 * 3600,
                         description="notification e-mails")
