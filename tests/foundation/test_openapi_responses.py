"""/api/openapi.json describes every JSON answer, so clients generated from it know the bodies."""
from __future__ import annotations

import pytest

# Success answers that are not a JSON body. Each must still name its media type in the document.
# The WebSocket log stream (/api/builds/{id}/logs/stream) and the SSE build stream (/api/streams/builds/{id})
# are not smorest routes and so are not in the document at all.
NOT_JSON = {
    # The image file itself: streamed with Range requests, checksum headers.
    ("get", "/api/builds/{build_id}/download"),
    # One artifact file (ISO, qcow2, manifest, sbom, checksums, build log), as above.
    ("get", "/api/builds/{build_id}/artifacts/{artifact_id}/download"),
    # Server-Sent Events: the reply in chunks, then the recipe.
    ("get", "/api/chat/stream"),
    # A backup archive (tar.gz).
    ("get", "/api/backups/{filename}/download"),
}

METHODS = ("get", "put", "post", "patch", "delete")


@pytest.fixture
def spec(client):
    return client.get("/api/openapi.json").json


def operations(spec):
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield method, path, item[method]


def resolve(spec, schema: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def success_answers(operation):
    for status, answer in operation["responses"].items():
        if str(status).startswith("2") and str(status) != "204":
            yield str(status), answer


def test_every_json_answer_has_a_schema(spec):
    undescribed = []
    for method, path, operation in operations(spec):
        if (method, path) in NOT_JSON:
            continue
        for status, answer in success_answers(operation):
            schema = answer.get("content", {}).get("application/json", {}).get("schema")
            if schema is None or not resolve(spec, schema).get("properties"):
                undescribed.append(f"{method.upper()} {path} {status}")
    assert not undescribed, "JSON answers without a response schema:\n" + "\n".join(undescribed)


def test_the_not_json_list_names_documented_operations(spec):
    """An entry whose route is gone or renamed, or that does not say what it sends instead, is stale."""
    documented = {(method, path): operation for method, path, operation in operations(spec)}
    for method, path in NOT_JSON:
        assert (method, path) in documented, f"{method.upper()} {path} is not in the document"
        media = documented[(method, path)]["responses"]["200"].get("content", {})
        assert set(media) - {"application/json"}, f"{method.upper()} {path} names no media type for its body"


def test_lists_answer_the_page_envelope(spec):
    """API.md: a list takes ?page&limit and answers {"<items>": [...], totalCount, page, limit, hasMore}."""
    for method, path, operation in operations(spec):
        query = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        if method != "get" or not {"page", "limit"} <= query:
            continue
        body = resolve(spec, operation["responses"]["200"]["content"]["application/json"]["schema"])
        props = body["properties"]
        where = f"GET {path}"
        assert props.get("totalCount", {}).get("type") == "integer", where
        assert props.get("page", {}).get("type") == "integer", where
        assert props.get("limit", {}).get("type") == "integer", where
        assert props.get("hasMore", {}).get("type") == "boolean", where
        assert [name for name, prop in props.items() if prop.get("type") == "array"], where
