"""Builds fixtures: a recipe, build rows in any state with real files on disk, conversations."""
from __future__ import annotations

import hashlib
import os
import uuid
from datetime import timedelta

import pytest

from tests.builds.workers import WorkerProcess, _kill_processes_under, _unmount_under
from tests.fixtures.images import SSH_RECIPE

RECIPE = {"name": "web", "release": "trixie", "format": "iso", "packages": ["openssh-server"]}


class BuildFactory:
    def __init__(self, app):
        self.app = app

    def create(self, org_id, *, status="succeeded", recipe=None, formats=None, conversation_id=None,
               recipe_version_id=None, image: bytes | None = None, created_by=None, started_ago: float | None = None,
               **values):
        """A build row in `status` (test data, as the worker would have left it), with an image file if given."""
        from app.engine.recipe import recipe_hash, validate_recipe
        from app.extensions import db
        from app.models import Build, BuildArtifact, BuildStage
        from app.models.base import utcnow
        from app.services.builds import files, lifecycle, plan

        with self.app.app_context():
            normalized = validate_recipe(recipe or RECIPE)
            formats = formats or [normalized["format"]]
            build = Build(org_id=org_id, name=normalized["name"], recipe=normalized,
                          recipe_hash=recipe_hash(normalized), formats=formats, status=status,
                          attempt=values.pop("attempt", 1), attempts=values.pop("attempts", []), conversation_id=conversation_id,
                          recipe_version_id=recipe_version_id, created_by_id=created_by, **values)
            now = utcnow()
            if status != "pending":
                build.queued_at = now
            if status in ("building", "testing", "succeeded", "failed", "cancelled"):
                build.started_at = now - timedelta(seconds=started_ago or 30)
            if status in ("succeeded", "failed", "cancelled"):
                build.finished_at = now
                build.progress = 100 if status == "succeeded" else 40
            build.progress = values.get("progress", build.progress or 0)
            lifecycle.insert_numbered(build)
            for position, (name, display) in enumerate(plan.stage_plan(formats)):
                db.session.add(BuildStage(build_id=build.id, position=position, name=name, display_name=display,
                                          status="succeeded" if status == "succeeded" else "pending"))
            if image is not None:
                directory = files.artifacts_dir(build)
                directory.mkdir(parents=True, exist_ok=True)
                filename = f"{normalized['name']}.{formats[0]}"
                (directory / filename).write_bytes(image)
                db.session.add(BuildArtifact(build_id=build.id, kind=formats[0], filename=filename,
                                             path=os.path.relpath(directory / filename, files.artifacts_root()),
                                             size=len(image), sha256=hashlib.sha256(image).hexdigest()))
            db.session.commit()
            return build.id

    def conversation(self, org_id, owner_id, recipe=None):
        """A conversation with one recipe version (as the chat service leaves it)."""
        from app.engine.recipe import recipe_hash, validate_recipe
        from app.extensions import db
        from app.models import Conversation, RecipeVersion

        with self.app.app_context():
            normalized = validate_recipe(recipe or RECIPE)
            conv = Conversation(org_id=org_id, name="Web server", created_by_id=owner_id, current_version=1)
            db.session.add(conv)
            db.session.flush()
            db.session.add(RecipeVersion(conversation_id=conv.id, number=1, recipe=normalized,
                                         recipe_hash=recipe_hash(normalized), source="initial", author_id=owner_id))
            db.session.commit()
            return conv.id

    def get(self, build_id):
        from app.extensions import db
        from app.models import Build

        with self.app.app_context():
            build = db.session.get(Build, build_id)
            if build is not None:
                db.session.expunge(build)
            return build


def append_log(app, build_id, lines) -> list[int]:
    """What a worker writes: (stage, level, message) lines into the build's log; returns their seqs."""
    from app.extensions import db
    from app.models import Build
    from app.services.builds import logs

    with app.app_context():
        build = db.session.get(Build, build_id)
        return [logs.append(build, stage, level, message) for stage, level, message in lines]


def beat(app, build_id, attempt: int = 1, worker: str = "test-worker", ttl: int = 60) -> None:
    """What a live worker's supervisor does for the attempt it runs."""
    from app.extensions import redis
    from app.services.builds import signals

    with app.app_context():
        redis.client.set(signals.heartbeat_key(build_id, attempt), worker, ex=ttl)


@pytest.fixture
def builds(app):
    return BuildFactory(app)


@pytest.fixture
def org_id(user):
    return user.default_org_id


@pytest.fixture
def ssh_recipe():
    return dict(SSH_RECIPE)


def new_uuid() -> str:
    return str(uuid.uuid4())


@pytest.fixture(autouse=True)
def _fresh_tenant_per_request(app):
    """pytest-flask keeps one app context open for the whole test, so `g` (where resolve_org caches the
    tenant) would carry over between client requests by different users. In production every request
    has its own `g`; give each test request a clean tenant cache too."""
    from flask import g, request_started

    def _clear(sender, **extra):
        g.pop("current_org", None)
        g.pop("current_role", None)

    request_started.connect(_clear, app)
    yield
    request_started.disconnect(_clear, app)


@pytest.fixture
def start_worker(app, engine_data_dir, tmp_path):
    """start_worker(name, *queues) -> a running `python worker.py` (on all queues unless named) on the session's
    Redis, database and engine caches; every worker started is stopped, and anything left under the engine's
    tmp dir is killed and unmounted."""
    workers = []

    def start(name: str, *queues: str) -> WorkerProcess:
        worker = WorkerProcess(app, engine_data_dir, tmp_path / f"{name}.log", name, queues)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()
    _kill_processes_under(engine_data_dir / "tmp")
    _unmount_under(engine_data_dir / "tmp")
