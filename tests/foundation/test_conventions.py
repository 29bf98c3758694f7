"""API conventions: the envelope everywhere, /api/v1 alias, health, OpenAPI, rate limits, headers."""
from __future__ import annotations

from tests.conftest import PASSWORD



def test_health_ok_with_db_and_redis(client):
    resp = client.get("/api/health")
    assert resp.status_code == 200
    assert resp.json["status"] == "ok" and resp.json["db"] == "connected" and resp.json["redis"] == "connected"
    assert resp.json["version"] and resp.json["uptime"] >= 0
    assert client.get("/api/v1/health").json["status"] == "ok"
    assert client.get("/api/ready").status_code == 200
    assert client.get("/api/version").json["version"]


def test_health_503_when_redis_is_down(app, client, monkeypatch):
    import redis as redis_lib

    broken = redis_lib.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    monkeypatch.setitem(app.extensions, "redis", broken)
    resp = client.get("/api/health")
    assert resp.status_code == 503 and resp.json["redis"] == "disconnected" and resp.json["db"] == "connected"


def test_unknown_api_route_and_wrong_method_use_the_envelope(client):
    resp = client.get("/api/nope")
    assert resp.status_code == 404 and resp.json["error"]["code"] == "NOT_FOUND" and resp.json["error"]["traceId"]
    resp = client.get("/api/v1/nope")
    assert resp.status_code == 404 and resp.json["error"]["code"] == "NOT_FOUND"
    resp = client.delete("/api/health")
    assert resp.status_code == 405 and resp.json["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_pages_keep_html_errors(client):
    resp = client.get("/no-such-page")
    assert resp.status_code == 404 and resp.mimetype == "text/html" and b"404" in resp.data


def test_server_error_is_an_envelope_with_trace_id(app_config):
    from app import create_app

    fresh = create_app(dict(app_config))

    @fresh.route("/api/_boom")
    def _boom():
        raise RuntimeError("kaboom")

    resp = fresh.test_client().get("/api/_boom")
    assert resp.status_code == 500
    assert resp.json["error"]["code"] == "SERVER_ERROR" and "kaboom" not in resp.json["error"]["message"]
    assert resp.json["error"]["traceId"] == resp.headers["X-Trace-Id"]


def test_openapi_documents_security_schemes_and_routes(client):
    spec = client.get("/api/openapi.json").json
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["scheme"] == "bearer" and schemes["apiKeyHeader"]["name"] == "X-API-Key"
    assert "/api/auth/login" in spec["paths"] and "/api/health" in spec["paths"]
    assert client.get("/api/v1/openapi.json").status_code == 200


def test_swagger_ui_is_served_locally(client):
    resp = client.get("/api/docs")
    assert resp.status_code == 200
    html = resp.data.decode()
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in html and "http" not in html.split("<body>")[1].split("swagger-ui-bundle")[0]
    assert client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200


def test_security_headers(client):
    resp = client.get("/login")
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "HX-Request" in resp.headers.get("Vary", "")


def test_rate_limit_headers_and_429(app, client, auth_headers):
    resp = client.get("/api/auth/me", headers=auth_headers)
    assert resp.headers["X-RateLimit-Limit"] == "100"
    remaining = int(resp.headers["X-RateLimit-Remaining"])
    assert remaining == 99 and int(resp.headers["X-RateLimit-Reset"]) > 0
    for _ in range(remaining):
        client.get("/api/auth/me", headers=auth_headers)
    resp = client.get("/api/auth/me", headers=auth_headers)
    assert resp.status_code == 429
    assert resp.json["error"]["code"] == "RATE_LIMITED" and int(resp.headers["Retry-After"]) > 0


def test_login_attempts_limited_per_account(client, user):
    for _ in range(5):
        assert client.post("/api/auth/login", json={"email": user.email, "password": "wrong"}).status_code == 401
    resp = client.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
    assert resp.status_code == 429 and resp.json["error"]["code"] == "RATE_LIMITED"
    # another account from the same address is still allowed
    other = client.post("/api/auth/login", json={"email": "someone@example.com", "password": "wrong"})
    assert other.status_code == 401


def test_tenant_header_rules(client, factory, user, auth_headers):
    # /auth/me needs no tenant; a bad X-Tenant-ID on a tenant route is validated
    stranger = factory.user(email="eve@example.com")
    other_org = stranger.default_org_id
    from app.http.auth import resolve_org
    from app.services.errors import Forbidden, ValidationFailed

    with client.application.test_request_context("/api/x", headers={**auth_headers, "X-Tenant-ID": str(other_org)}):
        client.application.preprocess_request()
        try:
            resolve_org()
        except Forbidden:
            pass
        else:
            raise AssertionError("another user's org must be forbidden")
    with client.application.test_request_context("/api/x", headers={**auth_headers, "X-Tenant-ID": "nope"}):
        client.application.preprocess_request()
        try:
            resolve_org()
        except ValidationFailed as exc:
            assert "X-Tenant-ID" in exc.details
        else:
            raise AssertionError("a malformed tenant id must be rejected")
    with client.application.test_request_context("/api/x", headers=auth_headers):
        client.application.preprocess_request()
        org, role = resolve_org()
        assert org.id == user.default_org_id and role == "owner"


