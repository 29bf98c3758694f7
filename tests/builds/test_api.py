"""Builds API (API.md, Builds) as a client drives it: JSON shapes, lifecycle moves, queue, permissions."""
from __future__ import annotations

import pytest

from tests.builds.conftest import RECIPE, beat


def _create(client, headers, **body):
    body.setdefault("recipe", RECIPE)
    return client.post("/api/builds", json=body, headers=headers)


def _queue_ids(app, name="builds"):
    from app import queues

    with app.app_context():
        return queues.get_queue(name).get_job_ids()


# Create ------------------------------------------------------------------------------------------

def test_create_inline_recipe_pending_then_numbers_increase(client, auth_headers, app):
    resp = _create(client, auth_headers, start=False)
    assert resp.status_code == 201, resp.json
    body = resp.json
    assert body["status"] == "pending" and body["buildId"] == body["id"] and body["number"] == 1
    assert body["format"] == "iso" and body["recipe"]["name"] == "web" and len(body["recipeHash"]) == 64
    assert [s["name"] for s in body["stages"]] == ["resolve", "bootstrap", "configure", "package", "evidence", "test"]
    assert body["stages"][2]["displayName"] == "Config Agent" and body["stages"][5]["displayName"] == "Image Tests"
    assert _queue_ids(app) == []
    second = _create(client, auth_headers, start=False, format="rootfs")
    assert second.json["number"] == 2 and second.json["formats"] == ["rootfs"]


def test_create_starts_by_default_and_enqueues_once(client, auth_headers, app):
    resp = _create(client, auth_headers)
    assert resp.status_code == 201 and resp.json["status"] == "queued" and resp.json["queuedAt"]
    build_id = resp.json["id"]
    assert _queue_ids(app) == [build_id]
    from app import queues

    with app.app_context():
        job = queues.enqueue_build(build_id, 1)  # already queued: a no-op
        assert job.id == build_id and job.timeout == app.config["KILN_BUILD_JOB_TIMEOUT"]
        assert job.serializer.__name__ == "JSONSerializer" if hasattr(job.serializer, "__name__") else True
    assert _queue_ids(app) == [build_id]


def test_create_validation_errors_name_fields(client, auth_headers):
    bad = _create(client, auth_headers, recipe={"name": "x", "release": "sid", "packages": ["Bad Name"]})
    assert bad.status_code == 400
    details = bad.json["error"]["details"]
    assert bad.json["error"]["code"] == "VALIDATION_ERROR"
    assert "recipe.release" in details and any(k.startswith("recipe.packages") for k in details)
    neither = client.post("/api/builds", json={}, headers=auth_headers)
    assert neither.status_code == 400 and "conversationId" in neither.json["error"]["details"]
    fmt = _create(client, auth_headers, format="vhd")
    assert fmt.status_code == 400 and "format" in fmt.json["error"]["details"]
    unknown = _create(client, auth_headers, colour="red")
    assert unknown.status_code == 400 and "colour" in unknown.json["error"]["details"]


def test_create_from_conversation_uses_current_version_and_access(client, factory, user, auth_headers, builds, app):
    conv = builds.conversation(user.default_org_id, user.id)
    resp = client.post("/api/builds", json={"conversationId": str(conv), "start": False}, headers=auth_headers)
    assert resp.status_code == 201, resp.json
    assert resp.json["conversationId"] == str(conv) and resp.json["recipeVersion"] == 1
    # A member who cannot see the private conversation can neither build it nor see its builds.
    bob = factory.user(email="bob@example.com")
    factory.add_member(user.default_org_id, bob, "member")
    bob_headers = factory.headers(bob, org_id=user.default_org_id)
    denied = client.post("/api/builds", json={"conversationId": str(conv)}, headers=bob_headers)
    assert denied.status_code == 404
    assert client.get(f"/api/builds/{resp.json['id']}", headers=bob_headers).status_code == 404
    assert client.get("/api/builds", headers=bob_headers).json["totalCount"] == 0
    # A viewer cannot create builds at all.
    carol = factory.user(email="carol@example.com")
    factory.add_member(user.default_org_id, carol, "viewer")
    viewer = client.post("/api/builds", json={"recipe": RECIPE}, headers=factory.headers(carol, user.default_org_id))
    assert viewer.status_code == 403


# List / get / status -----------------------------------------------------------------------------

def test_list_filters_sort_and_pagination(client, auth_headers, builds, org_id, user):
    conv = builds.conversation(org_id, user.id)
    ids = [builds.create(org_id, status=s) for s in ("succeeded", "failed", "succeeded")]
    builds.create(org_id, status="pending", conversation_id=conv)
    page = client.get("/api/builds?limit=2&page=1&sortBy=number&sortOrder=asc", headers=auth_headers).json
    assert page["totalCount"] == 4 and page["limit"] == 2 and page["page"] == 1 and page["hasMore"] is True
    assert [b["number"] for b in page["builds"]] == [1, 2]
    last = client.get("/api/builds?limit=2&page=2&sortBy=number&sortOrder=asc", headers=auth_headers).json
    assert [b["number"] for b in last["builds"]] == [3, 4] and last["hasMore"] is False
    desc = client.get("/api/builds?sortBy=number", headers=auth_headers).json
    assert [b["number"] for b in desc["builds"]] == [4, 3, 2, 1]
    ok = client.get("/api/builds?status=succeeded", headers=auth_headers).json
    assert sorted(b["id"] for b in ok["builds"]) == sorted([str(ids[0]), str(ids[2])])
    both = client.get("/api/builds?status=failed,pending", headers=auth_headers).json
    assert both["totalCount"] == 2
    by_conv = client.get(f"/api/builds?conversationId={conv}", headers=auth_headers).json
    assert by_conv["totalCount"] == 1 and by_conv["builds"][0]["conversationId"] == str(conv)
    bad = client.get("/api/builds?status=done&sortBy=size", headers=auth_headers)
    assert bad.status_code == 400 and {"status[0]", "sortBy"} <= set(bad.json["error"]["details"]) \
        or {"status", "sortBy"} <= {k.split("[")[0] for k in bad.json["error"]["details"]}


@pytest.fixture
def statements(app):
    """The SQL statements the database receives while the block runs (SQLAlchemy's cursor events)."""
    from contextlib import contextmanager

    from sqlalchemy import event

    from app.extensions import db

    with app.app_context():
        engine = db.engine

    @contextmanager
    def counting():
        seen: list[str] = []

        def record(_conn, _cursor, statement, *_args):
            seen.append(statement)

        event.listen(engine, "before_cursor_execute", record)
        try:
            yield seen
        finally:
            event.remove(engine, "before_cursor_execute", record)

    return counting


# Auth (user), tenant (org, membership), the tier's API rate, the count, the page, and the page's recipe
# versions in one query. A lazy load per build (N+1) would add one statement per row.
LIST_STATEMENTS = 7


def test_list_makes_a_fixed_number_of_statements_for_a_page_with_recipe_versions(client, auth_headers, builds,
                                                                                 org_id, user, app, statements):
    from sqlalchemy import select

    from app.extensions import db
    from app.models import RecipeVersion

    for _ in range(20):
        conv = builds.conversation(org_id, user.id)
        with app.app_context():
            version_id = db.session.scalar(select(RecipeVersion.id).where(RecipeVersion.conversation_id == conv))
        builds.create(org_id, conversation_id=conv, recipe_version_id=version_id,
                      attempt=2, attempts=[{"attempt": 1, "failureCode": "worker_lost", "stage": "bootstrap"}])
    for _ in range(5):
        builds.create(org_id)
    with statements() as seen:
        resp = client.get("/api/builds", headers=auth_headers)
    assert resp.status_code == 200, resp.json
    page = resp.json
    assert page["totalCount"] == 25 and len(page["builds"]) == 20 and page["hasMore"] is True
    versioned = [b for b in page["builds"] if b["conversationId"] is not None]
    assert len(versioned) == 15 and {b["recipeVersion"] for b in versioned} == {1}
    assert versioned[0]["attempts"][0]["failureCode"] == "worker_lost"
    assert all(b["url"] == f"/api/builds/{b['id']}" for b in page["builds"])
    assert len(seen) <= LIST_STATEMENTS, "\n".join(seen)


def test_get_and_status_shapes(client, auth_headers, builds, org_id):
    build_id = builds.create(org_id, status="succeeded")
    body = client.get(f"/api/builds/{build_id}", headers=auth_headers).json
    for key in ("id", "number", "status", "stage", "progress", "startedAt", "finishedAt", "conversationId",
                "recipeVersion", "failureReason", "artifacts", "stages", "attempt"):
        assert key in body
    status = client.get(f"/api/builds/{build_id}/status", headers=auth_headers).json
    assert set(status) >= {"buildId", "status", "stage", "progress", "startedAt", "estimatedCompletion"}
    assert status["progress"] == {"currentStep": 6, "totalSteps": 6, "percentage": 100}
    assert status["startedAt"].endswith("Z")
    running = builds.create(org_id, status="building", stage="configure", progress=55, started_ago=5)
    beat(client.application, running)
    st = client.get(f"/api/builds/{running}/status", headers=auth_headers).json
    assert st["progress"]["currentStep"] == 3 and st["progress"]["percentage"] == 55
    # One succeeded build took 30 s: the estimate is started + 30 s.
    assert st["estimatedCompletion"] is not None and st["estimatedCompletion"] > st["startedAt"]


# Start / cancel / retry / delete -----------------------------------------------------------------

def test_start_pending_only(client, auth_headers, app):
    build_id = _create(client, auth_headers, start=False).json["id"]
    started = client.post(f"/api/builds/{build_id}/start", headers=auth_headers)
    assert started.status_code == 200 and started.json["status"] == "queued"
    assert _queue_ids(app) == [build_id]
    again = client.post(f"/api/builds/{build_id}/start", headers=auth_headers)
    assert again.status_code == 409 and again.json["error"]["code"] == "CONFLICT"


def test_cancel_queued_leaves_queue_and_terminal_is_conflict(client, auth_headers, app):
    build_id = _create(client, auth_headers).json["id"]
    resp = client.post(f"/api/builds/{build_id}/cancel", headers=auth_headers)
    assert resp.status_code == 200 and resp.json["status"] == "cancelled" and resp.json["cancelRequestedAt"]
    assert _queue_ids(app) == []
    from app.extensions import redis

    with app.app_context():
        assert redis.client.exists(f"kiln:build:{build_id}:cancel")
    again = client.post(f"/api/builds/{build_id}/cancel", headers=auth_headers)
    assert again.status_code == 409 and again.json["error"]["code"] == "CONFLICT"


def test_retry_makes_a_new_build_of_the_same_recipe_version(client, auth_headers, builds, org_id, user, app):
    conv = builds.conversation(org_id, user.id)
    from app.extensions import db
    from app.models import Conversation

    with app.app_context():
        version_id = db.session.get(Conversation, conv).version().id
    old = builds.create(org_id, status="failed", conversation_id=conv, recipe_version_id=version_id,
                        failure_reason="boom", failure_class="infrastructure")
    resp = client.post(f"/api/builds/{old}/retry", headers=auth_headers)
    assert resp.status_code == 201, resp.json
    new = resp.json
    assert new["id"] != str(old) and new["retriedFromId"] == str(old) and new["status"] == "queued"
    assert new["recipeVersionId"] == str(version_id) and new["number"] == 2
    running = builds.create(org_id, status="building")
    assert client.post(f"/api/builds/{running}/retry", headers=auth_headers).status_code == 409


def test_delete_terminal_removes_files_else_conflict(client, auth_headers, builds, org_id, app):
    build_id = builds.create(org_id, status="succeeded", image=b"x" * 100)
    from app.services.builds import files

    with app.app_context():
        from app.extensions import db
        from app.models import Build

        directory = files.artifacts_dir(db.session.get(Build, build_id))
    assert directory.is_dir()
    resp = client.delete(f"/api/builds/{build_id}", headers=auth_headers)
    assert resp.status_code == 204
    assert not directory.exists()
    assert client.get(f"/api/builds/{build_id}", headers=auth_headers).status_code == 404
    queued = builds.create(org_id, status="queued")
    conflict = client.delete(f"/api/builds/{queued}", headers=auth_headers)
    assert conflict.status_code == 409 and conflict.json["error"]["code"] == "CONFLICT"


# Tenancy ------------------------------------------------------------------------------------------

def test_another_orgs_build_is_not_found_on_every_route(client, app, factory, builds):
    owner = factory.user(email="owner@other.example")
    foreign = builds.create(owner.default_org_id, status="succeeded", image=b"secret")
    with app.app_context():
        from app.extensions import db
        from app.models import Build

        artifact_id = db.session.get(Build, foreign).artifacts[0].id
    me = factory.user(email="me@example.com")
    headers = factory.headers(me)
    rules = [r for r in app.url_map.iter_rules() if "<build_id>" in r.rule and r.rule.startswith("/api/")]
    assert len(rules) >= 14
    checked = 0
    for rule in rules:
        url = rule.rule.replace("<build_id>", str(foreign)).replace("<artifact_id>", str(artifact_id))
        extra = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                 "Sec-WebSocket-Version": "13"} if rule.websocket else {}
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            kwargs = {"json": {"assertions": [{"type": "boots", "params": {}}]}} if method == "POST" else {}
            resp = client.open(url, method=method, headers={**headers, **extra}, **kwargs)
            assert resp.status_code == 404, (method, url, resp.status_code, resp.get_data(as_text=True)[:200])
            assert resp.json["error"]["code"] == "NOT_FOUND"
            checked += 1
    assert checked == len(rules)
    # /api/v1 is the same handler.
    assert client.get(f"/api/v1/builds/{foreign}", headers=headers).status_code == 404
    assert client.get("/api/builds/not-a-uuid", headers=headers).status_code == 404


# Rate limit ---------------------------------------------------------------------------------------

@pytest.fixture
def start_limit(app):
    old = app.config["KILN_BUILD_START_LIMIT"]
    app.config["KILN_BUILD_START_LIMIT"] = "3 per hour"
    yield 3
    app.config["KILN_BUILD_START_LIMIT"] = old


def test_build_starts_are_rate_limited_per_org(client, auth_headers, start_limit, factory, user):
    for _ in range(start_limit):
        assert _create(client, auth_headers).status_code == 201
    blocked = _create(client, auth_headers)
    assert blocked.status_code == 429
    assert blocked.json["error"]["code"] == "RATE_LIMITED"
    assert int(blocked.headers["Retry-After"]) > 0
    assert blocked.headers["X-RateLimit-Limit"] == "3" and blocked.headers["X-RateLimit-Remaining"] == "0"
    assert "X-RateLimit-Reset" in blocked.headers
    # The limit is the org's: another member of the same org is blocked too; another org is not.
    bob = factory.user(email="bob@example.com")
    factory.add_member(user.default_org_id, bob, "member")
    assert _create(client, factory.headers(bob, org_id=user.default_org_id)).status_code == 429
    assert _create(client, factory.headers(bob)).status_code == 201


def test_pending_creates_do_not_use_up_starts(client, auth_headers, start_limit):
    for _ in range(start_limit + 2):
        assert _create(client, auth_headers, start=False).status_code == 201
    assert _create(client, auth_headers).status_code == 201
