"""What a worker does with one attempt of a build, and with a custom test run.

The database is the source of truth: every change names the attempt it belongs to and goes through
`lifecycle.transition` (a conditional UPDATE), so a late writer — an attempt the reaper already re-queued,
a worker finishing after a cancel, a failure callback — never overwrites what came after it. While an
attempt runs, a supervisor thread beats its heartbeat, watches the cancel flag, and stops the engine when
the attempt is no longer the build's current one.
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import select, update

from app import queues
from app.engine.pipeline import BuildCancelled, BuildError, BuildTimeout, DiskFull, build as engine_build
from app.engine.settings import EngineSettings
from app.engine.testing import run_image_tests
from app.engine.testing.snapshots import SnapshotStore
from app.engine.testing.vm import VMSettings
from app.extensions import db
from app.models import Build, BuildArtifact, BuildStage, TestCase, TestRun
from app.models.base import isoformat, utcnow
from app.models.builds import ACTIVE_STATUSES
from app.services import audit
from app.services.builds import files, logs, results, scratch, signals
from app.services.builds.lifecycle import close_running_stages, transition
from app.services.builds.plan import stage_display
from app.services.errors import Conflict

log = logging.getLogger("kiln.builds")
TEST_PROGRESS_START = 90  # the image tests take the last tenth of the bar


# Ownership and supervision -------------------------------------------------------------------------

def owns(build_id, attempt: int) -> bool:
    """Whether `attempt` is still the build's running attempt (read fresh from the database)."""
    row = db.session.execute(select(Build.status, Build.attempt).where(Build.id == build_id)).first()
    return row is not None and row.status in ACTIVE_STATUSES and row.attempt == attempt


class Supervisor:
    """A daemon thread beside a running job: it beats `heartbeat_key` every KILN_BUILD_HEARTBEAT_INTERVAL
    and asks `should_stop()` (cancel requested, attempt superseded); a reason sets `cancel`, which the
    engine and the test runner obey by killing their process groups."""

    def __init__(self, app, heartbeat_key: str, worker_name: str, should_stop: Callable[[], str | None],
                 on_stop: Callable[[str], None] | None = None):
        self.app = app
        self.on_stop = on_stop
        self.heartbeat_key = heartbeat_key
        self.worker_name = worker_name
        self.should_stop = should_stop
        self.cancel = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"supervisor-{heartbeat_key}", daemon=True)

    def __enter__(self) -> "Supervisor":
        with self.app.app_context():
            signals.beat(self.heartbeat_key, self.worker_name)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self.app.app_context():
            try:
                signals.clear(self.heartbeat_key)
            except RedisError:
                log.warning("heartbeat %s not cleared (Redis unreachable); it expires on its own", self.heartbeat_key)

    def _loop(self) -> None:
        with self.app.app_context():
            interval = float(current_app.config["KILN_BUILD_HEARTBEAT_INTERVAL"])
            last_beat = time.monotonic()
            while not self._stop.wait(0.5):
                try:
                    if time.monotonic() - last_beat >= interval:
                        signals.beat(self.heartbeat_key, self.worker_name)
                        last_beat = time.monotonic()
                    if not self.cancel.is_set():
                        reason = self.should_stop()
                        if reason:
                            try:
                                if self.on_stop is not None:
                                    self.on_stop(reason)  # before the engine stops, so the line is archived
                            finally:
                                self.cancel.set()
                except RedisError as err:  # an outage: the heartbeat resumes when Redis is back
                    log.warning("supervisor of %s: Redis unreachable: %s", self.heartbeat_key, err)
                except Exception:  # noqa: BLE001 - a database blip must not kill the supervisor
                    log.exception("supervisor of %s", self.heartbeat_key)
                finally:
                    db.session.remove()


class WorkerEvents:
    """Engine callbacks -> the build's log (every line) and the database (stages, progress)."""

    def __init__(self, build: Build, attempt: int, scale: float):
        self.build = build
        self.attempt = attempt
        self.scale = scale
        self.lock = threading.Lock()  # engine output may come from reader threads

    def log(self, stage: str, level: str, message: str) -> None:
        with self.lock:
            logs.append(self.build, stage, level, message)

    def progress(self, stage: str, percent: int, message: str = "") -> None:
        with self.lock:
            set_progress(self.build, self.attempt, int(percent * self.scale))
            if message:
                logs.append(self.build, stage, "info", f"{message} ({percent}%)")

    def stage(self, stage: str, status: str) -> None:
        with self.lock:
            set_stage(self.build, self.attempt, stage, status)
            logs.append(self.build, stage, "info" if status != "failed" else "error", f"stage {stage}: {status}")


# Recording an attempt ------------------------------------------------------------------------------

def begin_attempt(build: Build, attempt: int, worker_name: str) -> bool:
    """queued -> building for this worker; False when someone else got it, it was cancelled or moved on."""
    now = utcnow()
    try:
        transition(build, "building", for_attempt=attempt, started_at=now, worker_name=worker_name, stage="resolve",
                   stage_display=stage_display(build, "resolve"), progress=0, failure_reason=None,
                   failure_class=None, failure_code=None, failure_stage=None)
    except Conflict:
        db.session.rollback()
        return False
    for stage in build.stages:
        stage.status, stage.started_at, stage.finished_at, stage.duration = "pending", None, None, None
    db.session.commit()
    return True


def set_stage(build: Build, attempt: int, name: str, status: str) -> None:
    """The engine (or the test phase) reports a stage moving; the build row shows the running one."""
    if not owns(build.id, attempt):
        db.session.rollback()
        return
    stage = db.session.scalar(select(BuildStage).where(BuildStage.build_id == build.id, BuildStage.name == name))
    now = utcnow()
    if stage is not None:
        if status == "running":
            stage.started_at, stage.finished_at, stage.duration = now, None, None
        elif status in ("succeeded", "failed", "cancelled"):
            stage.finished_at = now
            if stage.started_at is not None:
                stage.duration = round((now - stage.started_at).total_seconds(), 2)
        stage.status = status
    if status == "running":
        db.session.execute(update(Build).where(Build.id == build.id, Build.attempt == attempt,
                                               Build.status.in_(ACTIVE_STATUSES))
                           .values(stage=name, stage_display=stage_display(build, name))
                           .execution_options(synchronize_session=False))
    db.session.commit()


def set_progress(build: Build, attempt: int, percent: int) -> None:
    percent = max(0, min(100, int(percent)))
    if percent == build.progress:
        return
    db.session.execute(update(Build).where(Build.id == build.id, Build.attempt == attempt,
                                           Build.status.in_(ACTIVE_STATUSES))
                       .values(progress=percent).execution_options(synchronize_session=False))
    db.session.commit()
    build.progress = percent


def record_artifacts(build: Build, artifacts) -> None:
    """Engine artifacts (already in the build's directory) become rows with paths relative to the root."""
    existing = {a.filename for a in build.artifacts}
    for artifact in artifacts:
        path = Path(artifact.path).resolve()
        if path.name in existing:
            continue
        db.session.add(BuildArtifact(build_id=build.id, kind=artifact.kind, filename=path.name,
                                     path=files.relative_path(path), size=artifact.size, sha256=artifact.sha256))
    db.session.flush()


def archive_log(build: Build) -> None:
    """The whole log as build.log, a `log` artifact with its sha256 (kept current after custom test runs)."""
    archived = logs.archive(build)
    if archived is None:
        return
    path, size, sha = archived
    try:
        files.publish([path])
    except files.StorageError:
        # The build's state must still change; the log stays on this host and its download says it is missing.
        log.exception("build %s: the archived log was not uploaded", build.id)
    row = next((a for a in build.artifacts if a.kind == "log"), None)
    if row is None:
        db.session.add(BuildArtifact(build_id=build.id, kind="log", filename=path.name,
                                     path=files.relative_path(path), size=size, sha256=sha))
    else:
        row.size, row.sha256 = size, sha
    db.session.flush()


def succeed(build: Build, attempt: int) -> str:
    """'succeeded'; 'cancelled' when a cancel landed after the work was done but before the supervisor saw it
    (the build stays cancelled, and its stages and log are closed as for any cancel); 'skipped' otherwise."""
    try:
        transition(build, "succeeded", for_attempt=attempt, finished_at=utcnow(), progress=100)
    except Conflict:
        db.session.rollback()
        db.session.refresh(build)
        if build.status == "cancelled" and build.attempt == attempt:
            return finish_cancelled(build, attempt)
        return "skipped"
    close_running_stages(build, "succeeded")
    archive_log(build)
    db.session.commit()
    return "succeeded"


def fail_attempt(build: Build, attempt: int, reason: str, *, failure_class: str, code: str,
                 stage: str | None = None, retryable: bool = False) -> str:
    """End this attempt. Infrastructure failures are retried on the same build up to the max attempts;
    everything else fails the build at once. Returns 'retried', 'failed' or 'skipped' (the build is
    finished, or already on a later attempt)."""
    db.session.rollback()  # whatever the failed job left half-written is not ours to keep
    db.session.refresh(build)
    if build.is_terminal or build.attempt != attempt:
        return "skipped"
    now = utcnow()
    stage = stage or build.stage
    entry = {"attempt": build.attempt, "failureCode": code, "failureClass": failure_class, "failureReason": reason,
             "stage": stage, "worker": build.worker_name, "startedAt": isoformat(build.started_at),
             "finishedAt": isoformat(now)}
    history = list(build.attempts or []) + [entry]
    close_running_stages(build, "failed")
    try:
        if retryable and failure_class == "infrastructure" and attempt < int(current_app.config["KILN_BUILD_MAX_ATTEMPTS"]):
            next_attempt = attempt + 1
            transition(build, "queued", for_attempt=attempt, attempt=next_attempt, attempts=history, queued_at=now,
                       worker_name=None, progress=0, stage=None, stage_display=None, failure_reason=reason,
                       failure_class=failure_class, failure_code=code, failure_stage=stage)
            logs.append(build, stage, "warning",
                        f"attempt {attempt} failed ({code}: {reason}); retrying as attempt {next_attempt}")
            audit.record(None, "build.retry_scheduled", "build", build.id, org_id=build.org_id,
                         attempt=next_attempt, failure_code=code)
            build_id = build.id
            queues.after_commit(lambda: queues.enqueue_build(build_id, next_attempt))
            db.session.commit()
            return "retried"
        transition(build, "failed", for_attempt=attempt, finished_at=now, failure_reason=reason,
                   failure_class=failure_class, failure_code=code, failure_stage=stage, attempts=history)
    except Conflict:
        db.session.rollback()
        return "skipped"
    archive_log(build)
    db.session.commit()
    return "failed"


def finish_cancelled(build: Build, attempt: int) -> str:
    """The attempt stopped on a cancel: the row is normally `cancelled` already (the API set it); keep the
    log. An attempt that was superseded instead leaves the build to the attempt that replaced it."""
    db.session.rollback()
    db.session.refresh(build)
    if build.attempt != attempt:
        return "skipped"
    # Said here as well as by the supervisor: a cancel that lands as the attempt finishes is never seen by it.
    logs.append(build, None, "info", f"attempt {attempt} stopped: the build was cancelled")
    close_running_stages(build, "cancelled")
    if build.status in ("queued", "building", "testing"):
        try:
            transition(build, "cancelled", for_attempt=attempt, finished_at=utcnow(),
                       cancel_requested_at=build.cancel_requested_at or utcnow(), failure_reason="Cancelled")
        except Conflict:
            db.session.rollback()
    archive_log(build)
    db.session.commit()
    return "cancelled"


# Running an attempt --------------------------------------------------------------------------------

def engine_settings(worker_name: str) -> EngineSettings:
    """The engine's settings for this worker: the app's data dir, temp trees in the worker's scratch."""
    settings = EngineSettings.from_config(current_app.config)
    directory = scratch.scratch_dir(worker_name)
    directory.mkdir(parents=True, exist_ok=True)
    return dataclasses.replace(settings, scratch_dir=directory)


def run_attempt(build: Build, attempt: int, worker_name: str) -> str:
    """Attempt `attempt` of `build` on this worker, from queued to its end; returns what became of it:
    succeeded, failed, retried, cancelled or skipped (not ours to run)."""
    if build.status != "queued" or build.attempt != attempt or signals.cancel_requested(build.id):
        return "skipped"
    if not begin_attempt(build, attempt, worker_name):
        return "skipped"
    app = current_app._get_current_object()
    build_id = build.id

    interval = float(current_app.config["KILN_BUILD_HEARTBEAT_INTERVAL"])
    checked = [time.monotonic()]

    def should_stop() -> str | None:
        if signals.cancel_requested(build_id):
            return "cancel requested; stopping the build"
        if time.monotonic() - checked[0] >= interval:  # the flag is cheap to read; the row once a beat
            checked[0] = time.monotonic()
            if not owns(build_id, attempt):
                return f"attempt {attempt} is no longer the build's current attempt; stopping it"
        return None

    # The supervisor's thread has its own session: it logs through the build's ids, not the row.
    log_target = SimpleNamespace(id=build.id, org_id=build.org_id)
    logs.append(build, None, "info", f"attempt {attempt} started on {worker_name}")
    with Supervisor(app, signals.heartbeat_key(build.id, attempt), worker_name, should_stop,
                    on_stop=lambda reason: logs.append(log_target, None, "warning", reason)) as supervisor:
        try:
            return _build_and_test(build, attempt, worker_name, supervisor.cancel)
        finally:
            db.session.rollback()
            try:
                db.session.refresh(build)
                files.release_local(build)  # a finished build's files are in the shared store now
            except Exception:  # noqa: BLE001 - the attempt's outcome stands; a leftover copy is only disk space
                log.exception("build %s: local files not released", build_id)


def _build_and_test(build: Build, attempt: int, worker_name: str, cancel: threading.Event) -> str:
    timeout = max(60, int(current_app.config["KILN_BUILD_JOB_TIMEOUT"]) - 120)
    events = WorkerEvents(build, attempt, scale=TEST_PROGRESS_START / 100)
    started = time.monotonic()
    settings = engine_settings(worker_name)
    if results.materialize(build, settings, settings.tmp_dir):
        logs.append(build, "resolve", "info", f"this recipe's result is in {files.store().describe()}; "
                                              f"fetched it in {time.monotonic() - started:.1f} s")
    try:
        result = engine_build(build.recipe, files.build_dir(build), build.formats, events=events, cancel=cancel,
                              timeout=timeout, settings=settings,
                              package_lock=build.package_lock["packages"] if build.package_lock else None,
                              locked_at=build.package_lock.get("builtAt") if build.package_lock else None)
    except BuildCancelled:
        return finish_cancelled(build, attempt)
    except BuildTimeout as err:
        logs.append(build, err.stage, "error", f"build timed out after {timeout} s")
        return fail_attempt(build, attempt, f"The build took longer than {timeout // 60} minutes",
                            failure_class="infrastructure", code="timeout", stage=err.stage)
    except DiskFull as err:
        # Not retried: the next attempt would meet the same full disk. A user retries once space is freed.
        logs.append(build, err.stage, "error", err.reason)
        return fail_attempt(build, attempt, err.reason, failure_class="infrastructure", code="disk_full",
                            stage=err.stage)
    except BuildError as err:
        logs.append(build, err.stage, "error", err.reason)
        if cancel.is_set():
            return finish_cancelled(build, attempt)
        return fail_attempt(build, attempt, err.reason,
                            failure_class="user_error" if err.user_error else "infrastructure",
                            code="user_error" if err.user_error else "build_error", stage=err.stage,
                            retryable=not err.user_error)
    except Exception as err:  # noqa: BLE001 - includes RQ's job timeout; the build must end, not hang
        log.exception("build %s crashed", build.id)
        logs.append(build, build.stage, "error", f"internal error: {err!r}")
        code = "timeout" if type(err).__name__ == "JobTimeoutException" else "internal_error"
        return fail_attempt(build, attempt, f"Internal error: {err}", failure_class="infrastructure", code=code,
                            retryable=code != "timeout")
    db.session.refresh(build)
    if not owns(build.id, attempt):
        return finish_cancelled(build, attempt)
    try:
        storing = time.monotonic()
        copied = results.publish_files(build, result.artifacts, cached=result.cached)
        results.publish(build, result.artifacts)
        if files.store().shared:
            logs.append(build, "evidence", "info", f"stored {len(result.artifacts)} file(s) in {files.store().describe()} "
                                                   f"in {time.monotonic() - storing:.1f} s"
                                                   + (f" ({copied} copied inside the store)" if copied else ""))
    except files.StorageError as err:
        logs.append(build, "evidence", "error", f"storing the files failed: {err}")
        return fail_attempt(build, attempt, f"Storing the build's files failed: {err}", failure_class="infrastructure",
                            code="storage_error", stage="evidence", retryable=True)
    build.cached = bool(result.cached)
    record_artifacts(build, result.artifacts)
    db.session.commit()
    logs.append(build, "evidence", "info",
                f"build finished in {time.monotonic() - started:.1f} s{' (cached result)' if result.cached else ''}")
    if cancel.is_set():
        return finish_cancelled(build, attempt)
    return _test_phase(build, attempt, worker_name, cancel)


def _test_phase(build: Build, attempt: int, worker_name: str, cancel: threading.Event) -> str:
    """The default image tests decide the build: passed succeeds it, failed fails it as the recipe's
    problem, a runner that could not run is an infrastructure failure (retried)."""
    try:
        transition(build, "testing", for_attempt=attempt, stage="test", stage_display="Image Tests",
                   progress=TEST_PROGRESS_START)
    except Conflict:
        return finish_cancelled(build, attempt)
    run = TestRun(build_id=build.id, status="running", kind="default", assertions=[], started_at=utcnow())
    db.session.add(run)
    db.session.commit()
    set_stage(build, attempt, "test", "running")
    outcome = execute_tests(build, run, worker_name, include_defaults=True, cancel=cancel)
    if cancel.is_set() or outcome == "cancelled":
        return finish_cancelled(build, attempt)
    if outcome == "error":
        return fail_attempt(build, attempt, f"The image tests could not run: {run.error}",
                            failure_class="infrastructure", code="test_error", stage="test", retryable=True)
    emulator = emulator_failure(run)
    if emulator is not None:
        return fail_attempt(build, attempt, f"The test VM could not boot the image: {emulator}"[:2000],
                            failure_class="infrastructure", code="test_error", stage="test", retryable=True)
    set_stage(build, attempt, "test", "succeeded" if outcome == "passed" else "failed")
    if outcome == "failed":
        failures = [f"{c.description}: " + "; ".join(a.get("message") or a.get("type", "") for a in c.assertions
                                                     if a.get("result") in ("failed", "error"))
                    for c in run.cases if c.status == "failed"]
        return fail_attempt(build, attempt, "Image tests failed: " + " | ".join(failures)[:2000],
                            failure_class="user_error", code="tests_failed", stage="test")
    return succeed(build, attempt)


def emulator_failure(run: TestRun) -> str | None:
    """The boot check's message when it ended in `error`: the guest died before its init system on two fresh
    VMs in different ways, or QEMU itself failed both times. That points at the emulator or the host, not at
    the recipe, so the attempt is an infrastructure failure (retried), not the image's test failure."""
    for case in run.cases:
        for assertion in case.assertions or []:
            if assertion.get("type") == "boots" and assertion.get("result") == "error":
                return assertion.get("message") or "the emulator failed"
    return None


def execute_tests(build: Build, run: TestRun, worker_name: str, *, include_defaults: bool,
                  cancel: threading.Event) -> str:
    """Run the image tests for `run`, store cases and result; returns passed|failed|error|cancelled."""
    artifact = build.primary_artifact()
    work = scratch.scratch_dir(worker_name) / f"tests-{run.id}"

    def test_log(level: str, message: str) -> None:
        logs.append(build, "test", level, message)

    try:
        if artifact is None:
            raise RuntimeError(f"no {build.primary_format} artifact to test")
        # A bad KILN_TEST_VM_* value ends the run as an error naming it.
        vm_settings = VMSettings.from_config(current_app.config)
        snapshots = SnapshotStore(engine_settings(worker_name))
        report = run_image_tests(files.fetch_artifact(artifact), artifact.kind, build.recipe,
                                 extra_assertions=list(run.assertions) or None, include_defaults=include_defaults,
                                 work_dir=work, log=test_log, cancel=cancel,
                                 boot_timeout=float(current_app.config["KILN_TEST_BOOT_TIMEOUT"]),
                                 vm_settings=vm_settings, snapshots=snapshots)
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


# Custom test runs ----------------------------------------------------------------------------------

def run_test_run(run: TestRun, worker_name: str) -> str:
    """Custom assertions against an already built image (POST /builds/{id}/tests), with a heartbeat like a
    build's; its lines join the build's log, and the archived log is brought up to date at the end."""
    if run.status != "queued":
        return "skipped"
    run.status, run.started_at = "running", utcnow()
    db.session.commit()
    build = run.build
    app = current_app._get_current_object()
    logs.append(build, "test", "info", f"custom test run {run.id}: {len(run.assertions)} assertion(s)")
    try:
        with Supervisor(app, signals.test_run_heartbeat_key(run.id), worker_name, lambda: None) as supervisor:
            outcome = execute_tests(build, run, worker_name, include_defaults=False, cancel=supervisor.cancel)
    finally:
        db.session.rollback()
        logs.append(build, "test", "info", f"custom test run {run.id}: {run.status}")
        if build.is_terminal:
            archive_log(build)
            db.session.commit()
            files.release_local(build)
    return outcome


def end_test_run(run: TestRun, error: str) -> bool:
    """A test run whose job failed or whose worker stopped: `error`, unless it already ended."""
    db.session.refresh(run)
    if run.status not in ("queued", "running"):
        return False
    run.status, run.error, run.finished_at = "error", error, utcnow()
    logs.append(run.build, "test", "error", f"custom test run {run.id}: {error}")
    if run.build.is_terminal:
        archive_log(run.build)
    db.session.commit()
    return True
