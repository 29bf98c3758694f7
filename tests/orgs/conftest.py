"""Fixtures for the organization tests: one org with a person in every role, plus an outsider."""
from __future__ import annotations

import uuid

import pytest


_HASH = {}


def fast_user(app, email: str, name: str = "Test User"):
    """A user with a personal org, like accounts.register_user, but with one argon2 hash reused (speed)."""
    from tests.conftest import PASSWORD, _Snapshot

    from app.extensions import db
    from app.models import User
    from app.services import accounts
    from app.services.audit import Actor

    if "hash" not in _HASH:
        _HASH["hash"] = accounts.hash_password(PASSWORD)
    with app.app_context():
        user = User(email=email, name=name, password_hash=_HASH["hash"])
        db.session.add(user)
        db.session.flush()
        org = accounts.create_organization(Actor(user=user), f"{name}'s workspace", owner=user, personal=True)
        user.default_org_id = org.id
        db.session.commit()
        return _Snapshot(id=user.id, email=user.email, name=user.name, default_org_id=user.default_org_id,
                         password=PASSWORD)


class Team:
    def __init__(self, factory):
        self.factory = factory
        app = factory.app
        self.owner = fast_user(app, "owner@example.com", "Olga Owner")
        self.org_id = factory.org(self.owner, "Acme")
        self.admin = fast_user(app, "admin@example.com", "Adam Admin")
        self.member = fast_user(app, "member@example.com", "Mia Member")
        self.viewer = fast_user(app, "viewer@example.com", "Vic Viewer")
        self.outsider = fast_user(app, "outsider@example.com", "Otto Outsider")
        for user, role in ((self.admin, "admin"), (self.member, "member"), (self.viewer, "viewer")):
            factory.add_member(self.org_id, user, role)

    def h(self, user) -> dict:
        """Bearer headers acting in Acme."""
        return self.factory.headers(user, self.org_id)

    def url(self, suffix: str = "") -> str:
        return f"/api/organizations/{self.org_id}{suffix}"


@pytest.fixture
def acme(factory):
    return Team(factory)


def make_key(client, acme, scopes, name="ci") -> dict:
    resp = client.post(acme.url("/api-keys"), json={"name": name, "scopes": scopes}, headers=acme.h(acme.admin))
    assert resp.status_code == 201, resp.json
    return resp.json


def key_headers(raw: str, org_id=None) -> dict:
    headers = {"Authorization": f"Bearer {raw}"}
    if org_id is not None:
        headers["X-Tenant-ID"] = str(org_id)
    return headers


def make_conversation(app, org_id, creator, name="Web server"):
    """A conversation row (the conversations feature owns its API; access rules are what is tested here)."""
    from app.extensions import db
    from app.models import Conversation

    with app.app_context():
        row = Conversation(org_id=org_id, name=name, created_by_id=creator.id)
        db.session.add(row)
        db.session.commit()
        return str(row.id)


def _session_id(app, user_id) -> str:
    """What flask-login keeps for this user (it carries the password fingerprint)."""
    from app.extensions import db
    from app.models import User

    with app.app_context():
        return db.session.get(User, user_id).get_id()


def session_login(client, user, org_id=None):
    """Log a browser session in without a password round trip (flask-login reads _user_id)."""
    from flask import g

    # pytest-flask keeps one app context (so one `g`) for the whole test: forget flask-login's cached user.
    g.pop("_login_user", None)
    session_id = _session_id(client.application, user.id)
    with client.session_transaction() as sess:
        sess["_user_id"] = session_id
        sess["_fresh"] = True
        if org_id is not None:
            sess["org_id"] = str(org_id)


def audit_actions(app, org_id=None) -> list[str]:
    from sqlalchemy import select

    from app.extensions import db
    from app.models import AuditRecord

    with app.app_context():
        query = select(AuditRecord).order_by(AuditRecord.created_at)
        if org_id is not None:
            query = query.where(AuditRecord.org_id == uuid.UUID(str(org_id)))
        return [r.action for r in db.session.scalars(query)]
