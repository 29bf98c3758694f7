"""What a worker records while it runs a build, and the reaper that notices builds whose worker died.

The database is the source of truth: each state change is a conditional UPDATE through
`builds.transition`, so a late writer (a failure callback, a worker finishing after a cancel, the
reaper) never overwrites a finished build.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from app.extensions import db, redis
from app.models import Build, BuildArtifact, BuildStage
from app.models.base import isoformat, utcnow
from app.services import audit, buildlogs
from app.services.builds import (CANCEL_KEY, HEARTBEAT_KEY, artifacts_dir, artifacts_root, stage_display,
                                 transition)
from app.services.errors import Conflict
from app.tasks import queue

log = logging.getLogger("kiln.builds")


def heartbeat(build_id, worker_name: str) -> None:
    redis.client.set(HEARTBEAT_KEY.format(build_id), worker_name,
                     ex=int(current_app.config["KILN_BUILD_HEARTBEAT_TTL"]))


def heartbeat_alive(build_id) -> bool:
    return bool(redis.client.exists(HEARTBEAT_KEY.format(build_id)))


def clear_heartbeat(build_id) -> None:
    redis.client.delete(HEARTBEAT_KEY.format(build_id))


def cancel_requested(build_id) -> bool:
    return bool(redis.client.exists(CANCEL_KEY.format(build_id)))


def begin_attempt(build: Build, worker_name: str) -> bool:
    """queued -> building for this worker; False when someone else got it or it was cancelled."""
    heartbeat(build.id, worker_name)
    now = utcnow()
    try:
        transition(build, "building", started_at=now, worker_name=worker_name, stage="resolve",
                   stage_display=stage_display(build, "resolve"), progress=0, failure_reason=None,
                   failure_class=None, failure_code=None, failure_stage=None)
    except Conflict:
        db.session.rollback()
        clear_heartbeat(build.id)
        return False
    for stage in build.stages:
        stage.status, stage.started_at, stage.finished_at, stage.duration = "pending", None, None, None
    db.session.commit()
    return True


def set_stage(build: Build, name: str, status: str) -> None:
    """The engine (or the test phase) reports a stage moving; the build row shows the running one."""
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
    if status == "running" and build.status in ("building", "testing"):
        build.stage, build.stage_display = name, stage_display(build, name)
    db.session.commit()


def set_progress(build: Build, percent: int) -> None:
    percent = max(0, min(100, int(percent)))
    if percent != build.progress and not build.is_terminal:
        build.progress = percent
        db.session.commit()


def record_artifacts(build: Build, artifacts) -> None:
    """Engine artifacts (already in the build's directory) become rows with paths relative to the root."""
    root = artifacts_root().resolve()
    existing = {a.filename for a in build.artifacts}
    for artifact in artifacts:
        path = Path(artifact.path).resolve()
        if path.name in existing:
            continue
        db.session.add(BuildArtifact(build_id=build.id, kind=artifact.kind, filename=path.name,
                                     path=str(path.relative_to(root)), size=artifact.size, sha256=artifact.sha256))
    db.session.flush()


def archive_log(build: Build) -> None:
    """The whole log into build.log (a `log` artifact with its sha256) so it outlives the Redis stream."""
    archived = buildlogs.archive(build)
    if archived is None:
        return
    path, size, sha = archived
    row = next((a for a in build.artifacts if a.kind == "log"), None)
    rel = str(path.resolve().relative_to(artifacts_root().resolve()))
    if row is None:
        db.session.add(BuildArtifact(build_id=build.id, kind="log", filename=path.name, path=rel, size=size,
                                     sha256=sha))
    else:
        row.size, row.sha256, row.path = size, sha, rel
    db.session.flush()


def _close_running_stages(build: Build, status: str) -> None:
    now = utcnow()
    for stage in build.stages:
        if stage.status == "running":
            stage.status, stage.finished_at = status, now
            if stage.started_at is not None:
                stage.duration = round((now - stage.started_at).total_seconds(), 2)


def succeed(build: Build) -> bool:
    now = utcnow()
    try:
        transition(build, "succeeded", finished_at=now, progress=100)
    except Conflict:
        db.session.rollback()
        return False
    _close_running_stages(build, "succeeded")
    archive_log(build)
    db.session.commit()
    clear_heartbeat(build.id)
    return True


def fail_attempt(build: Build, reason: str, *, failure_class: str, code: str, stage: str | None = None,
                 retryable: bool = False) -> str:
    """End this attempt. Infrastructure failures are retried on the same build up to the max attempts;
    everything else fails the build at once. Returns 'retried', 'failed' or 'skipped' (already finished)."""
    db.session.rollback()  # whatever the failed job left half-written is not ours to keep
    db.session.refresh(build)
    if build.is_terminal:
        return "skipped"
    now = utcnow()
    stage = stage or build.stage
    entry = {"attempt": build.attempt, "failureCode": code, "failureClass": failure_class, "failureReason": reason,
             "stage": stage, "worker": build.worker_name, "startedAt": isoformat(build.started_at),
             "finishedAt": isoformat(now)}
    max_attempts = int(current_app.config["KILN_BUILD_MAX_ATTEMPTS"])
    _close_running_stages(build, "failed")
    try:
        if retryable and failure_class == "infrastructure" and build.attempt < max_attempts:
            next_attempt = build.attempt + 1
            transition(build, "queued", attempt=next_attempt, attempts=list(build.attempts or []) + [entry],
                       queued_at=now, worker_name=None, progress=0, stage=None, stage_display=None,
                       failure_reason=reason, failure_class=failure_class, failure_code=code, failure_stage=stage)
            buildlogs.append(build.id, stage, "warning",
                             f"attempt {entry['attempt']} failed ({code}: {reason}); retrying as attempt {next_attempt}")
            audit.record(None, "build.retry_scheduled", "build", build.id, org_id=build.org_id,
                         attempt=next_attempt, failure_code=code)
            build_id = build.id
            queue.after_commit(lambda: queue.enqueue_build(build_id, next_attempt))
            db.session.commit()
            clear_heartbeat(build.id)
            return "retried"
        transition(build, "failed", finished_at=now, failure_reason=reason, failure_class=failure_class,
                   failure_code=code, failure_stage=stage, attempts=list(build.attempts or []) + [entry])
    except Conflict:
        db.session.rollback()
        return "skipped"
    archive_log(build)
    db.session.commit()
    clear_heartbeat(build.id)
    return "failed"


def finish_cancelled(build: Build) -> None:
    """The job saw the cancel: the row is already `cancelled` (the API set it); keep the log."""
    db.session.refresh(build)
    _close_running_stages(build, "cancelled")
    if build.status in ("queued", "building", "testing"):
        try:
            transition(build, "cancelled", finished_at=utcnow(), cancel_requested_at=build.cancel_requested_at or utcnow(),
                       failure_reason="Cancelled")
        except Conflict:
            db.session.rollback()
    archive_log(build)
    db.session.commit()
    clear_heartbeat(build.id)


def reap_build(build: Build) -> str | None:
    """If `build` runs on a worker that stopped heartbeating, fail the attempt as worker_lost (and retry)."""
    if build.status not in ("building", "testing") or heartbeat_alive(build.id):
        return None
    ttl = int(current_app.config["KILN_BUILD_HEARTBEAT_TTL"])
    if build.started_at is not None and utcnow() - build.started_at < timedelta(seconds=ttl):
        return None  # grace for a job that has only just started
    worker = build.worker_name or "unknown worker"
    log.warning("build %s: no heartbeat from %s for %s s; marking worker_lost", build.id, worker, ttl)
    return fail_attempt(build, f"The worker running this build ({worker}) stopped responding",
                        failure_class="infrastructure", code="worker_lost", retryable=True)


def reap_lost_builds() -> list[tuple[str, str]]:
    """Every worker runs this on a timer: lost running builds, and queued builds whose job vanished."""
    outcomes = []
    db.session.rollback()
    running = db.session.scalars(select(Build).where(Build.status.in_(("building", "testing")))).all()
    for build in running:
        outcome = reap_build(build)
        if outcome:
            outcomes.append((str(build.id), outcome))
    stale = utcnow() - timedelta(seconds=60)
    queued = db.session.scalars(select(Build).where(Build.status == "queued", Build.queued_at < stale)).all()
    for build in queued:
        if not queue.job_is_live(queue.build_job_id(build.id, build.attempt)):
            queue.enqueue_build(build.id, build.attempt)
            outcomes.append((str(build.id), "requeued"))
    db.session.commit()
    return outcomes


def build_dir(build: Build) -> Path:
    directory = artifacts_dir(build)
    directory.mkdir(parents=True, exist_ok=True)
    return directory
