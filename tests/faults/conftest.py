"""Fault tests: real `python worker.py` processes, real builds, and a fault injected into them."""
from __future__ import annotations

import uuid

import pytest

from tests.builds.workers import WorkerProcess, _kill_processes_under, _unmount_under
from tests.fixtures.images import ROOTFS_RECIPE


def rootfs_recipe(tag: str) -> dict:
    """The cheapest real build, under a hostname nobody built before (so it is not a cached result)."""
    return {**ROOTFS_RECIPE, "hostname": f"f-{tag}-{uuid.uuid4().hex[:8]}"}


@pytest.fixture
def workers(app, engine_data_dir, tmp_path):
    """workers(name, data_dir=None, **settings) -> a running `python worker.py` on all queues; every one
    started is stopped at the end, and whatever is left in the scratch spaces is killed and unmounted."""
    started = []

    def start(name: str, data_dir=None, **settings) -> WorkerProcess:
        worker = WorkerProcess(app, data_dir or engine_data_dir, tmp_path / f"{name}.log", name,
                               settings={k: str(v) for k, v in settings.items()})
        started.append((worker, data_dir or engine_data_dir))
        return worker

    yield start
    for worker, data_dir in started:
        worker.stop()
    for _, data_dir in started:
        _kill_processes_under(data_dir / "workers")
        _unmount_under(data_dir / "workers")


def build_rows(app, build_ids) -> dict:
    """id -> a detached Build row (with its stages, artifacts) read fresh from the database."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from app.extensions import db
    from app.models import Build

    with app.app_context():
        ids = [uuid.UUID(str(build_id)) for build_id in build_ids]
        rows = db.session.scalars(select(Build).where(Build.id.in_(ids))
                                  .options(selectinload(Build.stages), selectinload(Build.artifacts))).all()
        for row in rows:
            db.session.expunge(row)
        return {str(row.id): row for row in rows}


def outbox_types(app, build_id) -> list[str]:
    from sqlalchemy import select

    from app.extensions import db
    from app.models import OutboxEvent

    with app.app_context():
        return list(db.session.scalars(select(OutboxEvent.type).where(OutboxEvent.entity_id == build_id)
                                       .order_by(OutboxEvent.created_at)).all())


def audit_actions(app, build_id) -> list[str]:
    from sqlalchemy import select

    from app.extensions import db
    from app.models import AuditRecord

    with app.app_context():
        return list(db.session.scalars(select(AuditRecord.action).where(AuditRecord.entity_id == build_id)
                                       .order_by(AuditRecord.created_at)).all())


def all_log_lines(client, headers, build_id) -> list[dict]:
    """The build's whole log through the API (the stream while it holds the lines, else the archived file)."""
    lines, after = [], 0
    while True:
        resp = client.get(f"/api/builds/{build_id}/logs?after={after}&limit=10000", headers=headers)
        assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
        batch = resp.json["lines"]
        if not batch:
            return lines
        lines += batch
        after = batch[-1]["seq"]
