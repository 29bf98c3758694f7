"""The chat page: full renders, fragments, the no-JS message form, the YAML editor, versions and diffs."""
from __future__ import annotations

import re

HX = {"HX-Request": "true"}


def no_inline_code(html: str) -> None:
    # CSP allows neither inline scripts nor style attributes.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert " style=" not in html and "onclick" not in html


def make_conversation(client, auth_headers, name="Web server"):
    return client.post("/api/conversations", json={"name": name}, headers=auth_headers).json["id"]


def test_index_page(client, user, login, auth_headers):
    login(user)
    make_conversation(client, auth_headers, "First design")
    resp = client.get("/chat")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert 'id="conversation-list"' in html and "First design" in html and 'id="chat-form"' in html
    assert "/static/js/chat.js" in html and 'data-stream-url="/api/chat/stream"' in html
    assert "New conversation" in html
    no_inline_code(html)


def test_pages_need_login(client):
    resp = client.get("/chat")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_new_conversation_button(client, user, login):
    login(user)
    resp = client.post("/chat/new", data={})
    assert resp.status_code == 302
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "New conversation" in page and 'id="recipe-panel"' in page


def test_detail_page_full_render(client, user, login, auth_headers, chat):
    login(user)
    cid = chat("Create a Debian server with SSH and Docker")["conversationId"]
    resp = client.get(f"/chat/{cid}")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "HX-Request" in resp.headers.get("Vary", "")
    for element in ("conversation-list", "message-thread", "chat-form", "recipe-panel", "version-history",
                    "version-diff"):
        assert f'id="{element}"' in html, element
    assert "Create a Debian server with SSH and Docker" in html  # the user's message
    assert "openssh-server" in html and "docker.io" in html  # summary + YAML editor
    assert f'data-conversation-id="{cid}"' in html and "recipe v2" in html
    assert 'name="yaml"' in html and "release: trixie" in html
    no_inline_code(html)


def test_fragments(client, user, login, auth_headers, chat):
    login(user)
    cid = chat("install htop")["conversationId"]
    thread = client.get(f"/chat/{cid}/thread", headers=HX).get_data(as_text=True)
    assert thread.lstrip().startswith('<section id="message-thread"') and "install htop" in thread
    panel = client.get(f"/chat/{cid}/recipe", headers=HX)
    assert panel.status_code == 200
    assert panel.get_data(as_text=True).lstrip().startswith('<section id="recipe-panel"') and "htop" in panel.get_data(as_text=True)
    # Without htmx the recipe URL is the page itself.
    assert client.get(f"/chat/{cid}/recipe").status_code == 302
    versions = client.get(f"/chat/{cid}/versions", headers=HX).get_data(as_text=True)
    assert versions.lstrip().startswith('<section id="version-history"') and "v2" in versions and "diff vs v1" in versions
    diff = client.get(f"/chat/{cid}/versions/2/diff", headers=HX).get_data(as_text=True)
    assert diff.lstrip().startswith('<div id="version-diff"') and "+- htop" in diff.replace("+  - htop", "+- htop")
    assert "<html" not in diff
    full = client.get(f"/chat/{cid}/versions/2/diff")
    assert full.status_code == 200 and "<html" in full.get_data(as_text=True) and "htop" in full.get_data(as_text=True)
    assert client.get(f"/chat/{cid}/versions/9/diff", headers=HX).status_code == 404


def test_no_js_message_form(client, user, login, auth_headers, package_indexes):
    login(user)
    cid = make_conversation(client, auth_headers)
    resp = client.post(f"/chat/{cid}/messages", data={"message": "add nginx and open port 80"})
    assert resp.status_code == 302 and f"/chat/{cid}" in resp.headers["Location"]
    html = client.get(f"/chat/{cid}").get_data(as_text=True)
    assert "add nginx and open port 80" in html and "80/tcp" in html
    resp = client.post(f"/chat/{cid}/messages", data={"message": "   "})
    assert resp.status_code == 400 and 'id="message-error"' in resp.get_data(as_text=True)
    assert "must not be empty" in resp.get_data(as_text=True)


def test_no_js_first_message_starts_a_conversation(client, user, login, auth_headers, package_indexes):
    login(user)
    resp = client.post("/chat", data={"message": "Set up a Debain box with dockr"})
    assert resp.status_code == 302
    html = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "docker.io" in html and "Set up a Debain box with dockr" in html
    resp = client.post("/chat", data={"message": ""})
    assert resp.status_code == 400 and "must not be empty" in resp.get_data(as_text=True)


def test_yaml_editor_errors_and_save(client, user, login, auth_headers):
    login(user)
    cid = make_conversation(client, auth_headers)
    yaml_text = client.get(f"/api/conversations/{cid}/recipe", headers=auth_headers).json["yaml"]
    bad = yaml_text.replace("hostname: debian", "hostname: -nope-").replace("release: trixie", "release: sid")
    resp = client.post(f"/chat/{cid}/recipe", data={"yaml": bad}, headers=HX)
    html = resp.get_data(as_text=True)
    # A refused save answers 400 with the panel (errors inline); base.html's htmx config swaps 4xx answers.
    assert resp.status_code == 400 and html.lstrip().startswith('<section id="recipe-panel"')
    assert 'id="recipe-errors"' in html and "<code>hostname</code>" in html and "<code>release</code>" in html
    assert "hostname: -nope-" in html  # the person's text is kept for fixing
    assert len(client.get(f"/api/conversations/{cid}/recipe/versions", headers=auth_headers).json["versions"]) == 1

    resp = client.post(f"/chat/{cid}/recipe", data={"yaml": "hostname: [broken"}, headers=HX)
    assert "<code>recipe</code>" in resp.get_data(as_text=True)
    resp = client.post(f"/chat/{cid}/recipe", data={"yaml": bad})  # no htmx: the whole page, 400
    assert resp.status_code == 400 and 'id="recipe-errors"' in resp.get_data(as_text=True)

    good = yaml_text.replace("hostname: debian", "hostname: edge-1")
    resp = client.post(f"/chat/{cid}/recipe", data={"yaml": good}, headers=HX)
    assert resp.status_code == 200 and resp.headers.get("HX-Trigger") == "recipe-changed"
    assert "Saved as version 2" in resp.get_data(as_text=True) and "edge-1" in resp.get_data(as_text=True)
    assert client.get(f"/api/conversations/{cid}/recipe", headers=auth_headers).json["recipe"]["hostname"] == "edge-1"


def test_rename_and_delete(client, user, login, auth_headers):
    login(user)
    cid = make_conversation(client, auth_headers)
    assert client.post(f"/chat/{cid}/rename", data={"name": "Renamed"}).status_code == 302
    assert "Renamed" in client.get(f"/chat/{cid}").get_data(as_text=True)
    resp = client.post(f"/chat/{cid}/delete")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/chat")
    assert client.get(f"/chat/{cid}").status_code == 404


def test_other_users_conversation_is_a_404_page(client, factory, user, login, auth_headers):
    cid = make_conversation(client, auth_headers)
    login(factory.user(email="eve@example.com"))
    for url in (f"/chat/{cid}", f"/chat/{cid}/thread", f"/chat/{cid}/versions"):
        resp = client.get(url)
        assert resp.status_code == 404 and resp.mimetype == "text/html"
    assert client.post(f"/chat/{cid}/recipe", data={"yaml": "hostname: x"}, headers=HX).status_code == 404
