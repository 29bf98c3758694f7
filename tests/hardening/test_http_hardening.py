"""Request plumbing under abuse: body size limit, client IPs behind a trusted proxy, Secure cookies."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from app.config import load_config


@pytest.fixture(autouse=True)
def _push_request_context():
    yield


def test_an_oversized_api_body_gets_413_in_the_error_envelope(app, client, auth_headers):
    limit = app.config["MAX_CONTENT_LENGTH"]
    assert 1024 * 1024 <= limit <= 16 * 1024 * 1024
    body = b'{"name": "' + b"x" * limit + b'"}'
    resp = client.post("/api/conversations", data=body, headers={**auth_headers, "Content-Type": "application/json"})
    assert resp.status_code == 413
    error = resp.json["error"]
    assert error["code"] == "VALIDATION_ERROR" and "KiB" in error["message"] and "body" in error["details"]
    assert error["traceId"]


def test_an_oversized_login_form_gets_a_readable_413_page(app, client):
    resp = client.post("/login", data={"email": "a@example.com", "password": "x" * (app.config["MAX_CONTENT_LENGTH"] + 1)})
    assert resp.status_code == 413
    assert resp.mimetype == "text/html" and b"larger than the limit" in resp.data


def test_a_body_within_the_limit_is_served(client, auth_headers):
    resp = client.post("/api/conversations", json={"name": "x" * 100}, headers=auth_headers)
    assert resp.status_code == 201


def test_the_limit_is_a_setting():
    assert load_config_for({"MAX_CONTENT_LENGTH": "1000"})["MAX_CONTENT_LENGTH"] == 1000


def load_config_for(env: dict) -> dict:
    return load_config(Path(tempfile.mkdtemp()), {"SECRET_KEY": "x", **env})


@pytest.mark.parametrize("env,secure", [
    ({}, False),
    ({"KILN_BASE_URL": "http://kiln.lan:5000"}, False),
    ({"KILN_BASE_URL": "https://kiln.example.com"}, True),
    ({"KILN_BASE_URL": "https://kiln.example.com", "SESSION_COOKIE_SECURE": "false"}, False),
    ({"SESSION_COOKIE_SECURE": "true"}, True),
])
def test_cookies_are_secure_when_served_over_https(env, secure):
    config = load_config_for(env)
    assert config["SESSION_COOKIE_SECURE"] is secure and config["REMEMBER_COOKIE_SECURE"] is secure


@pytest.fixture
def proxied_app(app, app_config):
    """A second app over the same database and Redis (`app` empties both around the test)."""
    from app import create_app

    return create_app({**app_config, "KILN_TRUSTED_PROXIES": 1, "KILN_LOGIN_LIMIT_IP": "3 per minute",
                       "SESSION_COOKIE_SECURE": True, "REMEMBER_COOKIE_SECURE": True})


def _attempts(client, forwarded_for: str, n: int) -> list[int]:
    codes = []
    for i in range(n):
        resp = client.post("/api/auth/login", json={"email": f"nobody{i}-{forwarded_for}@example.com", "password": "wrong password"},
                           headers={"X-Forwarded-For": forwarded_for})
        codes.append(resp.status_code)
    return codes


def test_behind_a_trusted_proxy_login_limits_key_on_the_client_ip(proxied_app):
    client = proxied_app.test_client()
    assert _attempts(client, "203.0.113.7", 4) == [401, 401, 401, 429]
    # Another client behind the same proxy is not locked out with the first.
    assert _attempts(client, "198.51.100.9", 1) == [401]


def test_without_a_trusted_proxy_forwarded_headers_are_ignored(app):
    # Otherwise a client could dodge the limit by inventing a new X-Forwarded-For each time.
    client = app.test_client()
    limit = int(app.config["KILN_LOGIN_LIMIT_IP"].split()[0])
    codes = [client.post("/api/auth/login", json={"email": f"n{i}@example.com", "password": "wrong password"},
                         headers={"X-Forwarded-For": f"10.0.0.{i}"}).status_code for i in range(limit + 1)]
    assert codes[-1] == 429


def test_behind_a_trusted_proxy_https_gives_secure_cookies(proxied_app, factory):
    user = factory.user(email="proxied@example.com")
    client = proxied_app.test_client()
    resp = client.post("/login", data={"email": user.email, "password": user.password, "remember": "on"},
                       headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.8"})
    assert resp.status_code == 302
    cookies = resp.headers.getlist("Set-Cookie")
    assert cookies and all("Secure" in c for c in cookies)
