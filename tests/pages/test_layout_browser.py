"""Every page as a person sees it, at 1280, 768 and 390 px, in headless Chromium with realistic data.

For each page and width: no two visible text boxes or controls cover each other, nothing makes the page
scroll sideways, axe-core finds no serious or critical accessibility violation, and a screenshot is saved
(KILN_TEST_SCREENSHOTS, else a tmp dir printed at the start) so a failing run shows what went wrong."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import PASSWORD
from tests.fixtures.browser import login

pytestmark = pytest.mark.browser

WIDTHS = {1280: 900, 768: 1024, 390: 844}
HERE = Path(__file__).resolve().parent.parent / "fixtures"
GEOMETRY = (HERE / "layout.js").read_text()
AXE = (HERE / "vendor" / "axe.min.js").read_text()
AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.filter(v => v.impact === "serious" || v.impact === "critical")
    .map(v => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.slice(0, 3).map(n => n.target.join(" ")).join(", ")}`);
}"""


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory, request):
    configured = os.environ.get("KILN_TEST_SCREENSHOTS")
    path = Path(configured) if configured else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"page screenshots: {path}")
    return path


def _pages(ws) -> list[tuple[str, str]]:
    """(name, path) of every page a signed-in person reaches, each with data on it."""
    return [
        ("dashboard", "/dashboard"),
        ("chat-start", "/chat"),
        ("chat", f"/chat/{ws.conversation_id}"),
        ("chat-long-name", f"/chat/{ws.long_conversation_id}"),
        ("recipe-diff", f"/chat/{ws.conversation_id}/versions/2/diff"),
        ("share", f"/conversations/{ws.conversation_id}/share"),
        ("builds", "/builds"),
        ("build-succeeded", f"/builds/{ws.succeeded_id}"),
        ("build-failed", f"/builds/{ws.failed_id}"),
        ("build-running", f"/builds/{ws.running_id}"),
        ("organization", "/organization"),
        ("structure", "/organization/structure"),
        ("api-keys", "/api-keys"),
        ("api-key-usage", f"/api-keys/{ws.key_id}/usage"),
        ("account", "/account"),
        ("billing", "/billing"),
        ("not-found", "/builds/00000000-0000-4000-8000-000000000000"),
    ]


PUBLIC_PAGES = [("login", "/login"), ("signup", "/signup"), ("forgot-password", "/forgot-password")]


# axe's rules look at markup and colours, which do not change with the width; 768 px only adds layout.
AXE_WIDTHS = (1280, 390)


def _check(page, name: str, width: int, directory: Path, problems: list[str]) -> None:
    # Parts a page loads after it arrives (htmx hx-trigger="load") are in place once htmx has no request open.
    page.wait_for_function("() => !document.querySelector('.htmx-request')")
    page.screenshot(path=str(directory / f"{name}-{width}.png"), full_page=True, animations="disabled")
    geometry = page.evaluate(GEOMETRY)
    where = f"{name} at {width} px"
    if geometry["scrollWidth"] > geometry["width"] + 1:
        problems.append(f"{where}: scrolls sideways ({geometry['scrollWidth']} > {geometry['width']} px): "
                        + "; ".join(geometry["overflow"]))
    problems.extend(f"{where}: {overlap}" for overlap in geometry["overlaps"])
    if width not in AXE_WIDTHS:
        return
    if not page.evaluate("() => typeof axe !== 'undefined'"):
        page.evaluate(AXE)
    problems.extend(f"{where}: axe {violation}" for violation in page.evaluate(AXE_RUN))


def test_every_page_holds_its_layout_at_every_width(browser, live_server_url, workspace, screenshot_dir):
    """One test over all pages and widths (one data set, one login per width): the failure lists every problem."""
    problems: list[str] = []
    errors: list[str] = []
    for width, height in WIDTHS.items():
        context = browser.new_context(base_url=live_server_url, viewport={"width": width, "height": height})
        page = context.new_page()
        page.set_default_timeout(15000)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            for name, path in PUBLIC_PAGES:
                page.goto(path)
                _check(page, name, width, screenshot_dir, problems)
            login(page, workspace.user.email, PASSWORD)
            for name, path in _pages(workspace):
                if name == "build-running":
                    workspace.keep_alive(workspace.running_id)  # a slow run must not let the reaper take it
                response = page.goto(path)
                expected = 404 if name == "not-found" else 200
                assert response.status == expected, f"{path} answered {response.status}"
                _check(page, name, width, screenshot_dir, problems)
        finally:
            context.close()
    assert errors == []
    assert problems == [], f"{len(problems)} layout problems (screenshots in {screenshot_dir}):\n" + "\n".join(problems)


def test_narrow_chat_keeps_the_conversation_list_behind_a_button(browser, live_server_url, workspace):
    """On a phone the list folds away (the thread comes first) and one tap opens it; the recipe panel
    lists the default checks of a recipe without tests of its own."""
    context = browser.new_context(base_url=live_server_url, viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        login(page, workspace.user.email, PASSWORD)
        page.goto(f"/chat/{workspace.conversation_id}")
        toggle = page.locator("[data-conversations-toggle]")
        links = page.locator("#conversation-list a:has-text('CI runner image')")
        assert toggle.is_visible() and toggle.get_attribute("aria-expanded") == "false"
        assert not links.is_visible()
        # The recipe panel sits below the thread, not beside it.
        thread = page.locator("#message-thread").bounding_box()
        recipe = page.locator("#recipe-panel").bounding_box()
        assert recipe["y"] >= thread["y"] + thread["height"]
        toggle.click()
        assert links.is_visible() and toggle.get_attribute("aria-expanded") == "true"

        page.set_viewport_size({"width": 1280, "height": 900})
        assert not toggle.is_visible() and links.is_visible()

        # A recipe without tests of its own says what runs anyway.
        tests = page.locator("#recipe-panel [data-field=tests]")
        assert "Every build still runs the default checks" in tests.inner_text()
        checks = page.locator("#recipe-panel [data-default-checks] li").all_inner_texts()
        assert any(c.startswith("Boot verification") for c in checks)
        assert any(c.startswith("SSH reachable") for c in checks)
        assert page.title() == "Create a Debian server with SSH and Docker · Chat · Kiln"
    finally:
        context.close()


def test_build_page_queues_custom_checks_and_deletes_a_build(browser, live_server_url, workspace, app):
    from app.extensions import db
    from app.models import Build, TestRun

    context = browser.new_context(base_url=live_server_url)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        login(page, workspace.user.email, PASSWORD)
        page.goto(f"/builds/{workspace.succeeded_id}")
        assert page.title() == "Build #1 · debian · Kiln"
        page.click("#build-manage summary:has-text('Check something else')")
        # A line the form cannot read is refused in the page, naming the line.
        page.fill("#custom-assertions", "port_open:port=443\nnginx is up")
        page.click("#build-manage button:has-text('Run these checks')")
        page.wait_for_selector("[data-form-error]:has-text('Line 2')")
        # The API's own refusal (an unknown check) is shown as it words it.
        page.fill("#custom-assertions", "port_opened:port=443")
        page.click("#build-manage button:has-text('Run these checks')")
        page.wait_for_selector("[data-form-error]:has-text('port_opened')")
        page.fill("#custom-assertions", "port_open:port=443\nservice_running:service=nginx")
        with page.expect_navigation():
            page.click("#build-manage button:has-text('Run these checks')")
        page.wait_for_selector("#build-tests :text('Custom assertions')")
        with app.app_context():
            run = db.session.query(TestRun).filter_by(build_id=workspace.succeeded_id, kind="custom").one()
            assert run.status == "queued"
            assert [a["type"] for a in run.assertions] == ["port_open", "service_running"]
            assert run.assertions[0]["params"]["port"] == 443

        page.goto(f"/builds/{workspace.failed_id}")
        page.click("#build-manage summary:has-text('Delete this build')")
        page.once("dialog", lambda d: d.accept())
        with page.expect_navigation(url="**/builds"):
            page.click("[data-delete-build]")
        with app.app_context():
            assert db.session.get(Build, workspace.failed_id) is None
    finally:
        context.close()
    assert errors == []

