"""RQ jobs: `run_build(build_id, attempt)` and `run_tests(test_run_id)`, and their failure callbacks.

Each loads its row by id and hands it to `app.services.builds.run`, which records everything. Both are
safe to run twice: a job for a build that is not `queued` at that attempt, or for a test run that is not
`queued`, does nothing.
"""
from __future__ import annotations

import os
import socket

from rq import get_current_job

from app.extensions import db
from app.models import Build, TestRun
from app.models.base import parse_uuid
from app.services.builds import run


def _fresh_connections() -> None:
    # RQ forks a work horse per job: connections inherited from the parent must not be shared with it.
    db.engine.dispose(close=False)


def _worker_name() -> str:
    job = get_current_job()
    name = getattr(job, "worker_name", None) if job is not None else None
    return name or f"{socket.gethostname()}.{os.getpid()}"


def run_build(build_id: str, attempt: int = 1) -> str:
    _fresh_connections()
    build = db.session.get(Build, parse_uuid(build_id))
    if build is None:
        return "skipped"
    return run.run_attempt(build, int(attempt), _worker_name())


def run_tests(test_run_id: str) -> str:
    _fresh_connections()
    test_run = db.session.get(TestRun, parse_uuid(test_run_id))
    if test_run is None:
        return "skipped"
    return run.run_test_run(test_run, _worker_name())


def build_job_failed(job, connection, exc_type, exc_value, traceback) -> None:
    """RQ failure callback (job timeout, a crash outside run_build's own handling). fail_attempt does
    nothing for a finished build or one already on a later attempt."""
    build = db.session.get(Build, parse_uuid(job.args[0]))
    if build is None:
        return
    attempt = int(job.args[1]) if len(job.args) > 1 else 1
    timed_out = exc_type is not None and exc_type.__name__ == "JobTimeoutException"
    run.fail_attempt(build, attempt, "The build job timed out" if timed_out else f"The build job failed: {exc_value}",
                     failure_class="infrastructure", code="timeout" if timed_out else "job_failed",
                     retryable=not timed_out)


def test_job_failed(job, connection, exc_type, exc_value, traceback) -> None:
    test_run = db.session.get(TestRun, parse_uuid(job.args[0]))
    if test_run is not None:
        run.end_test_run(test_run, f"The test job failed: {exc_value}")
