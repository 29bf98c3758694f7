"""Artifact retention: a finished build's image files are deleted once its org's tier keeps them no longer.
The build keeps its record, manifest, SBOM and archived log; `artifacts_expired_at` tells pages why the
images are gone. Run by the billing cycle job (app/tasks/billing.py); safe to run twice."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select

from app import queues
from app.extensions import db
from app.models import Build, BuildArtifact, Organization
from app.models.base import utcnow
from app.services import audit
from app.services.billing.tiers import all_tiers, find_tier
from app.services.builds import files

log = logging.getLogger("kiln.billing")
KEPT_KINDS = frozenset({"manifest", "sbom", "log"})


def expire_artifacts(build: Build, now: datetime) -> int:
    """Delete `build`'s image files (rows now, files after commit, through the builds' own file lookup).
    Returns how many artifacts went."""
    doomed = [a for a in build.artifacts if a.kind not in KEPT_KINDS]
    keys = []
    for artifact in doomed:
        files.artifact_file(artifact)  # refuses a stored path outside the artifacts directory
        keys.append(artifact.path)
        db.session.delete(artifact)
    build.artifacts_expired_at = now
    audit.record(None, "build.artifacts_expired", "build", build.id, org_id=build.org_id, number=build.number,
                 kinds=[a.kind for a in doomed])

    def _remove():
        # On this host and in the store (local disk or S3): the row is gone, so a file left would only be
        # space; a store error is logged and the next deletion of the build's prefix takes it.
        for key in keys:
            try:
                files.remove_artifact_file(key)
            except files.StorageError:
                log.exception("retention: %s not removed from %s", key, files.store().describe())

    queues.after_commit(_remove)
    return len(doomed)


def expire_due(now: datetime | None = None) -> int:
    """Every finished build past its org's retention, not yet expired. Returns how many builds expired."""
    now = now or utcnow()
    count = 0
    for tier in all_tiers():
        if tier.retention_days is not None:
            count += _expire_past(Organization.plan == tier.name, now - timedelta(days=tier.retention_days), now)
    # Orgs on a plan no tier has any more are treated as free (tiers.tier_of): they expire with free.
    free = find_tier("free")
    if free.retention_days is not None:
        names = [t.name for t in all_tiers()]
        count += _expire_past(Organization.plan.not_in(names), now - timedelta(days=free.retention_days), now)
    return count


def _expire_past(plan_clause, cutoff: datetime, now: datetime) -> int:
    """Expire the builds of orgs matching `plan_clause` that finished before `cutoff` and still have images."""
    builds = db.session.scalars(select(Build).join(Organization, Organization.id == Build.org_id).where(
        plan_clause, Build.finished_at < cutoff, Build.artifacts_expired_at.is_(None),
        Build.id.in_(select(BuildArtifact.build_id).where(BuildArtifact.kind.not_in(KEPT_KINDS))))).all()
    for build in builds:
        expire_artifacts(build, now)
    return len(builds)
