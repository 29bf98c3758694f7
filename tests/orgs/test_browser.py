"""In a real browser (headless Chromium, CSP and CSRF on): API keys page and member management via htmx."""
from __future__ import annotations

import pytest

from tests.conftest import PASSWORD
from tests.fixtures.browser import login

pytestmark = pytest.mark.browser


def _switch_to_acme(page, acme):
    page.goto("/organization")
    page.select_option("form.org-switcher select", str(acme.org_id))
    page.wait_for_selector("h1:has-text('Acme')")


def test_api_key_created_shown_once_copied_and_revoked(page, acme):
    login(page, acme.admin.email, PASSWORD)
    _switch_to_acme(page, acme)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto("/api-keys")
    page.fill("#api-keys input[name=name]", "deploy-bot")
    page.check("#api-keys input[value='builds:write']")
    page.click("#api-keys button:has-text('Create key')")
    value = page.locator("#new-key-value")
    value.wait_for()
    raw = value.input_value()
    assert raw.startswith("kiln_")
    page.click("button[data-copy='new-key-value']")
    page.wait_for_selector("button[data-copy='new-key-value']:has-text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == raw
    # confirmation first: dismissing keeps the key, accepting revokes it
    row = "tr[data-key='deploy-bot']"
    page.once("dialog", lambda d: d.dismiss())
    page.click(f"{row} button:has-text('Revoke')")
    page.wait_for_timeout(300)
    assert page.get_attribute(row, "data-status") == "active"
    page.once("dialog", lambda d: d.accept())
    page.click(f"{row} button:has-text('Revoke')")
    page.wait_for_selector(f"{row}[data-status='revoked']")
    assert raw not in page.content()  # the secret is gone once the list re-renders
    assert page.console_errors == []


def test_member_role_change_and_invite_with_htmx(page, acme):
    login(page, acme.owner.email, PASSWORD)
    _switch_to_acme(page, acme)
    row = "tr[data-member='member@example.com']"
    page.select_option(f"{row} select[name=role]", "admin")
    page.click(f"{row} button:has-text('Change')")
    page.wait_for_selector("#org-members :text('Role changed.')")
    assert page.locator(f"{row} select[name=role]").input_value() == "admin"
    page.fill("#org-invites input[name=email]", "newbie@example.com")
    page.click("#org-invites button:has-text('Send invitation')")
    page.wait_for_selector("tr[data-invite='newbie@example.com']")
    assert page.console_errors == []
