"""The activity CSV streams after the view has returned, outside any request context a test might hold open."""
from __future__ import annotations

import csv
import io

import pytest

from tests.events.test_activity import _record


@pytest.fixture(autouse=True)
def _push_request_context():
    """pytest-flask keeps one request context open for the whole test, which keeps the view's objects
    attached to a session while the response streams; a real server does not, so neither does this test."""
    yield


def test_csv_export_streams_with_an_api_key(client, app, user, auth_headers):
    """An API-key request records its usage (a commit) before the CSV streams: the lines are still written
    (found by the API fuzzer: the org was detached by then and the stream failed with a 500)."""
    org_id = user.default_org_id
    _record(app, org_id, "conversation.renamed", "conversation", actor_id=user.id, new="web")
    key = client.post(f"/api/organizations/{org_id}/api-keys", json={"name": "export", "scopes": ["admin"]},
                      headers=auth_headers)
    assert key.status_code == 201, key.json
    resp = client.get("/api/activity-log", query_string={"format": "csv", "action": "conversation.renamed"},
                      headers={"X-API-Key": key.json["key"]})
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(resp.data.decode())))
    assert [r["action"] for r in rows] == ["conversation.renamed"]
