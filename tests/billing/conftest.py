"""Billing fixtures: orgs put on a tier (a built-in one, or a test tier with exactly the limits a test needs),
build rows and artifacts as the workers leave them."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

RECIPE = {"name": "web", "release": "trixie", "format": "iso", "packages": ["openssh-server"]}
UNLIMITED = dict(builds_per_hour=None, builds_per_month=None, concurrent_builds=None, build_minutes_per_month=None,
                 storage_mb=None, retention_days=None, members=None, api_keys=None, webhooks=None,
                 llm_tokens_per_month=None, api_requests_per_minute=None, owned_orgs=None)


class Billing:
    def __init__(self, app):
        self.app = app

    def tier(self, name: str = "tight", **limits) -> str:
        """A tier with these limits (every other one unlimited), cheaper than the built-in ones."""
        from app.extensions import db
        from app.models import Tier

        with self.app.app_context():
            db.session.merge(Tier(name=name, display_name=name.title(), position=-1, price_cents_month=0,
                                  **{**UNLIMITED, **limits}))
            db.session.commit()
        return name

    def put_on(self, org_id, tier: str) -> None:
        from app.extensions import db
        from app.models import Organization

        with self.app.app_context():
            db.session.get(Organization, org_id).plan = tier
            db.session.commit()

    def build(self, org_id, *, status="queued", queued_ago=timedelta(0), ran=None, artifact_size=None,
              kind="iso"):
        """A build row; `ran` (a timedelta) makes it a finished build that ran that long, ending now."""
        from app.engine.recipe import recipe_hash, validate_recipe
        from app.extensions import db
        from app.models import Build, BuildArtifact
        from app.models.base import utcnow
        from app.services.builds import lifecycle

        with self.app.app_context():
            normalized = validate_recipe(RECIPE)
            now = utcnow()
            build = Build(org_id=org_id, name="web", recipe=normalized, recipe_hash=recipe_hash(normalized),
                          formats=["iso"], status=status, attempt=1, attempts=[])
            if status != "pending":
                build.queued_at = now - queued_ago
            if ran is not None:
                build.started_at, build.finished_at = now - ran, now
            lifecycle.insert_numbered(build)
            if artifact_size is not None:
                db.session.add(BuildArtifact(build_id=build.id, kind=kind, filename=f"web.{kind}",
                                             path=f"{org_id}/{build.id}/web.{kind}", size=artifact_size,
                                             sha256="0" * 64))
            db.session.commit()
            return build.id


@pytest.fixture
def billing(app):
    return Billing(app)


@pytest.fixture
def org_id(user):
    return user.default_org_id


@pytest.fixture
def user(factory, app):
    """An org owner who does not run the site: registered first, so demoted from site administrator (the
    first account of an install is one) — billing's rules for owners and for site admins differ."""
    from app.extensions import db
    from app.models import User

    alice = factory.user(email="alice@example.com", name="Alice")
    with app.app_context():
        db.session.get(User, alice.id).is_site_admin = False
        db.session.commit()
    return alice


@pytest.fixture
def site_admin(factory, app):
    from app.extensions import db
    from app.models import User

    admin = factory.user(email="root@example.com", name="Root")
    with app.app_context():
        db.session.get(User, admin.id).is_site_admin = True
        db.session.commit()
    return admin


def new_uuid() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def logged_in_client(app, user):
    """A second client with a browser session of `user` (pages), beside `client` for the API."""
    from tests.conftest import PASSWORD

    other = app.test_client()
    assert other.post("/login", data={"email": user.email, "password": PASSWORD}).status_code == 302
    return other
