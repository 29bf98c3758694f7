"""Conversation fixtures: the planner's package indexes warmed once, and small API helpers."""
from __future__ import annotations

import pytest

from tests.conftest import PASSWORD
from tests.planner.fake_llm import FakeLLM


@pytest.fixture(autouse=True)
def _push_request_context():
    """Overrides pytest-flask's: it pushes one request context for the whole test, so every test-client
    request reuses one `g` and the per-request tenant cache (resolve_org) of one caller leaks to the next."""
    yield


@pytest.fixture(scope="session")
def package_indexes(app):
    """The planner reads the real Debian package index (the app's engine settings); load it once."""
    from app.engine.packages import get_index
    from app.engine.settings import EngineSettings

    settings = EngineSettings.from_config(app.config)
    for release in ("trixie", "bookworm"):
        assert get_index(release, settings).exists("openssh-server")


@pytest.fixture
def chat(client, auth_headers, package_indexes):
    """chat("message", conversation_id=None, headers=None) -> the POST /api/chat JSON (asserting 200)."""

    def send(message: str, conversation_id=None, headers=None):
        body = {"message": message}
        if conversation_id:
            body["conversationId"] = conversation_id
        resp = client.post("/api/chat", json=body, headers=headers or auth_headers)
        assert resp.status_code == 200, resp.json
        return resp.json

    return send


@pytest.fixture
def conversation(client, auth_headers):
    resp = client.post("/api/conversations", json={"name": "Web server"}, headers=auth_headers)
    assert resp.status_code == 201, resp.json
    return resp.json


@pytest.fixture
def login(client):
    """Log the test client in through the real login page (sessions carry the page views)."""

    def run(user):
        resp = client.post("/login", data={"email": user.email, "password": PASSWORD})
        assert resp.status_code == 302, resp.data[:500]
        return user

    return run


@pytest.fixture
def llm(app, monkeypatch):
    """The app's planner talks to a real local chat-completions server (the fake of the external LLM)."""
    fake = FakeLLM()
    monkeypatch.setitem(app.config, "KILN_LLM_URL", fake.url)
    monkeypatch.setitem(app.config, "KILN_LLM_MODEL", "tiny-test")
    monkeypatch.setitem(app.config, "KILN_LLM_TIMEOUT", 20.0)
    yield fake
    fake.close()
