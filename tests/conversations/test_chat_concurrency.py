"""A chat turn runs the planner with no transaction open, and writes only onto the version it started from.

The LLM endpoint is a real local HTTP server (the fake of an external service). While it "thinks", a
second request edits the recipe: that edit must go through at once (no lock is held during planning),
and the chat answer must then be refused with a 409 instead of silently undoing the edit.
"""
from __future__ import annotations


def _edit_while_planning(app, auth_headers, cid, hostname):
    """on_request hook: a direct recipe edit from another request (another thread, its own session)."""
    seen = {}

    def edit(_body):
        with app.test_client() as other:
            recipe = other.get(f"/api/conversations/{cid}/recipe", headers=auth_headers).json["recipe"]
            resp = other.put(f"/api/conversations/{cid}/recipe", json={**recipe, "hostname": hostname},
                             headers=auth_headers)
            seen["status"], seen["body"] = resp.status_code, resp.json

    return edit, seen


def test_an_edit_while_the_planner_works_wins_and_the_chat_answer_is_a_conflict(
        app, client, auth_headers, conversation, llm, package_indexes):
    cid = conversation["id"]
    llm.reply_tools(("add_packages", {"packages": ["nginx"]}))
    llm.on_request, seen = _edit_while_planning(app, auth_headers, cid, "edited-meanwhile")

    resp = client.post("/api/chat", json={"message": "add nginx", "conversationId": cid}, headers=auth_headers)

    # The edit was not blocked by the chat turn (it would wait for the lock, or fail with "database is locked").
    assert seen["status"] == 200, seen["body"]
    assert seen["body"]["recipeVersion"] == 2
    assert resp.status_code == 409, resp.json
    error = resp.json["error"]
    assert error["code"] == "CONFLICT"
    assert "version 1 became version 2" in error["message"] and "Send the message again" in error["message"]
    assert error["details"] == {"recipeVersion": 2, "startedFrom": 1}

    current = client.get(f"/api/conversations/{cid}/recipe", headers=auth_headers).json
    assert current["recipeVersion"] == 2
    assert current["recipe"]["hostname"] == "edited-meanwhile" and "nginx" not in current["recipe"]["packages"]
    # The person's message is kept (it was said); no answer was written for it.
    messages = client.get(f"/api/conversations/{cid}", headers=auth_headers).json["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [("user", "add nginx")]

    # Sent again, it applies to the current recipe and keeps the edit.
    llm.on_request = None
    llm.reply_tools(("add_packages", {"packages": ["nginx"]}))
    again = client.post("/api/chat", json={"message": "add nginx", "conversationId": cid}, headers=auth_headers)
    assert again.status_code == 200, again.json
    assert again.json["recipeVersion"] == 3
    assert again.json["recipe"]["hostname"] == "edited-meanwhile" and "nginx" in again.json["recipe"]["packages"]


def test_an_answer_that_changes_nothing_is_written_even_after_a_concurrent_edit(
        app, client, auth_headers, conversation, llm, package_indexes):
    cid = conversation["id"]
    llm.reply_text("It is a plain Debian trixie image.")
    llm.on_request, seen = _edit_while_planning(app, auth_headers, cid, "other-host")

    resp = client.post("/api/chat", json={"message": "what is in it?", "conversationId": cid}, headers=auth_headers)

    assert seen["status"] == 200
    assert resp.status_code == 200, resp.json
    assert resp.json["changed"] is False and resp.json["recipeVersion"] == 2
    assert resp.json["response"] == "It is a plain Debian trixie image."


def test_the_page_form_shows_the_conflict(app, client, factory, user, llm, package_indexes, login):
    login(user)
    headers = factory.headers(user)
    cid = client.post("/api/conversations", json={"name": "Box"}, headers=headers).json["id"]
    llm.reply_tools(("add_packages", {"packages": ["git"]}))
    llm.on_request, seen = _edit_while_planning(app, headers, cid, "edited-in-a-tab")

    resp = client.post(f"/chat/{cid}/messages", data={"message": "add git"})

    assert seen["status"] == 200
    assert resp.status_code == 409
    assert b"The recipe changed while the assistant was answering" in resp.data
