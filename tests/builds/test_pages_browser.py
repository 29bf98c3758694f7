"""The build page in headless Chromium: the log streams in over SSE (or polling without EventSource), the
progress partial follows the build row, the buttons work with CSRF on, and nothing logs a console error."""
from __future__ import annotations

import pytest

from tests.builds.conftest import append_log, beat


pytestmark = pytest.mark.browser


def _log(app, build_id, *lines):
    append_log(app, build_id, lines)


def _heartbeat(app, build_id):
    """What a live worker does (a cancelled build's stream waits for its last lines while it beats)."""
    beat(app, build_id, worker="browser-test-worker")


def _update(app, build_id, stages: dict | None = None, **values):
    from app.extensions import db
    from app.models import Build
    from app.models.base import utcnow

    with app.app_context():
        build = db.session.get(Build, build_id)
        for stage in build.stages:
            if stage.name in (stages or {}):
                stage.status = stages[stage.name]
                stage.started_at = stage.started_at or utcnow()
                if stage.status != "running":
                    stage.finished_at, stage.duration = utcnow(), 12.5
        for key, value in values.items():
            setattr(build, key, value)
        db.session.commit()


def _running_build(app, builds, org_id):
    build_id = builds.create(org_id, status="building", stage="bootstrap", stage_display="Bootstrapper", progress=10)
    _update(app, build_id, {"resolve": "succeeded", "bootstrap": "running"})
    _heartbeat(app, build_id)
    _log(app, build_id, ("resolve", "info", "checking 1 package(s) against Debian trixie"),
         ("bootstrap", "info", "base layer: cache hit"))
    return build_id


def test_log_streams_and_progress_moves_live(app, logged_in_page, builds, org_id):
    from app.models.base import utcnow

    page = logged_in_page
    build_id = _running_build(app, builds, org_id)
    page.goto(f"/builds/{build_id}")
    lines = page.locator("[data-log-lines] .log-line")
    assert lines.count() == 2  # rendered by the server
    page.wait_for_selector("[data-log-state]:has-text('live')")

    # New lines reach the open page through the SSE stream, once each and in order.
    _log(app, build_id, ("bootstrap", "info", "overlay mounted"), ("configure", "error", "apt-get: E: broken mirror"),
         ("configure", "info", "retrying mirror"))
    page.wait_for_selector("text=retrying mirror")
    texts = lines.all_inner_texts()
    assert len(texts) == 5 and "overlay mounted" in texts[2] and "broken mirror" in texts[3]

    # Jump to the first error stops following and marks the line.
    assert page.locator("[data-log-jump]").is_enabled()
    page.click("[data-log-jump]")
    assert "broken mirror" in page.locator(".log-focus").inner_text()
    assert not page.locator("[data-log-follow]").is_checked()

    # The worker moves on: the progress partial (polling every 2 s) shows the new stage and value.
    _update(app, build_id, {"bootstrap": "succeeded", "configure": "running"}, stage="configure",
            stage_display="Config Agent", progress=60)
    page.wait_for_selector("#build-progress .stage-running:has-text('Config Agent')")
    assert page.locator("#build-progress progress").get_attribute("value") == "60"
    assert "Config Agent" in page.locator("#build-progress [data-progress-stage]").inner_text()
    assert page.locator("#build-progress .stage-succeeded").count() == 2

    # The build ends: the stream says done, the page settles without a reload.
    _update(app, build_id, {"configure": "succeeded", "package": "succeeded", "evidence": "succeeded",
                            "test": "succeeded"}, status="succeeded", progress=100, finished_at=utcnow())
    page.wait_for_selector("#build-progress[data-status='succeeded']")
    page.wait_for_selector("[data-log-state]:has-text('complete')")
    assert page.locator("#build-progress").get_attribute("hx-trigger") is None  # no more polling
    page.wait_for_selector("#build-actions button:has-text('Rebuild')")  # the out-of-band parts came along
    assert page.locator("#build-actions button:has-text('Cancel build')").count() == 0
    assert page.console_errors == []


def test_log_falls_back_to_polling_without_eventsource(app, logged_in_page, builds, org_id):
    page = logged_in_page
    page.add_init_script("delete window.EventSource;")
    build_id = _running_build(app, builds, org_id)
    page.goto(f"/builds/{build_id}")
    page.wait_for_selector("[data-log-state]:has-text('polling')")
    _log(app, build_id, ("bootstrap", "warning", "slow mirror, still going"))
    page.wait_for_selector("text=slow mirror, still going", timeout=10000)
    assert page.locator("[data-log-lines] .log-line").count() == 3
    assert page.console_errors == []


def test_log_falls_back_to_polling_when_the_stream_fails(app, logged_in_page, builds, org_id):
    page = logged_in_page
    attempts = []
    page.route("**/api/streams/builds/**", lambda route: (attempts.append(route.request.url), route.abort()))
    build_id = _running_build(app, builds, org_id)
    page.goto(f"/builds/{build_id}")
    page.wait_for_selector("[data-log-state]:has-text('polling')", timeout=15000)
    assert len(attempts) == 3 and all(url.endswith("?after=2") for url in attempts)  # retried, then gave up
    _log(app, build_id, ("configure", "info", "configured over polling"))
    page.wait_for_selector("text=configured over polling", timeout=10000)
    assert page.locator("[data-log-lines] .log-line").count() == 3
    # Only the refused stream requests themselves may show up as errors.
    assert [e for e in page.console_errors if "ERR_FAILED" not in e] == []


def test_archived_log_and_artifacts_of_a_finished_build(app, logged_in_page, builds, org_id):
    from app.extensions import db
    from app.models import Build
    from app.services.builds import logs, run

    page = logged_in_page
    build_id = builds.create(org_id, status="failed", failure_class="user_error", failure_code="user_error",
                             failure_stage="resolve", image=b"image bytes",
                             failure_reason="unknown package(s) in Debian trixie: nginxx (did you mean: nginx?)")
    _log(app, build_id, ("resolve", "info", "checking 2 package(s)"),
         ("resolve", "error", "unknown package(s) in Debian trixie: nginxx"))
    with app.app_context():
        run.archive_log(db.session.get(Build, build_id))
        db.session.commit()
        logs.forget(build_id)  # only the archive is left
    page.goto(f"/builds/{build_id}")
    assert "The recipe asks for a package that does not exist in trixie: nginxx" in page.inner_text("#build-failure")
    assert page.locator("[data-log-lines] .log-line").count() == 2
    page.wait_for_selector("[data-log-state]:has-text('complete')")
    assert page.locator("#build-artifacts code.sha256").count() == 2  # the image and build.log
    assert page.locator("#build-progress").get_attribute("hx-trigger") is None
    assert page.console_errors == []


def test_cancel_button_with_csrf(app, logged_in_page, builds, org_id):
    page = logged_in_page
    build_id = _running_build(app, builds, org_id)
    page.goto(f"/builds/{build_id}")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("#build-actions button:has-text('Cancel build')")
    page.wait_for_selector("#build-progress[data-status='cancelled']")
    assert "is cancelled" in page.inner_text("#build-notice")
    page.wait_for_selector("#build-actions button:has-text('Retry')")
    from app.extensions import db
    from app.models import Build

    with app.app_context():
        assert db.session.get(Build, build_id).status == "cancelled"
    # Retry opens the new build's page (htmx follows HX-Redirect).
    page.click("#build-actions button:has-text('Retry')")
    page.wait_for_selector("text=retry of build #")
    assert str(build_id) not in page.url and "/builds/" in page.url
    assert page.locator("#build-progress[data-status='queued']").count() == 1
    assert page.console_errors == []


def test_a_refused_action_shows_why(app, logged_in_page, builds, org_id):
    page = logged_in_page
    build_id = builds.create(org_id, status="pending")
    page.goto(f"/builds/{build_id}")
    _update(app, build_id, status="cancelled")  # someone else got there first
    page.click("#build-actions button:has-text('Start')")
    page.wait_for_selector("#build-notice:has-text('only a pending build can be started')")
    assert page.locator("#build-progress[data-status='pending']").count() == 1  # the rest of the page stays
    # Chromium reports the 409 answer itself; nothing else may complain.
    assert [e for e in page.console_errors if "status of 409" not in e] == []


def test_list_filter_re_renders_the_table(app, logged_in_page, builds, org_id):
    page = logged_in_page
    builds.create(org_id, status="succeeded")
    failed = builds.create(org_id, status="failed", failure_class="infrastructure", failure_reason="boom")
    page.goto("/builds")
    assert page.locator("#builds-table tbody tr").count() == 2
    page.select_option("#status-filter", "failed")
    from playwright.sync_api import expect

    expect(page.locator("#builds-table tbody tr")).to_have_count(1)
    assert "status=failed" in page.url  # the filtered list has its own URL
    page.click(f"#builds-table a[href='/builds/{failed}']")
    page.wait_for_url(f"**/builds/{failed}")
    assert page.console_errors == []


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_real_build_watched_in_the_browser(app, client, factory, user, logged_in_page, start_worker):
    """A real worker builds and boot-tests the ISO while the page is open: every log line arrives once,
    the progress settles on succeeded, and the artifacts and test results appear without a reload."""
    import json

    from tests.fixtures.images import SSH_RECIPE

    page = logged_in_page
    created = client.post("/api/builds", json={"recipe": SSH_RECIPE}, headers=factory.headers(user))
    assert created.status_code == 201, created.json
    build_id = created.json["id"]
    page.goto(f"/builds/{build_id}")
    page.wait_for_selector("[data-log-state]:has-text('live')")
    start_worker("pages-worker")
    # A recipe already built this session comes from the engine's result cache: `building` may last less
    # than one page refresh, so any state past `queued` shows the worker took it.
    page.wait_for_selector("#build-progress:is([data-status='building'], [data-status='testing'], "
                           "[data-status='succeeded'])", timeout=120_000)
    page.wait_for_selector("#build-progress[data-status='succeeded']", timeout=1_500_000)
    page.wait_for_selector("[data-log-state]:has-text('complete')", timeout=60_000)
    page.wait_for_selector("#build-tests .assertion-passed", timeout=30_000)

    shown = [int(s) for s in page.eval_on_selector_all("[data-log-lines] .log-line", "els => els.map(e => e.dataset.seq)")]
    body = client.get(f"/api/builds/{build_id}", headers=factory.headers(user)).json
    log_artifact = next(a for a in body["artifacts"] if a["kind"] == "log")
    archived = client.get(log_artifact["downloadUrl"], headers=factory.headers(user)).data.decode().splitlines()
    assert shown == [json.loads(line)["seq"] for line in archived]  # each line once, in order, none missing
    iso = next(a for a in body["artifacts"] if a["kind"] == "iso")
    assert page.locator(f"#sha256-{iso['id']}").inner_text() == iso["sha256"]
    # The timeline shows what the API says of each stage: all succeeded, or, when the engine reused a cached
    # result of the same recipe, the engine's stages skipped and the image tests (run on every build) succeeded.
    shown_stages = page.eval_on_selector_all("#build-progress .stage-timeline li", "els => els.map(e => e.className)")
    assert shown_stages == [f"stage-{s['status']}" for s in body["stages"]]
    assert body["stages"][-1]["status"] == "succeeded"
    assert {s["status"] for s in body["stages"]} <= {"succeeded", "skipped"}
    assert page.console_errors == []
