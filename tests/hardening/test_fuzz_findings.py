"""Answers the API fuzzer (test_api_fuzz.py) found wrong, pinned as plain tests of the fast suite."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _push_request_context():
    yield


@pytest.mark.parametrize("query", ["from=99999999999999999999&to=1", "from=1&to=9223372036854775808"])
def test_a_huge_version_number_in_a_diff_is_not_found(client, auth_headers, query):
    cid = client.post("/api/conversations", json={"name": "diff"}, headers=auth_headers).json["id"]
    resp = client.get(f"/api/conversations/{cid}/recipe/diff?{query}", headers=auth_headers)
    assert resp.status_code == 404 and resp.json["error"]["code"] == "NOT_FOUND"


def test_a_huge_version_number_in_the_path_is_not_found(client, auth_headers):
    cid = client.post("/api/conversations", json={"name": "diff"}, headers=auth_headers).json["id"]
    resp = client.get(f"/api/conversations/{cid}/recipe/versions/99999999999999999999", headers=auth_headers)
    assert resp.status_code == 404


def _documented(spec, path: str, status: str) -> dict:
    content = spec["paths"][path]["get"]["responses"][status]["content"]["application/json"]["schema"]
    return spec["components"]["schemas"][content["$ref"].rsplit("/", 1)[1]]


def test_health_ready_and_version_answers_are_documented(client):
    spec = client.get("/api/openapi.json").json
    for path, keys in (("/api/health", {"status", "version", "uptime", "db", "redis"}),
                       ("/api/ready", {"status", "db", "redis"}), ("/api/version", {"version", "apiVersion"})):
        assert set(_documented(spec, path, "200")["properties"]) == keys
        assert set(client.get(path).json) == keys


def test_the_default_error_answer_is_the_envelope(client):
    spec = client.get("/api/openapi.json").json
    ref = spec["components"]["responses"]["DEFAULT_ERROR"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(schema["properties"]) == {"error"}


def test_a_page_number_beyond_any_list_is_a_clear_400(client, auth_headers):
    """Found by the API fuzzer: ?page=<huge> overflowed the database's integer in OFFSET (500)."""
    for url in ("/api/notifications", "/api/builds", "/api/conversations", "/api/webhooks", "/api/activity-log"):
        resp = client.get(url, query_string={"page": 10**30}, headers=auth_headers)
        assert resp.status_code in (400, 403), (url, resp.status_code, resp.get_json())
        if resp.status_code == 400:
            assert "page" in resp.get_json()["error"]["details"], url
