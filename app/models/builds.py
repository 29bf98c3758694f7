"""Builds: one row per image build, its stages, its artifacts, and the test runs against it."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import IdMixin, OrgOwnedMixin, TimestampMixin, UTCDateTime, utcnow

BUILD_STATUSES = ("pending", "queued", "building", "testing", "succeeded", "failed", "cancelled")
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
ACTIVE_STATUSES = frozenset({"building", "testing"})

# The only legal moves. building/testing -> queued is an automatic retry of an infrastructure failure
# (same build, next attempt); every other edge is the normal lifecycle.
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"queued", "cancelled"}),
    "queued": frozenset({"building", "failed", "cancelled"}),
    "building": frozenset({"testing", "succeeded", "failed", "cancelled", "queued"}),
    "testing": frozenset({"succeeded", "failed", "cancelled", "queued"}),
    "succeeded": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}

FAILURE_CLASSES = ("user_error", "infrastructure")
TEST_STAGE = ("test", "Image Tests")


class Build(IdMixin, TimestampMixin, OrgOwnedMixin, db.Model):
    __tablename__ = "builds"
    __kind__ = "Build"
    __table_args__ = (
        UniqueConstraint("org_id", "number", name="uq_builds_org_number"),
        # The build list (GET /api/builds) reads one page in its sort order straight from an index instead of
        # sorting every build of the org, and counts the visible builds from an index alone.
        Index("ix_builds_org_created", "org_id", "created_at", "number"),
        Index("ix_builds_org_updated", "org_id", "updated_at", "number"),
        Index("ix_builds_org_conversation", "org_id", "conversation_id"),
    )

    number: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("conversations.id", ondelete="SET NULL"), index=True)
    recipe_version_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("recipe_versions.id", ondelete="SET NULL"), index=True)
    # The exact recipe built, even if its conversation or version is later deleted.
    recipe: Mapped[dict] = mapped_column(JSON, nullable=False)
    recipe_hash: Mapped[str] = mapped_column(String(64), index=True, nullable=False)
    formats: Mapped[list] = mapped_column(JSON, nullable=False)
    # Exact package versions to install, taken from an earlier build's manifest ("lock to build #12"):
    # {"fromBuildId", "fromBuildNumber", "packages": {name: version}}; None for a normal build.
    package_lock: Mapped[dict | None] = mapped_column(JSON)

    status: Mapped[str] = mapped_column(String(16), index=True, default="pending", nullable=False)
    stage: Mapped[str | None] = mapped_column(String(32))
    stage_display: Mapped[str | None] = mapped_column(String(64))
    progress: Mapped[int] = mapped_column(Integer, default=0, nullable=False)

    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    failure_reason: Mapped[str | None] = mapped_column(Text)
    failure_class: Mapped[str | None] = mapped_column(String(16))  # user_error | infrastructure
    failure_code: Mapped[str | None] = mapped_column(String(32))  # e.g. worker_lost, user_error, tests_failed
    failure_stage: Mapped[str | None] = mapped_column(String(32))

    attempt: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    # Earlier attempts of this same build: [{"attempt","failureCode","failureClass","failureReason","stage",
    # "startedAt","finishedAt","worker"}]
    attempts: Mapped[list] = mapped_column(JSON, default=list, nullable=False)
    retried_from_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("builds.id", ondelete="SET NULL"))
    worker_name: Mapped[str | None] = mapped_column(String(255))
    cached: Mapped[bool] = mapped_column(db.Boolean, default=False, nullable=False)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the plan's retention deleted the image files (record, manifest and SBOM stay).
    artifacts_expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))

    # Read-only: recipe_version_id is what services set. Lists load it in one query (selectinload).
    recipe_version: Mapped["RecipeVersion | None"] = relationship(viewonly=True)
    stages: Mapped[list["BuildStage"]] = relationship(back_populates="build", cascade="all, delete-orphan",
                                                      order_by="BuildStage.position")
    artifacts: Mapped[list["BuildArtifact"]] = relationship(back_populates="build", cascade="all, delete-orphan",
                                                            order_by="BuildArtifact.created_at")
    test_runs: Mapped[list["TestRun"]] = relationship(back_populates="build", cascade="all, delete-orphan",
                                                      order_by="TestRun.created_at")

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def primary_format(self) -> str:
        return self.formats[0]

    def primary_artifact(self) -> "BuildArtifact | None":
        for artifact in self.artifacts:
            if artifact.kind == self.primary_format:
                return artifact
        return None


class BuildStage(IdMixin, db.Model):
    __tablename__ = "build_stages"
    __table_args__ = (UniqueConstraint("build_id", "name", name="uq_build_stages_build_name"),)

    build_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("builds.id", ondelete="CASCADE"), index=True,
                                                nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(32), nullable=False)
    display_name: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="pending", nullable=False)  # pending|running|succeeded|failed|skipped|cancelled
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration: Mapped[float | None] = mapped_column(Float)

    build: Mapped[Build] = relationship(back_populates="stages")


class BuildArtifact(IdMixin, db.Model):
    __tablename__ = "build_artifacts"

    build_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("builds.id", ondelete="CASCADE"), index=True,
                                                nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # iso|qcow2|rootfs|oci|manifest|sbom|checksums|log
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    path: Mapped[str] = mapped_column(String(1024), nullable=False)  # relative to KILN_ARTIFACTS_DIR
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    build: Mapped[Build] = relationship(back_populates="artifacts")


class TestRun(IdMixin, db.Model):
    __tablename__ = "test_runs"
    __test__ = False  # not a pytest class despite the name

    build_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("builds.id", ondelete="CASCADE"), index=True,
                                                nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="queued", nullable=False)  # queued|running|passed|failed|error|cancelled
    kind: Mapped[str] = mapped_column(String(16), default="default", nullable=False)  # default | custom
    assertions: Mapped[list] = mapped_column(JSON, default=list, nullable=False)  # requested custom assertions
    result: Mapped[dict | None] = mapped_column(JSON)  # TestReport.to_dict()
    error: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    build: Mapped[Build] = relationship(back_populates="test_runs")
    cases: Mapped[list["TestCase"]] = relationship(back_populates="test_run", cascade="all, delete-orphan",
                                                   order_by="TestCase.position")


class TestCase(IdMixin, db.Model):
    __tablename__ = "test_cases"
    __test__ = False

    test_run_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("test_runs.id", ondelete="CASCADE"), index=True,
                                                   nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    duration: Mapped[float] = mapped_column(Float, default=0.0, nullable=False)
    assertions: Mapped[list] = mapped_column(JSON, default=list, nullable=False)

    test_run: Mapped[TestRun] = relationship(back_populates="cases")
