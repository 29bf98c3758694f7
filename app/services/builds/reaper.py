"""Noticing work whose worker died. Runs in the workers only (at start and on a timer), never in a request.

- A building/testing attempt whose heartbeat expired fails as `worker_lost` (and is retried as the next
  attempt); a running custom test run without a heartbeat ends as an error.
- A queued build or test run whose RQ job vanished (Redis lost it) is enqueued again.
- At a worker's start: what dead workers left on disk (processes, mounts, temp trees) is reclaimed.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from app import queues
from app.extensions import db
from app.models import Build, TestRun
from app.models.base import utcnow
from app.models.builds import ACTIVE_STATUSES
from app.services.builds import scratch, signals
from app.services.builds.run import end_test_run, fail_attempt

log = logging.getLogger("kiln.builds")
QUEUED_GRACE = timedelta(seconds=60)  # a job enqueued after commit may take a moment to show in Redis


def _silent_since_start(started_at) -> bool:
    ttl = int(current_app.config["KILN_BUILD_HEARTBEAT_TTL"])
    return started_at is None or utcnow() - started_at >= timedelta(seconds=ttl)


def reap_build(build: Build) -> str | None:
    """If the build's current attempt stopped heartbeating, fail it as worker_lost (and retry)."""
    if build.status not in ACTIVE_STATUSES or signals.alive(signals.heartbeat_key(build.id, build.attempt)):
        return None
    if not _silent_since_start(build.started_at):
        return None  # grace for an attempt that has only just started
    worker = build.worker_name or "unknown worker"
    log.warning("build %s attempt %s: no heartbeat from %s; marking worker_lost", build.id, build.attempt, worker)
    return fail_attempt(build, build.attempt, f"The worker running this build ({worker}) stopped responding",
                        failure_class="infrastructure", code="worker_lost", retryable=True)


def _test_run_alive(run: TestRun) -> bool:
    """A custom run beats its own heartbeat. A build's default run is part of an attempt and lives on that
    attempt's heartbeat: while the attempt that started it is testing, it is not lost; once that attempt is
    gone (reaped, finished, replaced by the next one), the run is."""
    if run.kind != "default":
        return signals.alive(signals.test_run_heartbeat_key(run.id))
    build = run.build
    return (build.status == "testing" and build.started_at is not None and run.started_at is not None
            and run.started_at >= build.started_at and signals.alive(signals.heartbeat_key(build.id, build.attempt)))


def reap_test_run(run: TestRun) -> bool:
    if run.status != "running" or _test_run_alive(run):
        return False
    if not _silent_since_start(run.started_at):
        return False
    return end_test_run(run, "The worker running this test run stopped responding (worker_lost)")


def reap() -> list[tuple[str, str]]:
    """One pass over running and queued work; returns (id, outcome) for everything it changed."""
    outcomes = []
    db.session.rollback()
    for build in db.session.scalars(select(Build).where(Build.status.in_(ACTIVE_STATUSES))).all():
        outcome = reap_build(build)
        if outcome:
            outcomes.append((str(build.id), outcome))
    for run in db.session.scalars(select(TestRun).where(TestRun.status == "running")).all():
        if reap_test_run(run):
            outcomes.append((str(run.id), "worker_lost"))
    stale = utcnow() - QUEUED_GRACE
    for build in db.session.scalars(select(Build).where(Build.status == "queued", Build.queued_at < stale)).all():
        if not queues.job_is_live(queues.build_job_id(build.id, build.attempt)):
            queues.enqueue_build(build.id, build.attempt)
            outcomes.append((str(build.id), "requeued"))
    for run in db.session.scalars(select(TestRun).where(TestRun.status == "queued", TestRun.created_at < stale)).all():
        if not queues.job_is_live(queues.test_run_job_id(run.id)):
            queues.enqueue_test_run(run.id)
            outcomes.append((str(run.id), "requeued"))
    db.session.commit()
    return outcomes


def start_worker(worker_name: str) -> list[tuple[str, str]]:
    """A worker starting: reclaim what dead workers left (one of the same name included), claim its own
    scratch space, reap once."""
    reclaimed = [(str(path), "reclaimed") for path in scratch.reclaim_dead()]
    scratch.claim(worker_name)
    return reclaimed + reap()
