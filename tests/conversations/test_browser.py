"""Headless Chromium: a message typed on the chat page streams its reply and updates the recipe in place."""
from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser


def test_streamed_reply_updates_recipe(logged_in_page, client, auth_headers, package_indexes):
    page = logged_in_page
    cid = client.post("/api/conversations", json={"name": "Browser test"}, headers=auth_headers).json["id"]
    streams = []
    page.on("request", lambda req: streams.append(req.url) if "/api/chat/stream" in req.url else None)

    page.goto(f"/chat/{cid}")
    assert page.locator("#recipe-panel [data-recipe-badge]").inner_text() == "v1"
    page.fill("#chat-message", "add nginx and open port 80 and 443")
    page.click("[data-chat-send]")

    reply = page.locator("#message-thread .msg-assistant").last
    reply.wait_for()
    page.wait_for_function("() => !document.querySelector('#chat-form').classList.contains('is-streaming')")
    assert "nginx" in reply.inner_text()
    # The recipe panel re-rendered itself on the `recipe` event.
    page.wait_for_selector("#recipe-panel [data-recipe-badge]:text('v2')")
    assert "nginx" in page.locator("#recipe-panel [data-field=packages]").inner_text()
    assert "443/tcp" in page.locator("#recipe-panel [data-field=firewall]").inner_text()
    page.wait_for_selector("#version-history :text('diff vs v1')")
    assert len(streams) == 1 and "csrf_token=" in streams[0]
    assert page.url.endswith(f"/chat/{cid}")  # streamed in place, no form post
    assert page.locator("#chat-message").input_value() == ""

    # Version history shows the diff inline.
    page.click("#version-history a:text('diff vs v1')")
    page.wait_for_selector("#version-diff .diff-add")
    assert "nginx" in page.locator("#version-diff").inner_text()

    # The YAML editor shows field errors inline, and saves a valid edit as a new version.
    page.click("#recipe-panel summary")
    text = page.locator("#recipe-panel textarea[name=yaml]").input_value()
    page.fill("#recipe-panel textarea[name=yaml]", text.replace("hostname: debian", "hostname: -bad-"))
    page.click("#recipe-panel button[type=submit]")
    page.wait_for_selector("#recipe-errors")
    assert "hostname" in page.locator("#recipe-errors").inner_text()
    page.fill("#recipe-panel textarea[name=yaml]", text.replace("hostname: debian", "hostname: edge-1"))
    page.click("#recipe-panel button[type=submit]")
    page.wait_for_selector("#recipe-panel [data-recipe-badge]:text('v3')")
    assert page.locator("#recipe-panel [data-field=hostname]").inner_text() == "edge-1"
    # The refused save answered 400 (htmx swapped it: the errors above came from it); Chromium notes any
    # non-2xx answer on the console. That note is the only error allowed.
    refused = "Failed to load resource: the server responded with a status of 400 (BAD REQUEST)"
    assert [e for e in page.console_errors if e != refused] == [] and page.console_errors.count(refused) == 1


def test_first_message_opens_the_new_conversation(logged_in_page, package_indexes):
    page = logged_in_page
    page.goto("/chat")
    page.fill("#chat-message", "Create a Debian server with SSH and Docker")
    page.press("#chat-message", "Enter")
    page.wait_for_url(re.compile(r".*/chat/[0-9a-f-]{36}$"))
    assert "docker.io" in page.locator("#recipe-panel [data-field=packages]").inner_text()
    assert "Create a Debian server with SSH and Docker" in page.locator("#message-thread").inner_text()
    assert page.console_errors == []


def test_empty_message_is_refused_in_the_page(logged_in_page, client, auth_headers):
    page = logged_in_page
    cid = client.post("/api/conversations", json={"name": "Empty"}, headers=auth_headers).json["id"]
    page.goto(f"/chat/{cid}")
    page.fill("#chat-message", "   ")
    page.click("[data-chat-send]")
    page.wait_for_selector("#message-error:not([hidden])")
    assert page.locator("#message-thread .msg").count() == 0
    assert page.console_errors == []


def test_session_stream_needs_the_page_csrf_token(logged_in_page):
    # The stream is a GET that writes: a link from another site must not post messages as the user.
    resp = logged_in_page.request.get("/api/chat/stream?message=install%20htop")
    assert resp.status == 400 and "csrf_token" in resp.text() and resp.headers["content-type"].startswith("text/event-stream")


def test_build_button_starts_a_build_and_shows_progress(logged_in_page, client, auth_headers):
    page = logged_in_page
    cid = client.post("/api/conversations", json={"name": "Build me"}, headers=auth_headers).json["id"]
    page.goto(f"/chat/{cid}")
    page.click("[data-build-start]")
    link = page.locator("#build-panel [data-build-status] a")
    link.wait_for()
    assert re.search(r"/builds/[0-9a-f-]{36}$", link.get_attribute("href"))
    page.wait_for_selector("#build-panel #build-progress")
    builds = client.get(f"/api/builds?conversationId={cid}", headers=auth_headers).json["builds"]
    assert len(builds) == 1 and builds[0]["id"] in link.get_attribute("href")
    assert builds[0]["status"] in ("pending", "queued", "building", "testing", "succeeded", "failed")
    assert page.console_errors == []
