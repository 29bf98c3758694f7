"""A build's state machine and what users do with builds: create, start, cancel, retry, delete, request tests.

Plain functions: they take the actor, the org and the caller's role explicitly, flush but never commit
(the view commits), and write an audit record for every change. Every status change goes through
`transition()`, the one place that knows which status may follow which, and which attempt a worker's
change belongs to.
"""
from __future__ import annotations

import logging

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app import queues
from app.engine.context import BuildError
from app.engine.pipeline import normalize_formats
from app.engine.recipe import FORMATS, RecipeError, recipe_hash, validate_recipe
from app.engine.testing.assertions import validate_assertion
from app.extensions import db
from app.models import Build, BuildStage, RecipeVersion, TestRun
from app.models.base import utcnow
from app.models.builds import TRANSITIONS
from app.services import audit
from app.services.access import require_conversation
from app.services.audit import Actor
from app.services.billing import quotas
from app.services.billing import usage as billing_usage
from app.services.builds import files, logs, reads, signals
from app.services.builds.plan import is_bootable, stage_plan
from app.services.errors import Conflict, Forbidden, ValidationFailed

log = logging.getLogger("kiln.builds")

# Domain events per status (webhooks and notifications read the outbox).
STATUS_EVENTS = {"building": "build.started", "succeeded": "build.completed", "failed": "build.failed",
                 "cancelled": "build.cancelled"}


def transition(build: Build, to: str, *, for_attempt: int | None = None, event_payload: dict | None = None,
               **values) -> None:
    """Move `build` to `to`, or raise Conflict. A conditional UPDATE, so two processes can't both win.

    A worker's change names the attempt it belongs to (`for_attempt`): once the reaper re-queued the build as the next
    attempt, the old attempt's late success or failure finds the row moved on and gets Conflict. Terminal
    states are final: a late failure callback or a worker finishing after a cancel gets Conflict too.
    """
    sources = [s for s, targets in TRANSITIONS.items() if to in targets]
    if build.status not in sources or (for_attempt is not None and build.attempt != for_attempt):
        raise _refused(build, to, for_attempt)
    db.session.flush()
    values.update(status=to, updated_at=utcnow())
    where = [Build.id == build.id, Build.status.in_(sources)]
    if for_attempt is not None:
        where.append(Build.attempt == for_attempt)
    result = db.session.execute(update(Build).where(*where).values(**values)
                                .execution_options(synchronize_session=False))
    db.session.refresh(build)
    if result.rowcount != 1:
        raise _refused(build, to, for_attempt)
    event = STATUS_EVENTS.get(to)
    if event:
        audit.emit(event, org_id=build.org_id, entity_type="build", entity_id=build.id,
                   payload={"buildId": build.id, "number": build.number, "status": to, "attempt": build.attempt,
                            "conversationId": build.conversation_id, "failureReason": build.failure_reason,
                            "failureClass": build.failure_class, "failureCode": build.failure_code,
                            **(event_payload or {})})


def _refused(build: Build, to: str, attempt: int | None) -> Conflict:
    if attempt is not None and build.attempt != attempt:
        return Conflict(f"Build #{build.number} is on attempt {build.attempt}; attempt {attempt} cannot make it {to}",
                        {"attempt": [build.attempt], "requested": [to]})
    return Conflict(f"Build #{build.number} is {build.status}; it cannot become {to}",
                    {"status": [build.status], "requested": [to]})


def insert_numbered(build: Build) -> None:
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


def _formats(recipe: dict, fmt) -> list[str]:
    try:
        return normalize_formats(recipe, fmt)
    except BuildError as err:
        raise ValidationFailed(f"format: {err.reason}", {"format": [f"Must be one of: {', '.join(FORMATS)}."]}) from None


def _conversation_recipe(org, actor: Actor, role: str, conversation_id) -> RecipeVersion:
    conversation = require_conversation(org, conversation_id, user=actor.user, role=role, need="edit",
                                        via_api_key=actor.api_key is not None)
    version = conversation.version()
    if version is None:
        raise ValidationFailed("conversationId: the conversation has no recipe yet",
                               {"conversationId": ["The conversation has no recipe to build yet."]})
    return version


def package_lock_from(org, actor: Actor, role: str, build_id, release: str) -> dict:
    """The package lock of an earlier build the caller can see: its manifest's exact package versions."""
    source = reads.get_build(org, build_id, actor=actor, role=role)
    manifest = reads.build_manifest(source)
    if source.status != "succeeded" or manifest is None:
        raise ValidationFailed(f"lockFrom: build #{source.number} has no finished image to lock to",
                               {"lockFrom": [f"Build #{source.number} is {source.status} and has no manifest; "
                                             "lock to a succeeded build."]})
    if manifest.get("release") != release:
        raise ValidationFailed(f"lockFrom: build #{source.number} is Debian {manifest.get('release')}, "
                               f"this recipe is Debian {release}",
                               {"lockFrom": ["A package lock only applies to a build of the same Debian release."]})
    packages = (manifest.get("reproducibility") or {}).get("packageLock") or {
        p["name"]: p["version"] for p in manifest.get("packages", [])}
    return {"fromBuildId": str(source.id), "fromBuildNumber": source.number, "builtAt": manifest.get("builtAt"),
            "packages": packages}


def create_build(actor: Actor, org, role: str, *, conversation_id=None, recipe: dict | None = None,
                 fmt=None, start: bool = True, retried_from: Build | None = None,
                 recipe_version: RecipeVersion | None = None, lock_from=None,
                 package_lock: dict | None = None) -> Build:
    """A new build from a conversation's current recipe version or an inline recipe; queued unless start=False.
    `lock_from` (a build id) installs exactly that build's package versions; `package_lock` is such a lock
    already resolved (a retry keeps its build's lock)."""
    if (conversation_id is None) == (recipe is None) and recipe_version is None:
        raise ValidationFailed("Give either conversationId or recipe",
                               {"conversationId": ["Give either conversationId or recipe, not both or neither."]})
    version = recipe_version
    if conversation_id is not None and version is None:
        version = _conversation_recipe(org, actor, role, conversation_id)
    source = version.recipe if version is not None else recipe
    try:
        normalized = validate_recipe(source)
    except RecipeError as err:
        details = {f"recipe.{k}": v for k, v in err.errors.items()}
        raise ValidationFailed(f"The recipe is not valid: {err}", details) from None
    formats = _formats(normalized, fmt)
    if lock_from is not None:
        package_lock = package_lock_from(org, actor, role, lock_from, normalized["release"])
    build = Build(org_id=org.id, name=normalized["name"], recipe=normalized, recipe_hash=recipe_hash(normalized),
                  formats=formats, package_lock=package_lock, status="pending", progress=0, attempt=1, attempts=[],
                  conversation_id=version.conversation_id if version is not None else None,
                  recipe_version_id=version.id if version is not None else None,
                  retried_from_id=retried_from.id if retried_from is not None else None,
                  created_by_id=actor.user_id)
    insert_numbered(build)
    for position, (name, display) in enumerate(stage_plan(formats)):
        db.session.add(BuildStage(build_id=build.id, position=position, name=name, display_name=display))
    audit.record(actor, "build.retried" if retried_from is not None else "build.created", "build", build.id,
                 org_id=org.id, number=build.number, recipe_hash=build.recipe_hash, formats=formats,
                 retried_from=retried_from.id if retried_from is not None else None,
                 locked_from=package_lock["fromBuildId"] if package_lock else None)
    db.session.flush()
    if start:
        start_build(actor, org, build)
    return build


def start_build(actor: Actor, org, build: Build) -> Build:
    if build.status != "pending":
        raise Conflict(f"Build #{build.number} is {build.status}; only a pending build can be started",
                       {"status": [build.status]})
    quotas.check_build_start(org)
    transition(build, "queued", queued_at=utcnow())
    audit.record(actor, "build.queued", "build", build.id, org_id=org.id, number=build.number)
    build_id, attempt = build.id, build.attempt
    queues.after_commit(lambda: queues.enqueue_build(build_id, attempt))
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
    close_running_stages(build, "cancelled")
    audit.record(actor, "build.cancelled", "build", build.id, org_id=org.id, number=build.number, previous=was)
    build_id, attempt = build.id, build.attempt

    def _signal():
        signals.request_cancel(build_id)
        if was == "queued":
            queues.dequeue_build(build_id, attempt)

    queues.after_commit(_signal)
    return build


def close_running_stages(build: Build, status: str) -> None:
    now = utcnow()
    for stage in build.stages:
        if stage.status == "running":
            stage.status, stage.finished_at = status, now
            if stage.started_at is not None:
                stage.duration = round((now - stage.started_at).total_seconds(), 2)


def retry_build(actor: Actor, org, role: str, build: Build, *, start: bool = True) -> Build:
    """A new build of the same recipe (version) as `build`."""
    if not build.is_terminal:
        raise Conflict(f"Build #{build.number} is {build.status}; only a finished build can be retried",
                       {"status": [build.status]})
    if reads.conversation_level(build, actor, role) != "edit":
        raise Forbidden(f"You can view build #{build.number} but not retry it")
    version = db.session.get(RecipeVersion, build.recipe_version_id) if build.recipe_version_id else None
    if version is not None:
        return create_build(actor, org, role, recipe_version=version, fmt=build.formats, start=start,
                            retried_from=build, package_lock=build.package_lock)
    return create_build(actor, org, role, recipe=build.recipe, fmt=build.formats, start=start, retried_from=build,
                        package_lock=build.package_lock)


def delete_build(actor: Actor, org, build: Build) -> None:
    if not build.is_terminal:
        raise Conflict(f"Build #{build.number} is {build.status}; cancel it before deleting it",
                       {"status": [build.status]})
    build_id, number, attempts, org_id = build.id, build.number, build.attempt, build.org_id
    audit.record(actor, "build.deleted", "build", build_id, org_id=org.id, number=number)
    billing_usage.record_deleted(build)
    db.session.delete(build)
    db.session.flush()

    def _remove_files():
        try:
            files.remove_build_files(org_id, build_id)
        except files.StorageError:
            log.exception("build %s: its files could not be deleted from the store", build_id)
        logs.forget(build_id)
        signals.forget_build(build_id, attempts)

    queues.after_commit(_remove_files)


def request_tests(actor: Actor, org, build: Build, assertions: list) -> TestRun:
    """Custom assertions against a finished bootable build, run on a worker."""
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
    queues.after_commit(lambda: queues.enqueue_test_run(run_id))
    return run
