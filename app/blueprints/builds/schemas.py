"""Builds API: request schemas and the JSON bodies (API.md, Builds)."""
from __future__ import annotations

from flask import url_for
from marshmallow import fields, validate
from webargs.fields import DelimitedList

from app.http.schemas import CamelSchema, PaginationArgs, QueryArgs
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
