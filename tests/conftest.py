"""Shared fixtures: real Redis, the real database (SQLite or PostgreSQL by KILN_TEST_DB), an app, factories."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.fixtures.services import postgres_server, redis_server

DB_KIND = os.environ.get("KILN_TEST_DB", "sqlite")
PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def redis_url():
    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    if DB_KIND == "postgresql":
        with postgres_server() as url:
            yield url
    else:
        # A file, not :memory:, so worker processes and live-server threads see the same data.
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'kiln-test.db'}"


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """KILN_DATA_DIR of the session: the engine's caches, package indexes and artifacts.
    Set KILN_TEST_DATA_DIR to keep the caches across runs (a cold run downloads and bootstraps)."""
    configured = os.environ.get("KILN_TEST_DATA_DIR")
    if configured:
        path = Path(configured).resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("kiln-data")


@pytest.fixture(scope="session")
def app_config(database_url, redis_url, data_dir, tmp_path_factory):
    instance = tmp_path_factory.mktemp("instance")
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-" + uuid.uuid4().hex,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": redis_url,
        "RATELIMIT_STORAGE_URI": redis_url,
        "KILN_DATA_DIR": str(data_dir),
        "KILN_ARTIFACTS_DIR": str(data_dir / "artifacts"),
        "KILN_OUTBOX_DIR": str(instance / "outbox"),
        # Backups configured (the API fuzzer may trigger one as the site administrator, the first account).
        "KILN_BACKUP_DIR": str(instance / "backups"),
        "KILN_BACKUP_KEY": "kCDxLRC1nVDy3hjU0OKGmGe1oXRaQ9dNGa3Ta3Kn6Xo=",
        "WTF_CSRF_ENABLED": False,
        # Cheap argon2id: the suite hashes hundreds of passwords on a 2-core machine.
        "ARGON2_TIME_COST": 1,
        "ARGON2_MEMORY_COST": 8192,
        "ARGON2_PARALLELISM": 1,
        "SERVER_NAME": None,
        # Suites outside tests/billing exercise features, not quotas: their orgs start unlimited. The billing
        # tests put orgs on the tier they test.
        "KILN_DEFAULT_TIER": "enterprise",
    }


@pytest.fixture(scope="session")
def app(app_config):
    from app import create_app
    from app.extensions import db

    application = create_app(dict(app_config))
    with application.app_context():
        db.create_all()
    yield application
    with application.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


@pytest.fixture(autouse=True)
def _clean_state(request):
    """Every test starts with empty tables, an empty Redis (rate-limit counters included) and no mail."""
    if "app" not in request.fixturenames:
        yield
        return
    application = request.getfixturevalue("app")
    from app.extensions import db, redis

    with application.app_context():
        client = redis.client  # kept: a test may swap the app's client for a broken one
        client.flushdb()
    outbox = Path(application.config["KILN_OUTBOX_DIR"])
    if outbox.is_dir():
        for mail in outbox.iterdir():
            mail.unlink()
    yield
    with application.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(table.delete())
    client.flushdb()


@pytest.fixture
def app_ctx(app):
    with app.app_context():
        yield


class Factory:
    """Builds users, orgs and credentials through the real services."""

    def __init__(self, app):
        self.app = app

    def user(self, email: str | None = None, name: str = "Test User", password: str = PASSWORD):
        from app.extensions import db
        from app.services import accounts

        with self.app.app_context():
            user = accounts.register_user(email or f"user-{uuid.uuid4().hex[:8]}@example.com", password, name)
            db.session.commit()
            return _Snapshot(id=user.id, email=user.email, name=user.name, default_org_id=user.default_org_id,
                             password=password)

    def token(self, user) -> str:
        from app.extensions import redis
        from app.services import tokens

        with self.app.app_context():
            token, _ = tokens.issue(self.app.config, redis.client, user.id, user.default_org_id)
            return token

    def headers(self, user, org_id=None) -> dict:
        headers = {"Authorization": f"Bearer {self.token(user)}"}
        if org_id is not None:
            headers["X-Tenant-ID"] = str(org_id)
        return headers

    def add_member(self, org_id, user, role: str = "member"):
        from app.extensions import db
        from app.models import Membership

        with self.app.app_context():
            db.session.add(Membership(org_id=org_id, user_id=user.id, role=role))
            db.session.commit()

    def org(self, owner, name: str = "Acme"):
        from app.extensions import db
        from app.models import User
        from app.services import accounts
        from app.services.audit import Actor

        with self.app.app_context():
            user = db.session.get(User, owner.id)
            org = accounts.create_organization(Actor(user=user), name, owner=user)
            db.session.commit()
            return org.id


class _Snapshot:
    def __init__(self, **kw):
        self.__dict__.update(kw)


@pytest.fixture
def factory(app):
    return Factory(app)


@pytest.fixture
def user(factory):
    return factory.user(email="alice@example.com", name="Alice")


@pytest.fixture
def auth_headers(factory, user):
    return factory.headers(user)


@pytest.fixture
def stream_slots(monkeypatch):
    """This test's own count of the web process's stream slots (app/http/streams.py): streams of earlier tests
    end whenever their server notices the client left, so the process-wide count can drop mid-test and let one
    stream too many through."""
    from app.http import streams

    slots = streams.StreamSlots()
    monkeypatch.setattr(streams, "slots", slots)
    return slots


def pytest_report_header(config):
    return f"kiln database: {DB_KIND}"




# Browser fixtures: live_server_url, browser, page (with .console_errors), logged_in_page; helper login(page, email, pw).
from tests.fixtures.browser import browser, live_server_url, logged_in_page, page  # noqa: E402,F401
# Real images: engine_data_dir, engine_settings, built_iso, built_artifacts (one build per session).
from tests.fixtures.images import built_artifacts, built_iso, built_rootfs, engine_data_dir, engine_settings  # noqa: E402,F401
