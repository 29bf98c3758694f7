"""RQ jobs: `run_build(build_id, attempt)` and `run_tests(test_run_id)`. Ids in, database out.

Both are safe to run twice: a job for a build that is not `queued` (already running elsewhere, finished,
cancelled) or for a stale attempt does nothing.
"""
from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

from flask import current_app
from rq import get_current_job

from app.extensions import db
from app.models import Build, TestCase, TestRun
from app.models.base import parse_uuid, utcnow
from app.services import audit, buildlogs, buildrun

log = logging.getLogger("kiln.tasks")
TEST_PROGRESS_START = 90  # the image tests take the last tenth of the bar


def _fresh_connections() -> None:
    # RQ forks a work horse per job: connections inherited from the parent must not be shared with it.
    db.engine.dispose(close=False)


def _worker_name() -> str:
    job = get_current_job()
    name = getattr(job, "worker_name", None) if job is not None else None
    import os
    import socket

    return name or f"{socket.gethostname()}.{os.getpid()}"


class Supervisor:
    """Heartbeat + cancel watch for one running build, on a daemon thread.

    The heartbeat key's TTL is how the reaper tells a dead worker from a slow build. The cancel key is
    set by the API; seeing it sets the engine's cancel Event, and the engine kills its process groups.
    """

    def __init__(self, app, build_id, worker_name: str):
        self.app = app
        self.build_id = build_id
        self.worker_name = worker_name
        self.cancel = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"build-{build_id}-supervisor", daemon=True)

    def __enter__(self) -> "Supervisor":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        with self.app.app_context():
            interval = float(current_app.config["KILN_BUILD_HEARTBEAT_INTERVAL"])
            last_beat = 0.0
            while not self._stop.is_set():
                try:
                    now = time.monotonic()
                    if now - last_beat >= interval:
                        buildrun.heartbeat(self.build_id, self.worker_name)
                        last_beat = now
                    if not self.cancel.is_set() and buildrun.cancel_requested(self.build_id):
                        buildlogs.append(self.build_id, None, "warning", "cancel requested; stopping the build")
                        self.cancel.set()
                except Exception:  # noqa: BLE001 - a Redis blip must not kill the supervisor
                    log.exception("build %s supervisor", self.build_id)
                self._stop.wait(0.5)


class WorkerEvents:
    """Engine callbacks -> Redis log stream (every line) and the database (stages, progress)."""

    def __init__(self, build: Build, scale: float):
        self.build = build
        self.scale = scale
        self.lock = threading.Lock()  # engine output may come from reader threads

    def log(self, stage: str, level: str, message: str) -> None:
        with self.lock:
            buildlogs.append(self.build.id, stage, level, message)

    def progress(self, stage: str, percent: int, message: str = "") -> None:
        with self.lock:
            buildrun.set_progress(self.build, int(percent * self.scale))
            if message:
                buildlogs.append(self.build.id, stage, "info", f"{message} ({percent}%)")

    def stage(self, stage: str, status: str) -> None:
        with self.lock:
            buildrun.set_stage(self.build, stage, status)
            buildlogs.append(self.build.id, stage, "info" if status != "failed" else "error", f"stage {stage}: {status}")


def _engine_settings():
    from app.engine.settings import EngineSettings

    return EngineSettings.from_config(current_app.config)


def run_build(build_id: str, attempt: int = 1) -> str:
    _fresh_connections()
    build = db.session.get(Build, parse_uuid(build_id))
    if build is None or build.status != "queued" or build.attempt != int(attempt):
        return "skipped"
    worker = _worker_name()
    if buildrun.cancel_requested(build.id) or not buildrun.begin_attempt(build, worker):
        return "skipped"
    app = current_app._get_current_object()
    buildlogs.append(build.id, None, "info", f"attempt {build.attempt} started on {worker}")
    with Supervisor(app, build.id, worker) as supervisor:
        try:
            return _run(build, supervisor.cancel)
        finally:
            db.session.rollback()


def _run(build: Build, cancel: threading.Event) -> str:
    from app.engine.pipeline import BuildCancelled, BuildError, BuildTimeout, build as engine_build

    timeout = max(60, int(current_app.config["KILN_BUILD_JOB_TIMEOUT"]) - 120)
    out_dir = buildrun.build_dir(build)
    events = WorkerEvents(build, scale=TEST_PROGRESS_START / 100)
    started = time.monotonic()
    try:
        result = engine_build(build.recipe, out_dir, build.formats, events=events, cancel=cancel, timeout=timeout,
                              settings=_engine_settings())
    except BuildCancelled:
        buildrun.finish_cancelled(build)
        return "cancelled"
    except BuildTimeout as err:
        buildlogs.append(build.id, err.stage, "error", f"build timed out after {timeout} s")
        return buildrun.fail_attempt(build, f"The build took longer than {timeout // 60} minutes",
                                     failure_class="infrastructure", code="timeout", stage=err.stage)
    except BuildError as err:
        buildlogs.append(build.id, err.stage, "error", err.reason)
        if cancel.is_set():
            buildrun.finish_cancelled(build)
            return "cancelled"
        return buildrun.fail_attempt(build, err.reason, failure_class="user_error" if err.user_error else "infrastructure",
                                     code="user_error" if err.user_error else "build_error", stage=err.stage,
                                     retryable=not err.user_error)
    except Exception as err:  # noqa: BLE001 - includes RQ's job timeout; the build must end, not hang
        log.exception("build %s crashed", build.id)
        buildlogs.append(build.id, build.stage, "error", f"internal error: {err!r}")
        code = "timeout" if type(err).__name__ == "JobTimeoutException" else "internal_error"
        return buildrun.fail_attempt(build, f"Internal error: {err}", failure_class="infrastructure", code=code,
                                     retryable=code != "timeout")
    db.session.refresh(build)
    build.cached = bool(result.cached)
    buildrun.record_artifacts(build, result.artifacts)
    db.session.commit()
    buildlogs.append(build.id, "evidence", "info",
                     f"build finished in {time.monotonic() - started:.1f} s{' (cached result)' if result.cached else ''}")
    if cancel.is_set():
        buildrun.finish_cancelled(build)
        return "cancelled"
    return _test_phase(build, cancel)


def _test_phase(build: Build, cancel: threading.Event) -> str:
    from app.services.builds import transition
    from app.services.errors import Conflict

    try:
        transition(build, "testing", stage="test", stage_display="Image Tests", progress=TEST_PROGRESS_START)
    except Conflict:
        db.session.rollback()
        buildrun.finish_cancelled(build)
        return "cancelled"
    run = TestRun(build_id=build.id, status="running", kind="default", assertions=[], started_at=utcnow())
    db.session.add(run)
    db.session.commit()
    buildrun.set_stage(build, "test", "running")
    outcome = _execute_tests(build, run, [], include_defaults=True, cancel=cancel)
    if cancel.is_set() or outcome == "cancelled":
        buildrun.finish_cancelled(build)
        return "cancelled"
    if outcome == "error":
        return buildrun.fail_attempt(build, f"The image tests could not run: {run.error}",
                                     failure_class="infrastructure", code="test_error", stage="test", retryable=True)
    buildrun.set_stage(build, "test", "succeeded" if outcome == "passed" else "failed")
    if outcome == "failed":
        failures = [f"{c.description}: " + "; ".join(a.get("message") or a.get("type", "") for a in c.assertions
                                                     if a.get("result") in ("failed", "error"))
                    for c in run.cases if c.status == "failed"]
        return buildrun.fail_attempt(build, "Image tests failed: " + " | ".join(failures)[:2000],
                                     failure_class="user_error", code="tests_failed", stage="test")
    return "succeeded" if buildrun.succeed(build) else "skipped"


def _execute_tests(build: Build, run: TestRun, assertions: list, *, include_defaults: bool,
                   cancel: threading.Event) -> str:
    """Run the image tests for `run`, store cases and result; returns passed|failed|error|cancelled."""
    from app.engine.testing import run_image_tests
    from app.services.builds import artifact_file

    artifact = build.primary_artifact()
    work = Path(current_app.config["KILN_DATA_DIR"]) / "tmp" / f"tests-{run.id}"

    def test_log(level: str, message: str) -> None:
        buildlogs.append(build.id, "test", level, message)

    try:
        if artifact is None:
            raise RuntimeError(f"no {build.primary_format} artifact to test")
        report = run_image_tests(artifact_file(artifact), artifact.kind, build.recipe, extra_assertions=assertions or None,
                                 include_defaults=include_defaults, work_dir=work, log=test_log, cancel=cancel,
                                 boot_timeout=float(current_app.config["KILN_TEST_BOOT_TIMEOUT"]))
    except Exception as err:  # noqa: BLE001 - the runner failing is an infrastructure problem, not a test result
        log.exception("tests for build %s", build.id)
        db.session.rollback()
        run.status, run.error, run.finished_at = ("cancelled" if cancel.is_set() else "error"), str(err), utcnow()
        db.session.commit()
        return "cancelled" if cancel.is_set() else "error"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    body = report.to_dict()
    run.result = body
    for position, case in enumerate(body["tests"]):
        db.session.add(TestCase(test_run_id=run.id, position=position, description=case["description"],
                                status=case["status"], duration=case["duration"], assertions=case["assertions"]))
    run.status, run.finished_at = body["status"], utcnow()
    audit.emit("test.completed", org_id=build.org_id, entity_type="build", entity_id=build.id,
               payload={"buildId": build.id, "testRunId": run.id, "kind": run.kind, "status": run.status,
                        "failed": [c["description"] for c in body["tests"] if c["status"] == "failed"]})
    db.session.commit()
    return "cancelled" if cancel.is_set() else run.status


def run_tests(test_run_id: str) -> str:
    """Custom assertions against an already built image (POST /builds/{id}/tests)."""
    _fresh_connections()
    run = db.session.get(TestRun, parse_uuid(test_run_id))
    if run is None or run.status != "queued":
        return "skipped"
    run.status, run.started_at = "running", utcnow()
    db.session.commit()
    build = run.build
    buildlogs.append(build.id, "test", "info", f"custom test run {run.id}: {len(run.assertions)} assertion(s)")
    return _execute_tests(build, run, list(run.assertions), include_defaults=False, cancel=threading.Event())


def build_job_failed(job, connection, exc_type, exc_value, traceback) -> None:
    """RQ failure callback (job timeout, a crash outside run_build's own handling). Never overwrites a
    finished build: fail_attempt re-reads the row and does nothing for a terminal one."""
    build = db.session.get(Build, parse_uuid(job.args[0]))
    attempt = int(job.args[1]) if len(job.args) > 1 else 1
    # RQ may report an abandoned job of an earlier attempt long after the reaper moved the build on.
    if build is None or build.is_terminal or build.attempt != attempt:
        return
    timed_out = exc_type is not None and exc_type.__name__ == "JobTimeoutException"
    buildrun.fail_attempt(build, "The build job timed out" if timed_out else f"The build job failed: {exc_value}",
                          failure_class="infrastructure", code="timeout" if timed_out else "job_failed",
                          retryable=not timed_out)


def test_job_failed(job, connection, exc_type, exc_value, traceback) -> None:
    run = db.session.get(TestRun, parse_uuid(job.args[0]))
    if run is None or run.status not in ("queued", "running"):
        return
    run.status, run.error, run.finished_at = "error", f"The test job failed: {exc_value}", utcnow()
    db.session.commit()


def reaper_loop(app, stop: threading.Event) -> None:
    """Run by every worker on a thread: find builds whose worker died (see buildrun.reap_lost_builds)."""
    with app.app_context():
        interval = float(app.config["KILN_BUILD_REAPER_INTERVAL"])
        while not stop.wait(interval):
            try:
                for build_id, outcome in buildrun.reap_lost_builds():
                    log.warning("reaper: build %s %s", build_id, outcome)
            except Exception:  # noqa: BLE001 - keep reaping after a transient DB/Redis error
                log.exception("reaper pass failed")
                db.session.rollback()
            finally:
                db.session.remove()

