"""Build pages: the list (empty state, filter, pagination), the build page and its fragments in each state,
cancel/start/retry through the page endpoints, roles, and other orgs' builds."""
from __future__ import annotations

import re

import pytest

from tests.builds.conftest import append_log
from tests.conftest import PASSWORD

HX = {"HX-Request": "true"}


def _login(client, user):
    resp = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert resp.status_code == 302


@pytest.fixture
def logged_in(client, user):
    _login(client, user)
    return client


def _set_stages(app, build_id, statuses: dict, **build_values):
    """Move stage rows (and build columns) the way the worker would have."""
    from datetime import timedelta

    from app.extensions import db
    from app.models import Build
    from app.models.base import utcnow

    with app.app_context():
        build = db.session.get(Build, build_id)
        for stage in build.stages:
            if stage.name in statuses:
                stage.status = statuses[stage.name]
                stage.started_at = utcnow() - timedelta(seconds=75)
                if stage.status != "running":
                    stage.finished_at = utcnow()
                    stage.duration = 75.0
        for key, value in build_values.items():
            setattr(build, key, value)
        db.session.commit()


def _log(app, build_id, *lines):
    return append_log(app, build_id, lines)


def _add_test_run(app, build_id, cases, status="failed", kind="default"):
    from app.extensions import db
    from app.models import TestCase, TestRun
    from app.models.base import utcnow

    with app.app_context():
        run = TestRun(build_id=build_id, status=status, kind=kind, assertions=[], started_at=utcnow(),
                      finished_at=utcnow(), result={"status": status})
        db.session.add(run)
        db.session.flush()
        for i, (description, case_status, duration, assertions) in enumerate(cases):
            db.session.add(TestCase(test_run_id=run.id, position=i, description=description, status=case_status,
                                    duration=duration, assertions=assertions))
        db.session.commit()
        return run.id


def _status(app, build_id):
    from app.extensions import db
    from app.models import Build

    with app.app_context():
        return db.session.get(Build, build_id).status


# The list ------------------------------------------------------------------------------------------

def test_list_empty_state_is_honest(logged_in):
    page = logged_in.get("/builds")
    assert page.status_code == 200
    html = page.data.decode()
    assert "No builds yet" in html and "has not built an image yet" in html and "<table" not in html
    assert 'href="/builds"' in html  # the nav links the page now that it exists
    fragment = logged_in.get("/builds", headers=HX)
    assert fragment.data.decode().lstrip().startswith('<section id="builds-table">')
    assert "<html" not in fragment.data.decode()
    assert "HX-Request" in fragment.headers.get("Vary", "")
    restore = logged_in.get("/builds", headers={**HX, "HX-History-Restore-Request": "true"})
    assert "<html" in restore.data.decode()  # htmx restoring history gets the whole page
    # A filter on an org with no builds at all still says the honest thing.
    assert "No builds yet" in logged_in.get("/builds?status=failed").data.decode()


def test_list_filters_by_status_and_paginates(logged_in, builds, org_id):
    for _ in range(22):
        builds.create(org_id, status="succeeded")
    failed = [builds.create(org_id, status="failed", failure_reason="boom", failure_class="infrastructure")
              for _ in range(2)]
    html = logged_in.get("/builds").data.decode()
    assert html.count('class="status-badge status-') == 20
    assert "24 builds · page 1 of 2" in html and "Older" in html and "Newer" not in html
    second = logged_in.get("/builds?page=2", headers=HX).data.decode()
    assert second.count('class="status-badge status-') == 4 and "Newer" in second and "Older" not in second
    only_failed = logged_in.get("/builds?status=failed", headers=HX).data.decode()
    assert only_failed.count("status-badge status-failed") == 2 and "status-succeeded" not in only_failed
    for build_id in failed:
        assert f'/builds/{build_id}"' in only_failed
    assert "2 builds failed" in only_failed
    none = logged_in.get("/builds?status=cancelled").data.decode()
    assert "No cancelled builds" in none and "24 builds in all" in none
    # The filter form re-renders only the table, and keeps the URL shareable.
    full = logged_in.get("/builds?status=failed").data.decode()
    assert 'hx-target="#builds-table"' in full and 'hx-push-url="true"' in full
    assert re.search(r'<option value="failed"\s+selected>', full)


def test_list_polls_only_while_a_build_runs(app, logged_in, builds, org_id):
    builds.create(org_id, status="succeeded")
    assert "every 5s" not in logged_in.get("/builds").data.decode()
    running = builds.create(org_id, status="building", stage="configure", stage_display="Config Agent", progress=55)
    table = logged_in.get("/builds?status=building", headers=HX).data.decode()
    assert 'hx-get="/builds?status=building" hx-trigger="every 5s"' in table and "Config Agent · 55%" in table
    _set_stages(app, running, {}, status="succeeded")
    assert "every 5s" not in logged_in.get("/builds", headers=HX).data.decode()


def test_list_rejects_bad_filters_by_name(logged_in):
    bad = logged_in.get("/builds?status=exploded")
    assert bad.status_code == 400 and b"status: &#39;exploded&#39; is not a build status" in bad.data
    assert logged_in.get("/builds?page=0").status_code == 400
    assert b"page: &#39;x&#39; is not a number" in logged_in.get("/builds?page=x").data


def test_list_needs_login(client):
    resp = client.get("/builds")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_list_shows_only_this_orgs_builds(logged_in, builds, factory, org_id):
    other = factory.user(email="mallory@example.com")
    foreign = builds.create(other.default_org_id, status="succeeded")
    mine = builds.create(org_id, status="succeeded")
    html = logged_in.get("/builds").data.decode()
    assert str(mine) in html and str(foreign) not in html


# The build page ------------------------------------------------------------------------------------

def test_running_build_page_and_progress_fragment(app, logged_in, builds, org_id):
    build_id = builds.create(org_id, status="building", stage="configure", stage_display="Config Agent", progress=62,
                             worker_name="worker-1")
    _set_stages(app, build_id, {"resolve": "succeeded", "bootstrap": "succeeded", "configure": "running"})
    _log(app, build_id, ("resolve", "info", "checking 1 package(s)"), ("configure", "warning", "slow mirror"))
    page = logged_in.get(f"/builds/{build_id}")
    assert page.status_code == 200
    html = page.data.decode()
    for name in ("Package Resolver", "Bootstrapper", "Config Agent", "Image Packager", "Evidence Collector",
                 "Image Tests"):
        assert name in html
    assert '<progress aria-label="Build progress" value="62" max="100">' in html
    assert 'hx-trigger="every 2s' in html  # polls while it runs
    assert "1 min 15 s" in html  # a finished stage's duration
    assert "checking 1 package(s)" in html and 'data-level="warning"' in html
    assert f'data-stream-url="/api/streams/builds/{build_id}"' in html and 'data-live="true"' in html
    assert 'data-after="2"' in html and "/static/js/builds.js" in html
    assert "Cancel build" in html and "Retry" not in html
    assert "<noscript><meta http-equiv=\"refresh\"" in html  # without JS the page reloads itself
    assert "style=" not in html and "<script>" not in html  # CSP: no inline styles or scripts

    fragment = logged_in.get(f"/builds/{build_id}", headers=HX)
    body = fragment.data.decode()
    assert fragment.status_code == 200 and body.lstrip().startswith('<section id="build-progress"')
    assert 'hx-trigger="every 2s' in body and "Config Agent" in body and "<html" not in body
    assert "hx-swap-oob" not in body  # nothing else changes while it runs

    # The worker moves on: the next poll shows it.
    _set_stages(app, build_id, {"configure": "succeeded", "package": "running"}, stage="package",
                stage_display="Image Packager", progress=80)
    body = logged_in.get(f"/builds/{build_id}", headers=HX).data.decode()
    assert 'value="80"' in body and "<strong data-progress-stage>Image Packager</strong>" in body


def test_finished_build_page_shows_artifacts_tests_and_stops_polling(app, logged_in, builds, org_id):
    image = b"\x00" * 1536
    build_id = builds.create(org_id, status="succeeded", image=image)
    _add_test_run(app, build_id, [
        ("boots to a login prompt", "passed", 41.5, [
            {"type": "boots", "params": {}, "result": "passed", "message": "login prompt after 38 s"}]),
        ("nginx answers on port 80", "failed", 3.25, [
            {"type": "port_open", "params": {"port": 80}, "result": "failed", "message": "connection refused"}]),
    ])
    _log(app, build_id, ("package", "error", "mksquashfs warning"), ("evidence", "info", "done"))
    html = logged_in.get(f"/builds/{build_id}").data.decode()
    import hashlib

    sha = hashlib.sha256(image).hexdigest()
    assert "1.5 KiB" in html and sha in html and 'data-copy="sha256-' in html
    assert re.search(rf'href="/api/builds/{build_id}/artifacts/[0-9a-f-]+/download"', html)
    assert "boots to a login prompt" in html and "login prompt after 38 s" in html and "41.5 s" in html
    assert "connection refused" in html and "port=80" in html and "1 of 2 passed" in html
    assert "every 2s" not in html and 'data-live="false"' in html
    assert "Rebuild" in html and "Cancel build" not in html
    assert 'data-log-jump' in html and "mksquashfs warning" in html

    body = logged_in.get(f"/builds/{build_id}", headers=HX).data.decode()
    # A finished build's fragment brings the other parts along (out of band) and no longer polls.
    assert "every 2s" not in body
    for part in ("build-actions", "build-failure", "build-artifacts", "build-tests"):
        assert re.search(rf'id="{part}"[^>]*hx-swap-oob="true"', body), part


def test_failed_build_explains_user_error_in_plain_words(logged_in, builds, org_id):
    build_id = builds.create(org_id, status="failed", failure_class="user_error", failure_code="user_error",
                             failure_stage="resolve",
                             failure_reason="unknown package(s) in Debian trixie: foo (did you mean: fop?)")
    html = logged_in.get(f"/builds/{build_id}").data.decode()
    assert "The recipe asks for a package that does not exist in trixie: foo (did you mean: fop?)" in html
    assert "The recipe needs a change" in html and "Cause: the recipe" in html
    assert "Failed in Package Resolver" in html and "Retry" in html


def test_failed_build_explains_infrastructure_and_retries(app, logged_in, builds, org_id):
    history = [{"attempt": n, "failureCode": "worker_lost", "failureClass": "infrastructure", "stage": "bootstrap",
                "failureReason": "The worker running this build (w1) stopped responding"} for n in (1, 2, 3)]
    build_id = builds.create(org_id, status="failed", failure_class="infrastructure", failure_code="worker_lost",
                             failure_stage="bootstrap", attempt=3,
                             failure_reason="The worker running this build (w1) stopped responding")
    _set_stages(app, build_id, {}, attempts=history)
    html = logged_in.get(f"/builds/{build_id}").data.decode()
    assert ("The worker running this build stopped (worker_lost); Kiln retried it and gave up after 3 attempts."
            in html)
    assert "Kiln could not finish this build" in html and "not your recipe" in html
    assert "Attempt 1: The worker running this build stopped (worker_lost); Kiln retried it." in html
    assert "Attempt 2:" in html and "Attempt 3:" not in html  # the last attempt is the failure above


def test_succeeded_after_a_lost_worker_says_it_was_retried(app, logged_in, builds, org_id):
    history = [{"attempt": 1, "failureCode": "worker_lost", "failureClass": "infrastructure",
                "failureReason": "The worker running this build (w1) stopped responding", "stage": "configure"}]
    build_id = builds.create(org_id, status="succeeded", attempt=2)
    _set_stages(app, build_id, {}, attempts=history)
    html = logged_in.get(f"/builds/{build_id}").data.decode()
    assert "Attempt 1: The worker running this build stopped (worker_lost); Kiln retried it." in html
    assert "Kiln could not finish" not in html


def test_tests_failed_and_recipe_command_failures(logged_in, builds, org_id):
    tests_failed = builds.create(org_id, status="failed", failure_class="user_error", failure_code="tests_failed",
                                 failure_stage="test",
                                 failure_reason="Image tests failed: nginx answers: connection refused")
    html = logged_in.get(f"/builds/{tests_failed}").data.decode()
    assert "The image was built, but it failed its tests: nginx answers: connection refused" in html
    command = builds.create(org_id, status="failed", failure_class="user_error", failure_code="user_error",
                            failure_stage="configure",
                            failure_reason="recipe command 2 failed with exit code 127: frobnicate --all")
    html = logged_in.get(f"/builds/{command}").data.decode()
    assert "Command 2 of the recipe failed with exit code 127: frobnicate --all" in html


def test_archived_log_is_shown_after_redis_forgot_it(app, logged_in, builds, org_id):
    from app.extensions import db
    from app.models import Build
    from app.services.builds import logs, run

    build_id = builds.create(org_id, status="failed", failure_class="infrastructure", failure_code="build_error",
                             failure_reason="disk full")
    _log(app, build_id, ("bootstrap", "info", "line one"), ("bootstrap", "error", "disk full"))
    with app.app_context():
        build = db.session.get(Build, build_id)
        run.archive_log(build)
        db.session.commit()
        logs.forget(build_id)
    html = logged_in.get(f"/builds/{build_id}").data.decode()
    assert "line one" in html and 'data-level="error"' in html and 'data-after="2"' in html
    # The full log downloads as the archived file once there is one.
    link = re.search(r'<a href="([^"]+)" download>Download full log</a>', html).group(1)
    assert "/artifacts/" in link
    assert logged_in.get(link).data.count(b"\n") == 2


def test_pending_build_offers_start_and_no_polling(logged_in, builds, org_id):
    build_id = builds.create(org_id, status="pending")
    html = logged_in.get(f"/builds/{build_id}").data.decode()
    assert ">Start</button>" in html and "Not started" in html and "every 2s" not in html


# Actions -------------------------------------------------------------------------------------------

def test_cancel_from_the_page(app, logged_in, builds, org_id):
    build_id = builds.create(org_id, status="queued")
    resp = logged_in.post(f"/builds/{build_id}/cancel", headers=HX)
    assert resp.status_code == 200
    body = resp.data.decode()
    assert body.lstrip().startswith('<section id="build-progress"') and "every 2s" not in body
    assert "is cancelled" in body and re.search(r'id="build-actions"[^>]*hx-swap-oob', body)
    assert ">Retry</button>" in body and "Cancel build" not in body
    assert _status(app, build_id) == "cancelled"
    again = logged_in.post(f"/builds/{build_id}/cancel", headers=HX)
    assert again.status_code == 409 and again.headers["HX-Retarget"] == "#build-notice"
    assert "already cancelled" in again.data.decode() and 'id="build-notice"' in again.data.decode()


def test_cancel_without_javascript_redirects_back(app, logged_in, builds, org_id):
    build_id = builds.create(org_id, status="building")
    resp = logged_in.post(f"/builds/{build_id}/cancel")
    assert resp.status_code == 303 and resp.headers["Location"].endswith(f"/builds/{build_id}")
    assert _status(app, build_id) == "cancelled"
    assert b"is cancelled" in logged_in.get(f"/builds/{build_id}").data  # the flash message
    refused = logged_in.post(f"/builds/{build_id}/cancel")
    assert refused.status_code == 303 and b"already cancelled" in logged_in.get(f"/builds/{build_id}").data


def test_start_a_pending_build_from_the_page(app, logged_in, builds, org_id):
    build_id = builds.create(org_id, status="pending")
    resp = logged_in.post(f"/builds/{build_id}/start", headers=HX)
    assert resp.status_code == 200 and "every 2s" in resp.data.decode() and "Waiting for a worker" in resp.data.decode()
    assert _status(app, build_id) == "queued"


def test_retry_from_the_page_opens_the_new_build(app, logged_in, builds, org_id):
    from app.extensions import db
    from app.models import Build

    build_id = builds.create(org_id, status="failed", failure_class="infrastructure", failure_reason="boom")
    resp = logged_in.post(f"/builds/{build_id}/retry", headers=HX)
    assert resp.status_code == 204
    target = resp.headers["HX-Redirect"]
    new_id = target.rsplit("/", 1)[1]
    with app.app_context():
        new = db.session.get(Build, __import__("uuid").UUID(new_id))
        assert str(new.retried_from_id) == str(build_id) and new.status == "queued"
    page = logged_in.get(target).data.decode()
    assert "retry of build #" in page and "retries build #" in page
    running = builds.create(org_id, status="building")
    refused = logged_in.post(f"/builds/{running}/retry", headers=HX)
    assert refused.status_code == 409 and "only a finished build can be retried" in refused.data.decode()


def test_retry_counts_against_the_orgs_build_starts(app, logged_in, builds, org_id):
    build_id = builds.create(org_id, status="failed", failure_class="infrastructure", failure_reason="boom")
    old = app.config["KILN_BUILD_START_LIMIT"]
    app.config["KILN_BUILD_START_LIMIT"] = "1 per hour"
    try:
        assert logged_in.post(f"/builds/{build_id}/retry", headers=HX).status_code == 204
        limited = logged_in.post(f"/builds/{build_id}/retry", headers=HX)
        assert limited.status_code == 429 and limited.headers["HX-Retarget"] == "#build-notice"
        assert "reached its limit of build starts (1 per hour)" in limited.data.decode()
        plain = logged_in.post(f"/builds/{build_id}/retry")
        assert plain.status_code == 303
        assert b"reached its limit of build starts" in logged_in.get(f"/builds/{build_id}").data
    finally:
        app.config["KILN_BUILD_START_LIMIT"] = old


# Roles and tenancy ---------------------------------------------------------------------------------

def test_viewer_sees_no_buttons_and_cannot_post(app, client, builds, factory):
    owner = factory.user(email="owner@example.com")
    org = factory.org(owner, name="Acme")
    viewer = factory.user(email="viewer@example.com")
    factory.add_member(org, viewer, "viewer")
    running = builds.create(org, status="building")
    failed = builds.create(org, status="failed", failure_class="infrastructure", failure_reason="boom")
    _login(client, viewer)
    client.post("/orgs/switch", data={"org_id": str(org), "next": "/builds"})
    for build_id in (running, failed):
        html = client.get(f"/builds/{build_id}").data.decode()
        assert "Cancel build" not in html and ">Retry</button>" not in html
        actions = html.split('id="build-actions"')[1].split("</div>")[0]
        assert "<button" not in actions and "<form" not in actions
    assert client.post(f"/builds/{running}/cancel", headers=HX).status_code == 403
    assert client.post(f"/builds/{failed}/retry").status_code == 403
    assert _status(app, running) == "building"


def test_another_orgs_build_is_not_found_everywhere(client, builds, factory, user):
    other = factory.user(email="mallory@example.com")
    foreign = builds.create(other.default_org_id, status="failed", failure_class="infrastructure",
                            failure_reason="secret reason")
    _login(client, user)
    for method, path, headers in (("get", "", {}), ("get", "", HX), ("post", "/cancel", HX), ("post", "/retry", {}),
                                  ("post", "/start", HX)):
        resp = getattr(client, method)(f"/builds/{foreign}{path}", headers=headers)
        assert resp.status_code == 404, (method, path)
        assert b"secret reason" not in resp.data
    assert client.get("/builds/not-a-uuid").status_code == 404


def test_conversation_builds_follow_conversation_access(client, builds, factory):
    owner = factory.user(email="owner@example.com")
    org = factory.org(owner, name="Acme")
    member = factory.user(email="member@example.com")
    factory.add_member(org, member, "member")
    conversation = builds.conversation(org, owner.id)
    build_id = builds.create(org, status="failed", conversation_id=conversation, failure_class="infrastructure",
                             failure_reason="boom")
    _login(client, owner)
    client.post("/orgs/switch", data={"org_id": str(org), "next": "/builds"})
    html = client.get(f"/builds/{build_id}").data.decode()
    assert f'conversation <a href="/chat/{conversation}">Web server</a>' in html and ">Retry</button>" in html
    assert str(build_id) in client.get("/builds").data.decode()
    client.post("/logout")
    # A member who cannot see the (private) conversation cannot see its builds either.
    _login(client, member)
    client.post("/orgs/switch", data={"org_id": str(org), "next": "/builds"})
    assert client.get(f"/builds/{build_id}").status_code == 404
    assert client.post(f"/builds/{build_id}/retry").status_code == 404
    assert str(build_id) not in client.get("/builds").data.decode()
