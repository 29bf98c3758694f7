"""Builds API (API.md, Builds): what requests carry, and every answer, dumped from the models (camelCase on
the wire through CamelSchema). The pages' live parts and the log streams dump the same schemas."""
from __future__ import annotations

from flask import url_for
from marshmallow import fields, missing, validate
from webargs.fields import DelimitedList

from app.engine.recipe import FORMATS
from app.http.schemas import CamelSchema, Computed, PaginationArgs, QueryArgs, Timestamp, page_schema
from app.models.builds import BUILD_STATUSES
from app.services.builds.reads import TEST_RUN_STATUS
from app.services.errors import ValidationFailed


class BuildCreateSchema(CamelSchema):
    conversation_id = fields.UUID(load_default=None)
    recipe = fields.Dict(load_default=None)
    start = fields.Boolean(load_default=True)
    format = fields.String(load_default=None, validate=validate.OneOf(FORMATS))
    lock_from = fields.UUID(load_default=None, metadata={
        "description": "Install exactly the package versions of this earlier (succeeded) build, from its manifest"})


class BuildQueryArgs(PaginationArgs):
    status = DelimitedList(fields.String(validate=validate.OneOf(BUILD_STATUSES)), load_default=list)
    conversation_id = fields.UUID(load_default=None)
    sort_by = fields.String(load_default="createdAt", validate=validate.OneOf(("createdAt", "updatedAt", "number")))
    sort_order = fields.String(load_default="desc", validate=validate.OneOf(("asc", "desc")))


class LogQueryArgs(QueryArgs):
    after = fields.Integer(load_default=0, validate=validate.Range(min=0, max=2**62))
    limit = fields.Integer(load_default=1000, validate=validate.Range(min=1, max=10000))
    format = fields.String(load_default=None, validate=validate.OneOf(("json", "text")))


class AssertionSchema(CamelSchema):
    type = fields.String(required=True)
    params = fields.Dict(load_default=dict)


class TestRequestSchema(CamelSchema):
    __test__ = False
    # Each assertion is checked against the engine's own schema in the service, which names the bad ones.
    assertions = fields.List(fields.Raw(), required=True, validate=validate.Length(min=1, max=100))


def whole_number(name: str, raw, *, minimum: int, default: int) -> int:
    """A whole number a view reads by hand (a page's ?page=, a stream's cursor header), refused by name."""
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed(f"{name}: '{raw}' is not a number", {name: ["Not a valid integer."]}) from None
    if value < minimum:
        raise ValidationFailed(f"{name}: must be {minimum} or more",
                               {name: [f"Must be greater than or equal to {minimum}."]})
    return value


# ---- answers ------------------------------------------------------------------------------------

class _ReadsAnother:
    """A second field over an attribute another field already dumps (marshmallow refuses two fields with
    the same `attribute`)."""

    def __init__(self, source: str, **kwargs):
        self.source = source
        super().__init__(**kwargs)

    def get_value(self, obj, attr, accessor=None, default=missing):
        return super().get_value(obj, self.source, accessor, default)


class UUIDOf(_ReadsAnother, fields.UUID):
    pass


class StringOf(_ReadsAnother, fields.String):
    pass


class StoredCamelSchema(CamelSchema):
    """Dumps a dict the database stores with camelCase keys already (a build's `attempts` history)."""

    def on_bind_field(self, field_name, field_obj):
        super().on_bind_field(field_name, field_obj)
        field_obj.attribute = field_obj.attribute or field_obj.data_key


class ArtifactSchema(CamelSchema):
    id = fields.UUID()
    kind = fields.String(metadata={"description": "iso, qcow2, rootfs, oci, manifest, sbom, checksums or log"})
    filename = fields.String()
    size = fields.Integer(metadata={"description": "Bytes"})
    sha256 = fields.String()
    created_at = Timestamp()
    download_url = Computed(
        lambda a: url_for("builds.artifact_download", build_id=a.build_id, artifact_id=a.id),
        metadata={"type": "string"})


class StageSchema(CamelSchema):
    name = fields.String()
    display_name = fields.String()
    status = fields.String(metadata={"description": "pending, running, succeeded, failed, skipped or cancelled"})
    started_at = Timestamp(allow_none=True)
    finished_at = Timestamp(allow_none=True)
    duration = fields.Float(allow_none=True, metadata={"description": "Seconds"})


class AttemptSchema(StoredCamelSchema):
    """An earlier attempt of the same build that failed on infrastructure and was retried."""

    attempt = fields.Integer()
    failure_code = fields.String(allow_none=True)
    failure_class = fields.String(allow_none=True)
    failure_reason = fields.String(allow_none=True)
    stage = fields.String(allow_none=True)
    worker = fields.String(allow_none=True)
    started_at = Timestamp(allow_none=True)
    finished_at = Timestamp(allow_none=True)


def _recipe_version_number(build) -> int | None:
    return build.recipe_version.number if build.recipe_version is not None else None


def _duration(build) -> float | None:
    if build.started_at and build.finished_at:
        return round((build.finished_at - build.started_at).total_seconds(), 1)
    return None


class BuildSchema(CamelSchema):
    id = fields.UUID()
    build_id = UUIDOf("id", metadata={"description": "Same as id"})
    number = fields.Integer()
    name = fields.String()
    status = fields.String(metadata={"enum": list(BUILD_STATUSES)})
    stage = fields.String(allow_none=True)
    stage_name = fields.String(attribute="stage_display", allow_none=True)
    progress = fields.Integer(metadata={"description": "Percent, 0-100"})
    format = fields.String(attribute="primary_format", metadata={"description": "The primary format"})
    formats = fields.List(fields.String())
    conversation_id = fields.UUID(allow_none=True)
    recipe_version = Computed(_recipe_version_number, allow_none=True, metadata={"type": "integer"})
    recipe_version_id = fields.UUID(allow_none=True)
    recipe_hash = fields.String()
    created_at = Timestamp()
    updated_at = Timestamp()
    queued_at = Timestamp(allow_none=True)
    started_at = Timestamp(allow_none=True)
    finished_at = Timestamp(allow_none=True)
    duration = Computed(_duration, allow_none=True,
                               metadata={"type": "number", "description": "Seconds from start to finish"})
    failure_reason = fields.String(allow_none=True)
    failure_class = fields.String(allow_none=True, metadata={"description": "user_error or infrastructure"})
    failure_code = fields.String(allow_none=True)
    failure_stage = fields.String(allow_none=True)
    attempt = fields.Integer()
    attempts = fields.List(fields.Nested(AttemptSchema))
    retried_from_id = fields.UUID(allow_none=True)
    locked_from = Computed(lambda b: (b.package_lock or {}).get("fromBuildId"), allow_none=True, metadata={
        "type": "string", "description": "The build whose exact package versions this build installs (lockFrom)"})
    worker_name = fields.String(allow_none=True)
    cached = fields.Boolean()
    cancel_requested_at = Timestamp(allow_none=True)
    created_by = fields.UUID(attribute="created_by_id", allow_none=True,
                             metadata={"description": "The user who created the build"})
    url = Computed(lambda b: url_for("builds.build_detail", build_id=b.id), metadata={"type": "string"})


class BuildDetailSchema(BuildSchema):
    recipe = fields.Dict()
    stages = fields.List(fields.Nested(StageSchema))
    artifacts = fields.List(fields.Nested(ArtifactSchema))
    artifacts_expired_at = Timestamp(allow_none=True, metadata={
        "description": "When the plan's retention deleted the image files (manifest and SBOM stay)"})


BuildPageSchema = page_schema("BuildPageSchema", "builds", BuildSchema)


class BuildProgressSchema(CamelSchema):
    current_step = fields.Integer()
    total_steps = fields.Integer()
    percentage = fields.Integer()


class BuildStatusSchema(CamelSchema):
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


class LogLineSchema(CamelSchema):
    seq = fields.Integer()
    timestamp = Timestamp()
    level = fields.String()
    stage = fields.String(allow_none=True)
    message = fields.String()


class BuildLogsSchema(CamelSchema):
    build_id = fields.UUID()
    lines = fields.List(fields.Nested(LogLineSchema))
    next_after = fields.Integer(metadata={"description": "The cursor for the next request (?after=)"})
    status = fields.String(metadata={"enum": list(BUILD_STATUSES)})
    complete = fields.Boolean(metadata={"description": "The build ended and every line was sent"})


class ArtifactListSchema(CamelSchema):
    build_id = fields.UUID(attribute="id")
    artifacts = fields.List(fields.Nested(ArtifactSchema))


class AssertionResultSchema(CamelSchema):
    type = fields.String()
    params = fields.Dict()
    result = fields.String()
    message = fields.String(allow_none=True)
    duration = fields.Float()


class TestCaseSchema(CamelSchema):
    __test__ = False
    description = fields.String()
    status = fields.String()
    duration = fields.Float()
    assertions = fields.List(fields.Nested(AssertionResultSchema))


class RequestedAssertionSchema(CamelSchema):
    type = fields.String()
    params = fields.Dict()


TEST_STATUSES = ["pending", "running", "passed", "failed"]


class TestRunSchema(CamelSchema):
    __test__ = False
    id = fields.UUID()
    kind = fields.String(metadata={"description": "default or custom"})
    status = Computed(lambda run: TEST_RUN_STATUS.get(run.status, run.status),
                             metadata={"type": "string", "enum": TEST_STATUSES})
    run_status = StringOf("status", metadata={"description": "queued, running, passed, failed, error or cancelled"})
    error = fields.String(allow_none=True)
    assertions = fields.List(fields.Nested(RequestedAssertionSchema))
    created_at = Timestamp()
    started_at = Timestamp(allow_none=True)
    finished_at = Timestamp(allow_none=True)
    console_log = Computed(lambda run: (run.result or {}).get("consoleLog") is not None,
                                  metadata={"type": "boolean",
                                            "description": "A console log of the test boot was kept"})
    boot_retries = Computed(lambda run: (run.result or {}).get("bootRetries", 0),
                                   metadata={"type": "integer",
                                             "description": "Fresh VMs the boot check needed beyond the first: a guest "
                                                            "that died before its init system is booted once more"})
    boot_attempts = Computed(lambda run: [{k: v for k, v in a.items() if k != "consoleLog"}
                                                 for a in (run.result or {}).get("bootAttempts", [])],
                                    metadata={"type": "array", "items": {"type": "object"},
                                              "description": "Each boot of the check: number, outcome, reason, "
                                                             "seconds and the console's last lines"})
    tests = fields.List(fields.Nested(TestCaseSchema), attribute="cases")


class TestSummarySchema(CamelSchema):
    """The latest run's status, kind, error and cases (null and empty before the first run), and every run."""

    __test__ = False
    build_id = fields.UUID()
    status = fields.String(metadata={"enum": TEST_STATUSES})
    tests = fields.List(fields.Nested(TestCaseSchema))
    test_run_id = fields.UUID(allow_none=True)
    kind = fields.String(allow_none=True)
    error = fields.String(allow_none=True)
    runs = fields.List(fields.Nested(TestRunSchema))


class TestRunQueuedSchema(CamelSchema):
    __test__ = False
    test_run_id = fields.UUID(attribute="id")
    status = fields.String(metadata={"enum": ["queued"]})
    build_id = fields.UUID()


# ---- live streams (not in the OpenAPI document: WebSocket and SSE) ------------------------------------

class LogLineMetadataSchema(CamelSchema):
    stage = fields.String(allow_none=True)


class LiveLogLineSchema(CamelSchema):
    """A log line as the WebSocket sends it: the line, the build, and the stage under `metadata`."""

    build_id = fields.UUID()
    seq = fields.Integer()
    timestamp = Timestamp()
    level = fields.String()
    message = fields.String()
    metadata = Computed(lambda line: LogLineMetadataSchema().dump(line))


class StreamEndSchema(CamelSchema):
    """The last event of a stream: the build finished (`done`), or was not started in time (`end`)."""

    build_id = fields.UUID()
    status = fields.String()
    reason = fields.String(metadata={"description": "Only on `end`: not_started"})
