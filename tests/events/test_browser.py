"""In headless Chromium (CSP and CSRF on): the header bell shows the unread count and follows read-all."""
from __future__ import annotations

import pytest

from tests.events.test_webhooks import _run_build

pytestmark = pytest.mark.browser


def test_bell_shows_unread_count_and_clears_without_reload(logged_in_page, app, user, builds, run_webhook_jobs):
    page = logged_in_page
    _run_build(app, builds, user.default_org_id, user.id, finish="failed")
    run_webhook_jobs()
    page.goto("/notifications")
    bell = page.locator("#notification-bell")
    assert bell.locator(".bell-count").inner_text() == "1"
    assert bell.get_attribute("aria-label") == "Notifications: 1 unread"
    page.evaluate("window.__noReload = true")
    page.click("#notification-list button:has-text('Mark all read')")
    page.wait_for_selector("#notification-bell[data-unread='0']")
    assert page.locator("#notification-bell .bell-count").count() == 0
    assert page.evaluate("window.__noReload") is True  # the count changed in place
    assert page.locator("article[data-read='no']").count() == 0
    assert page.console_errors == []


def test_refused_webhook_form_shows_its_error_in_place(logged_in_page):
    """The create form answers 400 with its own partial: htmx swaps it, the error shows, no reload."""
    page = logged_in_page
    page.goto("/webhooks")
    page.evaluate("window.__noReload = true")
    page.fill("#webhooks input[name=url]", "gopher://example.com/hook")
    with page.expect_response(lambda r: r.url.endswith("/webhooks") and r.request.method == "POST") as answer:
        page.click("#webhooks button:has-text('Add endpoint')")
    assert answer.value.status == 400
    page.wait_for_selector("#webhooks :text('url: must be an http')")
    assert page.evaluate("window.__noReload") is True
    assert page.locator("#webhooks tr[data-webhook]").count() == 0
