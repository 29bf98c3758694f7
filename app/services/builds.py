"""Builds as users see them: create, start, cancel, retry, delete, list, status, test requests.

Plain functions: they take the actor, the org and the caller's role explicitly, flush but never commit
(the view commits), and write an audit record for every change. Lifecycle moves go through `transition()`,
the one place that knows which status may follow which.
"""
from __future__ import annotations

import shutil
import statistics
from datetime import timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import asc, desc, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db, redis
from app.models import Build, BuildStage, Conversation, RecipeVersion, TestRun
from app.models.base import parse_uuid, utcnow
from app.models.builds import TERMINAL_STATUSES, TEST_STAGE, TRANSITIONS
from app.services import audit
from app.services.access import conversation_access, require_conversation, visible_conversations
from app.services.audit import Actor
from app.services.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.tasks import queue

CANCEL_KEY = "kiln:build:{}:cancel"
HEARTBEAT_KEY = "kiln:build:{}:heartbeat"
SORT_COLUMNS = {"createdAt": Build.created_at, "updatedAt": Build.updated_at, "number": Build.number}
# Domain events per terminal status (webhooks and notifications read the outbox).
STATUS_EVENTS = {"building": "build.started", "succeeded": "build.completed", "failed": "build.failed",
                 "cancelled": "build.cancelled"}


# Files ----------------------------------------------------------------------------------------------

def artifacts_root() -> Path:
    return Path(current_app.config["KILN_ARTIFACTS_DIR"])


def artifacts_dir(build: Build) -> Path:
    return artifacts_root() / str(build.org_id) / str(build.id)


def artifact_file(artifact) -> Path:
    """The artifact's file, refusing a stored path that escapes the artifacts directory."""
    root = artifacts_root().resolve()
    path = (root / artifact.path).resolve()
    if root not in path.parents:
        raise NotFound.of("Artifact file", artifact.id)
    return path


# Stages ---------------------------------------------------------------------------------------------

def is_bootable(formats: list[str]) -> bool:
    from app.engine.recipe import BOOTABLE_FORMATS

    return formats[0] in BOOTABLE_FORMATS


def stage_plan(formats: list[str]) -> list[tuple[str, str]]:
    """The engine's stages, plus image tests when the primary artifact can be booted."""
    from app.engine.pipeline import STAGES

    return list(STAGES) + ([TEST_STAGE] if is_bootable(formats) else [])


def stage_display(build: Build, name: str | None) -> str | None:
    if name is None:
        return None
    return dict(stage_plan(build.formats)).get(name, name)


# Lifecycle ------------------------------------------------------------------------------------------

def transition(build: Build, to: str, *, event_payload: dict | None = None, **values) -> None:
    """Move `build` to `to`, or raise Conflict. A conditional UPDATE, so two processes can't both win.

    Terminal states are final: a late failure callback or a worker finishing after a cancel finds
    the row already finished and gets Conflict instead of overwriting it.
    """
    sources = [s for s, targets in TRANSITIONS.items() if to in targets]
    if build.status not in sources:
        raise Conflict(f"Build #{build.number} is {build.status}; it cannot become {to}",
                       {"status": [build.status], "requested": [to]})
    db.session.flush()
    values.update(status=to, updated_at=utcnow())
    result = db.session.execute(update(Build).where(Build.id == build.id, Build.status.in_(sources))
                                .values(**values).execution_options(synchronize_session=False))
    db.session.refresh(build)
    if result.rowcount != 1:
        raise Conflict(f"Build #{build.number} is {build.status}; it cannot become {to}",
                       {"status": [build.status], "requested": [to]})
    event = STATUS_EVENTS.get(to)
    if event:
        audit.emit(event, org_id=build.org_id, entity_type="build", entity_id=build.id,
                   payload={"buildId": build.id, "number": build.number, "status": to, "attempt": build.attempt,
                            "conversationId": build.conversation_id, "failureReason": build.failure_reason,
                            "failureClass": build.failure_class, "failureCode": build.failure_code,
                            **(event_payload or {})})


def _next_number_insert(build: Build) -> None:
    """Per-org sequential numbers: unique (org_id, number) and a retry when two creates race."""
    for _ in range(10):
        build.number = (db.session.scalar(select(func.max(Build.number)).where(Build.org_id == build.org_id)) or 0) + 1
        try:
            with db.session.begin_nested():
                db.session.add(build)
                db.session.flush()
            return
        except IntegrityError:
            continue
    raise Conflict("Could not allocate a build number; try again")


def _normalize_formats(recipe: dict, fmt) -> list[str]:
    from app.engine.recipe import FORMATS

    if fmt is None or fmt == "" or fmt == []:
        return [recipe["format"]]
    items = fmt if isinstance(fmt, list) else str(fmt).split(",")
    items = [str(f).strip() for f in items if str(f).strip()]
    bad = [f for f in items if f not in FORMATS]
    if bad or not items:
        raise ValidationFailed(f"format: unknown format(s) {', '.join(bad) or '(empty)'}; choose from {', '.join(FORMATS)}",
                               {"format": [f"Must be one of: {', '.join(FORMATS)}."]})
    return list(dict.fromkeys(items))


def _conversation_recipe(org, actor: Actor, role: str, conversation_id) -> tuple[Conversation, RecipeVersion]:
    conversation = require_conversation(org, conversation_id, user=actor.user, role=role, need="edit",
                                        via_api_key=actor.api_key is not None)
    version = conversation.version()
    if version is None:
        raise ValidationFailed("conversationId: the conversation has no recipe yet",
                               {"conversationId": ["The conversation has no recipe to build yet."]})
    return conversation, version


def create_build(actor: Actor, org, role: str, *, conversation_id=None, recipe: dict | None = None,
                 fmt=None, start: bool = True, retried_from: Build | None = None,
                 recipe_version: RecipeVersion | None = None) -> Build:
    """A new build from a conversation's current recipe version or an inline recipe; queued unless start=False."""
    from app.engine.recipe import RecipeError, recipe_hash, validate_recipe

    if (conversation_id is None) == (recipe is None) and recipe_version is None:
        raise ValidationFailed("Give either conversationId or recipe",
                               {"conversationId": ["Give either conversationId or recipe, not both or neither."]})
    version = recipe_version
    if conversation_id is not None and version is None:
        _conversation, version = _conversation_recipe(org, actor, role, conversation_id)
    source = version.recipe if version is not None else recipe
    try:
        normalized = validate_recipe(source)
    except RecipeError as err:
        details = {f"recipe.{k}": v for k, v in err.errors.items()}
        raise ValidationFailed(f"The recipe is not valid: {err}", details) from None
    formats = _normalize_formats(normalized, fmt)
    build = Build(org_id=org.id, name=normalized["name"], recipe=normalized, recipe_hash=recipe_hash(normalized),
                  formats=formats, status="pending", progress=0, attempt=1, attempts=[],
                  conversation_id=version.conversation_id if version is not None else None,
                  recipe_version_id=version.id if version is not None else None,
                  retried_from_id=retried_from.id if retried_from is not None else None,
                  created_by_id=actor.user_id)
    _next_number_insert(build)
    for position, (name, display) in enumerate(stage_plan(formats)):
        db.session.add(BuildStage(build_id=build.id, position=position, name=name, display_name=display))
    audit.record(actor, "build.retried" if retried_from is not None else "build.created", "build", build.id,
                 org_id=org.id, number=build.number, recipe_hash=build.recipe_hash, formats=formats,
                 retried_from=retried_from.id if retried_from is not None else None)
    db.session.flush()
    if start:
        start_build(actor, org, build)
    return build


def start_build(actor: Actor, org, build: Build) -> Build:
    if build.status != "pending":
        raise Conflict(f"Build #{build.number} is {build.status}; only a pending build can be started",
                       {"status": [build.status]})
    transition(build, "queued", queued_at=utcnow())
    audit.record(actor, "build.queued", "build", build.id, org_id=org.id, number=build.number)
    build_id, attempt = build.id, build.attempt
    queue.after_commit(lambda: queue.enqueue_build(build_id, attempt))
    return build


def cancel_build(actor: Actor, org, build: Build) -> Build:
    """Pending: never runs. Queued: leaves the queue. Building/testing: the worker sees the cancel key and
    stops the engine (which kills its process groups). Finished: Conflict."""
    if build.is_terminal:
        raise Conflict(f"Build #{build.number} is already {build.status}", {"status": [build.status]})
    was = build.status
    now = utcnow()
    transition(build, "cancelled", cancel_requested_at=now, finished_at=now,
               failure_reason="Cancelled by a user", event_payload={"previousStatus": was})
    for stage in build.stages:
        if stage.status == "running":
            stage.status, stage.finished_at = "cancelled", now
    audit.record(actor, "build.cancelled", "build", build.id, org_id=org.id, number=build.number, previous=was)
    build_id, attempt = build.id, build.attempt

    def _signal():
        client = redis.client
        # The worker polls this key; it outlives any realistic build so a late-starting job also sees it.
        client.set(CANCEL_KEY.format(build_id), "1", ex=7 * 24 * 3600)
        client.publish(CANCEL_KEY.format(build_id), "1")
        if was == "queued":
            queue.dequeue_build(build_id, attempt)

    queue.after_commit(_signal)
    return build


def retry_build(actor: Actor, org, role: str, build: Build, *, start: bool = True) -> Build:
    """A new build of the same recipe (version) as `build`."""
    if not build.is_terminal:
        raise Conflict(f"Build #{build.number} is {build.status}; only a finished build can be retried",
                       {"status": [build.status]})
    version = db.session.get(RecipeVersion, build.recipe_version_id) if build.recipe_version_id else None
    if build.conversation_id is not None:
        conversation = db.session.get(Conversation, build.conversation_id)
        if conversation is not None:
            level = conversation_access(conversation, user=actor.user, role=role, via_api_key=actor.api_key is not None)
            if level != "edit":
                raise Forbidden(f"You can view build #{build.number} but not retry it")
    if version is not None:
        return create_build(actor, org, role, recipe_version=version, fmt=build.formats, start=start,
                            retried_from=build)
    return create_build(actor, org, role, recipe=build.recipe, fmt=build.formats, start=start, retried_from=build)


def delete_build(actor: Actor, org, build: Build) -> None:
    if not build.is_terminal:
        raise Conflict(f"Build #{build.number} is {build.status}; cancel it before deleting it",
                       {"status": [build.status]})
    from app.services import buildlogs

    directory = artifacts_dir(build)
    build_id, number = build.id, build.number
    audit.record(actor, "build.deleted", "build", build_id, org_id=org.id, number=number)
    db.session.delete(build)
    db.session.flush()

    def _remove_files():
        shutil.rmtree(directory, ignore_errors=True)
        buildlogs.forget(build_id)
        redis.client.delete(CANCEL_KEY.format(build_id), HEARTBEAT_KEY.format(build_id))

    queue.after_commit(_remove_files)


# Reads ----------------------------------------------------------------------------------------------

def get_build(org, build_id, *, actor: Actor, role: str, need: str = "view") -> Build:
    """The build if the caller may `need` it. Another org's build, or one in a conversation the caller
    cannot see, is NotFound; a view-only caller asking to change it is Forbidden."""
    build = Build.get_for_org(org.id, build_id)
    if build.conversation_id is not None:
        conversation = db.session.get(Conversation, build.conversation_id)
        if conversation is not None:
            level = conversation_access(conversation, user=actor.user, role=role, via_api_key=actor.api_key is not None)
            if level is None:
                raise NotFound.of("Build", build_id)
            if need == "edit" and level != "edit":
                raise Forbidden(f"You can view build #{build.number} but not change it")
    return build


def list_builds(org, *, actor: Actor, role: str, status: list[str] | None = None, conversation_id=None,
                sort_by: str = "createdAt", sort_order: str = "desc"):
    """A select of the builds this caller can see, filtered and sorted."""
    visible = visible_conversations(org, user=actor.user, role=role, via_api_key=actor.api_key is not None)
    query = select(Build).where(Build.org_id == org.id,
                                or_(Build.conversation_id.is_(None),
                                    Build.conversation_id.in_(visible.with_only_columns(Conversation.id))))
    if status:
        query = query.where(Build.status.in_(status))
    if conversation_id is not None:
        cid = parse_uuid(conversation_id)
        if cid is None:
            raise ValidationFailed("conversationId: not a valid UUID", {"conversationId": ["Not a valid UUID."]})
        query = query.where(Build.conversation_id == cid)
    column = SORT_COLUMNS[sort_by]
    order = desc if sort_order == "desc" else asc
    return query.order_by(order(column), order(Build.number))


def estimated_completion(build: Build):
    """started + the median duration of the org's recent successful builds; else extrapolate progress."""
    if build.started_at is None or build.is_terminal:
        return None
    rows = db.session.execute(
        select(Build.started_at, Build.finished_at)
        .where(Build.org_id == build.org_id, Build.status == "succeeded", Build.started_at.is_not(None),
               Build.finished_at.is_not(None), Build.cached.is_(False))
        .order_by(Build.finished_at.desc()).limit(20)).all()
    durations = [(f - s).total_seconds() for s, f in rows if f >= s]
    now = utcnow()
    if durations:
        estimate = build.started_at + timedelta(seconds=statistics.median(durations))
        if estimate > now:
            return estimate
    elapsed = (now - build.started_at).total_seconds()
    if build.progress and build.progress > 0:
        return build.started_at + timedelta(seconds=elapsed * 100 / build.progress)
    return None


def status_body(build: Build) -> dict:
    """The /status document (also the SSE `status` event)."""
    from app.models.base import isoformat

    plan = stage_plan(build.formats)
    names = [n for n, _ in plan]
    if build.status == "succeeded":
        step = len(plan)
    elif build.stage in names:
        step = names.index(build.stage) + 1
    else:
        step = 0
    eta = estimated_completion(build)
    return {
        "buildId": str(build.id),
        "status": build.status,
        "stage": build.stage,
        "stageName": stage_display(build, build.stage),
        "progress": {"currentStep": step, "totalSteps": len(plan),
                     "percentage": 100 if build.status == "succeeded" else int(build.progress or 0)},
        "attempt": build.attempt,
        "startedAt": isoformat(build.started_at),
        "finishedAt": isoformat(build.finished_at),
        "estimatedCompletion": isoformat(eta),
        "failureReason": build.failure_reason,
    }


TEST_RUN_STATUS = {"queued": "pending", "running": "running", "passed": "passed", "failed": "failed",
                   "error": "failed", "cancelled": "failed"}


def latest_test_run(build: Build) -> TestRun | None:
    return build.test_runs[-1] if build.test_runs else None


def test_run_body(run: TestRun) -> dict:
    from app.models.base import isoformat

    return {
        "id": str(run.id), "kind": run.kind, "status": TEST_RUN_STATUS.get(run.status, run.status),
        "runStatus": run.status, "error": run.error, "assertions": run.assertions,
        "createdAt": isoformat(run.created_at), "startedAt": isoformat(run.started_at),
        "finishedAt": isoformat(run.finished_at),
        "consoleLog": (run.result or {}).get("consoleLog") is not None,
        "tests": [{"description": c.description, "status": c.status, "duration": c.duration,
                   "assertions": c.assertions} for c in run.cases],
    }


def test_summary(build: Build) -> dict:
    """GET /builds/{id}/tests: the latest run's status and cases, plus every run."""
    run = latest_test_run(build)
    if run is None:
        return {"buildId": str(build.id), "status": "pending", "tests": [], "testRunId": None, "runs": []}
    body = test_run_body(run)
    return {"buildId": str(build.id), "status": body["status"], "tests": body["tests"], "testRunId": body["id"],
            "kind": run.kind, "error": run.error, "runs": [test_run_body(r) for r in build.test_runs]}


def request_tests(actor: Actor, org, build: Build, assertions: list) -> TestRun:
    """Custom assertions against a finished bootable build, run on a worker."""
    from app.engine.testing.assertions import validate_assertion

    if not is_bootable(build.formats):
        raise Conflict(f"Build #{build.number} made {build.primary_format}, which cannot be boot-tested",
                       {"format": [build.primary_format]})
    tested_failure = build.status == "failed" and build.failure_code == "tests_failed"
    if build.status != "succeeded" and not tested_failure:
        raise Conflict(f"Build #{build.number} is {build.status}; tests run on a finished build with an image",
                       {"status": [build.status]})
    if build.primary_artifact() is None:
        raise Conflict(f"Build #{build.number} has no image to test")
    if not isinstance(assertions, list) or not assertions:
        raise ValidationFailed("assertions: give at least one assertion", {"assertions": ["Give at least one assertion."]})
    valid, errors = [], {}
    for i, spec in enumerate(assertions):
        try:
            valid.append(validate_assertion(spec))
        except ValueError as err:
            errors[f"assertions[{i}]"] = [str(err)]
    if errors:
        raise ValidationFailed("Invalid assertions: " + "; ".join(f"{k}: {v[0]}" for k, v in errors.items()), errors)
    if any(r.status in ("queued", "running") for r in build.test_runs):
        raise Conflict(f"Build #{build.number} already has a test run in progress")
    run = TestRun(build_id=build.id, status="queued", kind="custom", assertions=valid, created_by_id=actor.user_id)
    db.session.add(run)
    db.session.flush()
    audit.record(actor, "build.tests_requested", "build", build.id, org_id=org.id, test_run_id=run.id,
                 assertions=len(valid))
    run_id = run.id
    queue.after_commit(lambda: queue.enqueue_test_run(run_id))
    return run


def is_terminal(status: str) -> bool:
    return status in TERMINAL_STATUSES
