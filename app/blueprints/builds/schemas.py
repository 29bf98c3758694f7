"""Builds API: request schemas and the JSON bodies (API.md, Builds)."""
from __future__ import annotations

from flask import url_for
from marshmallow import fields, validate
from webargs.fields import DelimitedList

from app.http.schemas import BodySchema, CamelSchema, PageSchema, PaginationArgs, QueryArgs, Timestamp
from app.models.base import isoformat
from app.models.builds import BUILD_STATUSES

FORMATS = ("iso", "rootfs", "oci", "qcow2")


class BuildCreateSchema(CamelSchema):
    conversation_id = fields.UUID(load_default=None)
    recipe = fields.Dict(load_default=None)
    start = fields.Boolean(load_default=True)
    format = fields.String(load_default=None, validate=validate.OneOf(FORMATS))


class BuildQueryArgs(PaginationArgs):
    status = DelimitedList(fields.String(validate=validate.OneOf(BUILD_STATUSES)), load_default=list)
    conversation_id = fields.UUID(load_default=None)
    sort_by = fields.String(load_default="createdAt", validate=validate.OneOf(("createdAt", "updatedAt", "number")))
    sort_order = fields.String(load_default="desc", validate=validate.OneOf(("asc", "desc")))


class LogQueryArgs(QueryArgs):
    after = fields.Integer(load_default=0, validate=validate.Range(min=0))
    limit = fields.Integer(load_default=1000, validate=validate.Range(min=1, max=10000))
    format = fields.String(load_default=None, validate=validate.OneOf(("json", "text")))


class AssertionSchema(CamelSchema):
    type = fields.String(required=True)
    params = fields.Dict(load_default=dict)


class TestRequestSchema(CamelSchema):
    __test__ = False
    # Each assertion is checked against the engine's own schema in the service, which names the bad ones.
    assertions = fields.List(fields.Raw(), required=True, validate=validate.Length(min=1, max=100))


# ---- output: the bodies below, as the OpenAPI document describes them -------------------------------

class ArtifactSchema(BodySchema):
    id = fields.UUID()
    kind = fields.String(metadata={"description": "iso, qcow2, rootfs, oci, manifest, sbom, checksums or log"})
    filename = fields.String()
    size = fields.Integer(metadata={"description": "Bytes"})
    sha256 = fields.String()
    created_at = Timestamp()
    download_url = fields.String()


class StageSchema(BodySchema):
    name = fields.String()
    display_name = fields.String()
    status = fields.String(metadata={"description": "pending, running, succeeded, failed, skipped or cancelled"})
    started_at = Timestamp(allow_none=True)
    finished_at = Timestamp(allow_none=True)
    duration = fields.Float(allow_none=True, metadata={"description": "Seconds"})


class AttemptSchema(BodySchema):
    """An earlier attempt of the same build that failed on infrastructure and was retried."""

    attempt = fields.Integer()
    failure_code = fields.String(allow_none=True)
    failure_class = fields.String(allow_none=True)
    failure_reason = fields.String(allow_none=True)
    stage = fields.String(allow_none=True)
    worker = fields.String(allow_none=True)
    started_at = Timestamp(allow_none=True)
    finished_at = Timestamp(allow_none=True)


class BuildSchema(BodySchema):
    id = fields.UUID()
    build_id = fields.UUID(metadata={"description": "Same as id"})
    number = fields.Integer()
    name = fields.String()
    status = fields.String(metadata={"enum": list(BUILD_STATUSES)})
    stage = fields.String(allow_none=True)
    stage_name = fields.String(allow_none=True)
    progress = fields.Integer(metadata={"description": "Percent, 0-100"})
    format = fields.String(metadata={"description": "The primary format"})
    formats = fields.List(fields.String())
    conversation_id = fields.UUID(allow_none=True)
    recipe_version = fields.Integer(allow_none=True)
    recipe_version_id = fields.UUID(allow_none=True)
    recipe_hash = fields.String()
    created_at = Timestamp()
    updated_at = Timestamp()
    queued_at = Timestamp(allow_none=True)
    started_at = Timestamp(allow_none=True)
    finished_at = Timestamp(allow_none=True)
    duration = fields.Float(allow_none=True, metadata={"description": "Seconds from start to finish"})
    failure_reason = fields.String(allow_none=True)
    failure_class = fields.String(allow_none=True, metadata={"description": "user_error or infrastructure"})
    failure_code = fields.String(allow_none=True)
    failure_stage = fields.String(allow_none=True)
    attempt = fields.Integer()
    attempts = fields.List(fields.Nested(AttemptSchema))
    retried_from_id = fields.UUID(allow_none=True)
    worker_name = fields.String(allow_none=True)
    cached = fields.Boolean()
    cancel_requested_at = Timestamp(allow_none=True)
    created_by = fields.UUID(allow_none=True, metadata={"description": "The user who created the build"})
    url = fields.String()


class BuildDetailSchema(BuildSchema):
    recipe = fields.Dict()
    stages = fields.List(fields.Nested(StageSchema))
    artifacts = fields.List(fields.Nested(ArtifactSchema))


class BuildPageSchema(PageSchema):
    builds = fields.List(fields.Nested(BuildSchema))


class BuildProgressSchema(BodySchema):
    current_step = fields.Integer()
    total_steps = fields.Integer()
    percentage = fields.Integer()


class BuildStatusSchema(BodySchema):
    build_id = fields.UUID()
    status = fields.String(metadata={"enum": list(BUILD_STATUSES)})
    stage = fields.String(allow_none=True)
    stage_name = fields.String(allow_none=True)
    progress = fields.Nested(BuildProgressSchema)
    attempt = fields.Integer()
    started_at = Timestamp(allow_none=True)
    finished_at = Timestamp(allow_none=True)
    estimated_completion = Timestamp(allow_none=True)
    failure_reason = fields.String(allow_none=True)


class LogLineSchema(BodySchema):
    seq = fields.Integer()
    timestamp = Timestamp()
    level = fields.String()
    stage = fields.String(allow_none=True)
    message = fields.String()


class BuildLogsSchema(BodySchema):
    build_id = fields.UUID()
    lines = fields.List(fields.Nested(LogLineSchema))
    next_after = fields.Integer(metadata={"description": "The cursor for the next request (?after=)"})
    status = fields.String(metadata={"enum": list(BUILD_STATUSES)})
    complete = fields.Boolean(metadata={"description": "The build ended and every line was sent"})


class ArtifactListSchema(BodySchema):
    build_id = fields.UUID()
    artifacts = fields.List(fields.Nested(ArtifactSchema))


class AssertionResultSchema(BodySchema):
    type = fields.String()
    params = fields.Dict()
    result = fields.String()
    message = fields.String(allow_none=True)
    duration = fields.Float()


class TestCaseSchema(BodySchema):
    __test__ = False
    description = fields.String()
    status = fields.String()
    duration = fields.Float()
    assertions = fields.List(fields.Nested(AssertionResultSchema))


class RequestedAssertionSchema(BodySchema):
    type = fields.String()
    params = fields.Dict()


class TestRunSchema(BodySchema):
    __test__ = False
    id = fields.UUID()
    kind = fields.String(metadata={"description": "default or custom"})
    status = fields.String(metadata={"enum": ["pending", "running", "passed", "failed"]})
    run_status = fields.String(metadata={"description": "queued, running, passed, failed, error or cancelled"})
    error = fields.String(allow_none=True)
    assertions = fields.List(fields.Nested(RequestedAssertionSchema))
    created_at = Timestamp()
    started_at = Timestamp(allow_none=True)
    finished_at = Timestamp(allow_none=True)
    console_log = fields.Boolean(metadata={"description": "A console log of the test boot was kept"})
    tests = fields.List(fields.Nested(TestCaseSchema))


class TestSummarySchema(BodySchema):
    """The latest run's status and cases (kind and error only once a run exists), and every run."""

    __test__ = False
    build_id = fields.UUID()
    status = fields.String(metadata={"enum": ["pending", "running", "passed", "failed"]})
    tests = fields.List(fields.Nested(TestCaseSchema))
    test_run_id = fields.UUID(allow_none=True)
    kind = fields.String()
    error = fields.String(allow_none=True)
    runs = fields.List(fields.Nested(TestRunSchema))


class TestRunQueuedSchema(BodySchema):
    __test__ = False
    test_run_id = fields.UUID()
    status = fields.String(metadata={"enum": ["queued"]})
    build_id = fields.UUID()


def artifact_body(build, artifact) -> dict:
    return {
        "id": str(artifact.id), "kind": artifact.kind, "filename": artifact.filename, "size": artifact.size,
        "sha256": artifact.sha256, "createdAt": isoformat(artifact.created_at),
        "downloadUrl": url_for("builds.artifact_download", build_id=build.id, artifact_id=artifact.id),
    }


def stage_body(stage) -> dict:
    return {"name": stage.name, "displayName": stage.display_name, "status": stage.status,
            "startedAt": isoformat(stage.started_at), "finishedAt": isoformat(stage.finished_at),
            "duration": stage.duration}


def build_body(build, *, detail: bool = False) -> dict:
    from app.models import RecipeVersion
    from app.extensions import db

    version = db.session.get(RecipeVersion, build.recipe_version_id) if build.recipe_version_id else None
    duration = None
    if build.started_at and build.finished_at:
        duration = round((build.finished_at - build.started_at).total_seconds(), 1)
    body = {
        "id": str(build.id), "buildId": str(build.id), "number": build.number, "name": build.name,
        "status": build.status, "stage": build.stage, "stageName": build.stage_display,
        "progress": int(build.progress or 0),
        "format": build.formats[0], "formats": list(build.formats),
        "conversationId": str(build.conversation_id) if build.conversation_id else None,
        "recipeVersion": version.number if version is not None else None,
        "recipeVersionId": str(build.recipe_version_id) if build.recipe_version_id else None,
        "recipeHash": build.recipe_hash,
        "createdAt": isoformat(build.created_at), "updatedAt": isoformat(build.updated_at),
        "queuedAt": isoformat(build.queued_at), "startedAt": isoformat(build.started_at),
        "finishedAt": isoformat(build.finished_at), "duration": duration,
        "failureReason": build.failure_reason, "failureClass": build.failure_class,
        "failureCode": build.failure_code, "failureStage": build.failure_stage,
        "attempt": build.attempt, "attempts": list(build.attempts or []),
        "retriedFromId": str(build.retried_from_id) if build.retried_from_id else None,
        "workerName": build.worker_name, "cached": build.cached,
        "cancelRequestedAt": isoformat(build.cancel_requested_at),
        "createdBy": str(build.created_by_id) if build.created_by_id else None,
        "url": url_for("builds.build_detail", build_id=build.id),
    }
    if detail:
        body["recipe"] = build.recipe
        body["stages"] = [stage_body(s) for s in build.stages]
        body["artifacts"] = [artifact_body(build, a) for a in build.artifacts]
    return body
