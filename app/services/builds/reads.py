"""Reading builds: one for a caller (tenancy and conversation access), a filtered list, and the status,
test and log summaries the API and the live streams show. Reads never change a build."""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import asc, desc, or_, select
from sqlalchemy.orm import defer, selectinload

from app.extensions import db
from app.models import Build, Conversation, RecipeVersion, TestRun
from app.models.base import parse_uuid, utcnow
from app.services.access import conversation_access, visible_conversations
from app.services.audit import Actor
from app.services.builds import files, logs
from app.services.builds.plan import stage_display, stage_plan
from app.services.errors import Forbidden, NotFound, ValidationFailed

SORT_COLUMNS = {"createdAt": Build.created_at, "updatedAt": Build.updated_at, "number": Build.number}
# A test run's status as the API names it (queued runs are "pending"; a run that could not run "failed").
TEST_RUN_STATUS = {"queued": "pending", "running": "running", "passed": "passed", "failed": "failed",
                   "error": "failed", "cancelled": "failed"}


def conversation_level(build: Build, actor: Actor, role: str) -> str | None:
    """"edit", "view" or None for the build's conversation; "edit" when the build has none (inline recipe)."""
    conversation = db.session.get(Conversation, build.conversation_id) if build.conversation_id else None
    if conversation is None:
        return "edit"
    return conversation_access(conversation, user=actor.user, role=role, via_api_key=actor.api_key is not None)


def get_build(org, build_id, *, actor: Actor, role: str, need: str = "view") -> Build:
    """The build if the caller may `need` it. Another org's build, or one in a conversation the caller
    cannot see, is NotFound; a view-only caller asking to change it is Forbidden."""
    build = Build.get_for_org(org.id, build_id)
    level = conversation_level(build, actor, role)
    if level is None:
        raise NotFound.of("Build", build_id)
    if need == "edit" and level != "edit":
        raise Forbidden(f"You can view build #{build.number} but not change it")
    return build


def list_builds(org, *, actor: Actor, role: str, status: list[str] | None = None, conversation_id=None,
                sort_by: str = "createdAt", sort_order: str = "desc"):
    """A select of the builds this caller can see, filtered and sorted."""
    visible = visible_conversations(org, user=actor.user, role=role, via_api_key=actor.api_key is not None)
    # A list shows no recipe (the heaviest column) and each build's version number: one query for the versions,
    # which reads their numbers, not their recipes.
    query = select(Build).options(defer(Build.recipe),
                                  selectinload(Build.recipe_version).load_only(RecipeVersion.number)).where(
        Build.org_id == org.id,
        or_(Build.conversation_id.is_(None), Build.conversation_id.in_(visible.with_only_columns(Conversation.id))))
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


@dataclass(frozen=True)
class StepProgress:
    current_step: int
    total_steps: int
    percentage: int


@dataclass(frozen=True)
class BuildStatus:
    """GET /builds/{id}/status and the live streams' `status` event."""

    build_id: object
    status: str
    stage: str | None
    stage_name: str | None
    progress: StepProgress
    attempt: int
    started_at: datetime | None
    finished_at: datetime | None
    estimated_completion: datetime | None
    failure_reason: str | None


def build_status(build: Build, *, estimate: bool = True) -> BuildStatus:
    """The status body; estimate=False leaves out the estimated completion (a query over recent builds)."""
    names = [n for n, _ in stage_plan(build.formats)]
    if build.status == "succeeded":
        step = len(names)
    elif build.stage in names:
        step = names.index(build.stage) + 1
    else:
        step = 0
    percentage = 100 if build.status == "succeeded" else int(build.progress or 0)
    return BuildStatus(build_id=build.id, status=build.status, stage=build.stage,
                       stage_name=stage_display(build, build.stage),
                       progress=StepProgress(step, len(names), percentage), attempt=build.attempt,
                       started_at=build.started_at, finished_at=build.finished_at,
                       estimated_completion=estimated_completion(build) if estimate else None, failure_reason=build.failure_reason)


@dataclass(frozen=True)
class TestSummary:
    """GET /builds/{id}/tests: the latest run's status and cases, plus every run."""

    __test__ = False
    build_id: object
    latest: TestRun | None
    runs: list

    @property
    def status(self) -> str:
        return TEST_RUN_STATUS.get(self.latest.status, self.latest.status) if self.latest else "pending"

    @property
    def tests(self) -> list:
        return list(self.latest.cases) if self.latest else []

    @property
    def test_run_id(self):
        return self.latest.id if self.latest else None

    @property
    def kind(self) -> str | None:
        return self.latest.kind if self.latest else None

    @property
    def error(self) -> str | None:
        return self.latest.error if self.latest else None


def test_summary(build: Build) -> TestSummary:
    runs = list(build.test_runs)
    return TestSummary(build_id=build.id, latest=runs[-1] if runs else None, runs=runs)



@dataclass(frozen=True)
class LogPage:
    """GET /builds/{id}/logs: the lines after a cursor and where to go on from."""

    build_id: object
    lines: list
    next_after: int
    status: str
    complete: bool


def log_page(build: Build, after: int, limit: int) -> LogPage:
    lines = logs.read(build, after, limit)
    return LogPage(build_id=build.id, lines=lines, next_after=lines[-1]["seq"] if lines else after,
                   status=build.status, complete=build.is_terminal and len(lines) < limit)


def build_manifest(build: Build) -> dict | None:
    """The build's manifest.json (what the engine recorded), or None when it has none or it is unreadable."""
    artifact = next((a for a in build.artifacts if a.kind == "manifest"), None)
    if artifact is None:
        return None
    try:
        return json.loads(files.artifact_file(artifact).read_text())
    except (OSError, ValueError, NotFound):
        return None


@dataclass
class Reproducibility:
    reproducible: bool
    source_date_epoch: int | None
    source_date: str | None
    package_count: int
    locked_from_number: int | None


def reproducibility(build: Build) -> Reproducibility | None:
    """How to make the build's artifacts again byte for byte (None for a build without a manifest)."""
    manifest = build_manifest(build)
    if manifest is None:
        return None
    info = manifest.get("reproducibility") or {}
    lock = build.package_lock or {}
    return Reproducibility(reproducible=bool(info.get("reproducible")), source_date_epoch=info.get("sourceDateEpoch"),
                           source_date=info.get("sourceDate"), package_count=len(info.get("packageLock") or {}),
                           locked_from_number=lock.get("fromBuildNumber"))
