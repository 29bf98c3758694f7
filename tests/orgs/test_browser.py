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


def test_refused_htmx_changes_are_swapped(page, acme):
    """htmx 2 swaps nothing but 2xx by default; base.html's config makes refusals visible: a refused change
    comes back with its real status, as the partial with the error inside or, with no partial to show, as
    the error fragment in #error-region."""
    login(page, acme.admin.email, PASSWORD)
    _switch_to_acme(page, acme)
    answers = []
    page.on("response", lambda r: answers.append((r.request.method, r.url, r.status)))
    page.fill("#org-members input[name=email]", "nobody@example.com")
    page.click("#org-members button:has-text('Add member')")
    page.wait_for_selector("#org-members [role=alert]:has-text('no Kiln account uses nobody@example.com')")
    assert ("POST", page.url.replace("/organization", "/organization/members"), 400) in answers
    assert page.locator("#org-members").count() == 1  # swapped in place, not nested

    # An admin may not delete the organization (owners only): no partial fits, the error region says so.
    page.evaluate("htmx.ajax('POST', '/organization/delete', {target: '#org-name', swap: 'outerHTML'})")
    page.wait_for_selector("#error-region #error-panel:has-text('403')")
    assert "does not allow org:delete" in page.locator("#error-region").inner_text()
    assert page.locator("#org-name").count() == 1  # the element it was aimed at is untouched
    refused = [e for e in page.console_errors if e.startswith("Failed to load resource: the server responded with a status of 40")]
    assert page.console_errors == refused and len(refused) == 2
