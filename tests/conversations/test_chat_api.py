"""POST /api/chat and GET /api/chat/stream drive whole conversations through the real planner."""
from __future__ import annotations

import json

import pytest

from app.http.streams import RETRY_AFTER

CAROL_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGm8c5lrLUg1HlnC4GVtUpfxW6k06Ofq9KzOYu0VxY3a carol@host"


def parse_sse(text: str) -> list[tuple[str, str]]:
    """(event, data) pairs per the SSE spec: data lines joined with newlines, one leading space dropped."""
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name, data = "message", []
        for line in block.split("\n"):
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        events.append((name, "\n".join(data)))
    return events


def versions(client, headers, cid):
    resp = client.get(f"/api/conversations/{cid}/recipe/versions", headers=headers)
    assert resp.status_code == 200
    return resp.json["versions"]


def test_acceptance_conversation(client, auth_headers, chat):
    first = chat("Create a Debian server with SSH and Docker")
    cid = first["conversationId"]
    assert first["changed"] is True and first["recipeVersion"] == 2 and first["operations"]
    r = first["recipe"]
    assert {"openssh-server", "docker.io"} <= set(r["packages"])
    assert {"ssh", "docker"} <= set(r["services"]["enable"])
    assert first["response"] and first["messageId"]
    detail = client.get(f"/api/conversations/{cid}", headers=auth_headers).json
    assert detail["name"] == "Create a Debian server with SSH and Docker"

    r = chat("add nginx and open port 80 and 443", cid)["recipe"]
    assert "nginx" in r["packages"] and r["firewall"]["enabled"] is True
    assert {"80/tcp", "443/tcp", "22/tcp"} <= set(r["firewall"]["allow"])

    r = chat("switch to bookworm", cid)["recipe"]
    assert r["release"] == "bookworm"

    r = chat("make the hostname api-gw and the timezone America/New_York", cid)["recipe"]
    assert r["hostname"] == "api-gw" and r["timezone"] == "America/New_York"

    r = chat(f"create user carol in the sudo group with key {CAROL_KEY}", cid)["recipe"]
    carol = next(u for u in r["users"] if u["name"] == "carol")
    assert "sudo" in carol["groups"] and carol["sshKeys"] == [CAROL_KEY]

    r = chat("drop nginx", cid)["recipe"]
    assert "nginx" not in r["packages"] and "openssh-server" in r["packages"]

    r = chat("I'd like a qcow2 image instead", cid)["recipe"]
    assert r["format"] == "qcow2"

    answer = chat("install htop, jq and tmux", cid)
    assert {"htop", "jq", "tmux"} <= set(answer["recipe"]["packages"])
    before = answer["recipe"]
    count = len(versions(client, auth_headers, cid))

    refused = chat("install foobarbaz-not-real", cid)
    assert refused["changed"] is False and refused["recipe"] == before
    assert "foobarbaz-not-real" in refused["response"]
    assert "foobarbaz-not-real" not in refused["recipe"]["packages"]
    assert len(versions(client, auth_headers, cid)) == count  # no version for an unchanged recipe

    question = chat("what packages are in it?", cid)
    assert question["changed"] is False and question["recipeVersion"] == refused["recipeVersion"]
    for name in ("openssh-server", "docker.io", "htop", "jq", "tmux"):
        assert name in question["response"]

    # Every version after the first links the assistant message that made it, in order.
    listed = versions(client, auth_headers, cid)
    assert [v["number"] for v in listed] == list(range(1, len(listed) + 1))
    assert listed[0]["source"] == "initial" and listed[0]["messageId"] is None
    detail = client.get(f"/api/conversations/{cid}", headers=auth_headers).json
    by_id = {m["id"]: m for m in detail["messages"]}
    assert len(detail["messages"]) == 2 * 10
    assert [m["role"] for m in detail["messages"][:4]] == ["user", "assistant", "user", "assistant"]
    for v in listed[1:]:
        assert v["source"] == "chat" and by_id[v["messageId"]]["role"] == "assistant"
        assert by_id[v["messageId"]]["recipeVersion"] == v["number"]
    assert listed[-1]["number"] == detail["recipeVersion"] == len(listed) == 9
    assert detail["recipe"] == question["recipe"]


def test_typos_are_understood_in_a_new_conversation(chat):
    result = chat("Set up a Debain box with dockr")
    assert "docker.io" in result["recipe"]["packages"]
    assert result["recipe"]["distribution"] == "debian"
    assert result["changed"] is True


def test_message_validation_names_message(client, auth_headers, conversation):
    for body in ({"message": ""}, {"message": "x" * 4001}, {}):
        body = dict(body, conversationId=conversation["id"])
        resp = client.post("/api/chat", json=body, headers=auth_headers)
        assert resp.status_code == 400 and resp.json["error"]["code"] == "VALIDATION_ERROR"
        assert "message" in resp.json["error"]["details"]
    resp = client.post("/api/chat", json={"message": "   ", "conversationId": conversation["id"]}, headers=auth_headers)
    assert resp.status_code == 400 and "message" in resp.json["error"]["details"]
    resp = client.post("/api/chat", json={"message": "hi", "bogus": 1}, headers=auth_headers)
    assert resp.status_code == 400 and "bogus" in resp.json["error"]["details"]
    # Nothing was stored for the refused requests.
    detail = client.get(f"/api/conversations/{conversation['id']}", headers=auth_headers).json
    assert detail["messages"] == []


def test_chat_needs_auth_and_edit_access(client, factory, auth_headers, conversation):
    resp = client.post("/api/chat", json={"message": "add nginx"})
    assert resp.status_code == 401 and resp.json["error"]["code"] == "UNAUTHORIZED"
    other = factory.user(email="bob@example.com")
    resp = client.post("/api/chat", json={"message": "add nginx", "conversationId": conversation["id"]},
                       headers=factory.headers(other))
    assert resp.status_code == 404
    resp = client.post("/api/chat", json={"message": "add nginx", "conversationId": "not-a-uuid"},
                       headers=auth_headers)
    assert resp.status_code == 400 and "conversationId" in resp.json["error"]["details"]


def test_viewer_cannot_chat(client, factory, user, package_indexes):
    org = factory.org(user, "Acme")
    viewer = factory.user(email="vera@example.com")
    factory.add_member(org, viewer, "viewer")
    resp = client.post("/api/chat", json={"message": "add nginx"}, headers=factory.headers(viewer, org))
    assert resp.status_code == 403 and resp.json["error"]["code"] == "FORBIDDEN"


def test_stream_events(client, auth_headers, conversation, package_indexes):
    cid = conversation["id"]
    resp = client.get("/api/chat/stream", query_string={"conversationId": cid, "message": "add nginx and htop"},
                      headers=auth_headers)
    assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-cache"
    events = parse_sse(resp.get_data(as_text=True))
    names = [name for name, _ in events]
    assert names[-2:] == ["recipe", "done"] and set(names[:-2]) == {"delta"} and len(names) > 3
    reply = "".join(data for name, data in events if name == "delta")
    recipe_event = json.loads(events[-2][1])
    done = json.loads(events[-1][1])
    assert {"nginx", "htop"} <= set(recipe_event["recipe"]["packages"])
    assert recipe_event["recipeVersion"] == 2 and recipe_event["changed"] is True
    assert done["conversationId"] == cid
    # The streamed text is exactly the stored reply, and the message is the one the version links.
    detail = client.get(f"/api/conversations/{cid}", headers=auth_headers).json
    assistant = detail["messages"][-1]
    assert assistant["id"] == done["messageId"] and assistant["content"] == reply and "nginx" in reply
    assert assistant["recipeVersion"] == 2


def test_stream_starts_a_conversation(client, auth_headers, package_indexes):
    resp = client.get("/api/chat/stream", query_string={"message": "Create a Debian server with SSH"},
                      headers=auth_headers)
    events = parse_sse(resp.get_data(as_text=True))
    done = json.loads(events[-1][1])
    detail = client.get(f"/api/conversations/{done['conversationId']}", headers=auth_headers).json
    assert "openssh-server" in detail["recipe"]["packages"]


@pytest.mark.parametrize("query, field, status", [
    ({"message": ""}, "message", 400),
    ({"message": "y" * 4001}, "message", 400),
    ({}, "message", 400),
    ({"message": "hi", "conversationId": "nope"}, "conversationId", 400),
])
def test_stream_errors_are_error_events(client, auth_headers, query, field, status):
    resp = client.get("/api/chat/stream", query_string=query, headers=auth_headers)
    assert resp.status_code == status and resp.mimetype == "text/event-stream"
    (name, data), = parse_sse(resp.get_data(as_text=True))
    envelope = json.loads(data)
    assert name == "error" and envelope["error"]["code"] == "VALIDATION_ERROR"
    assert field in envelope["error"]["details"] and envelope["error"]["traceId"]


def test_stream_auth_and_access_errors(client, factory, conversation):
    resp = client.get("/api/chat/stream", query_string={"message": "hi"})
    (name, data), = parse_sse(resp.get_data(as_text=True))
    assert resp.status_code == 401 and name == "error" and json.loads(data)["error"]["code"] == "UNAUTHORIZED"
    other = factory.user(email="mallory@example.com")
    resp = client.get("/api/chat/stream", query_string={"message": "hi", "conversationId": conversation["id"]},
                      headers=factory.headers(other))
    (name, data), = parse_sse(resp.get_data(as_text=True))
    assert resp.status_code == 404 and json.loads(data)["error"]["code"] == "NOT_FOUND"


def test_v1_alias_serves_chat(client, auth_headers, chat):
    cid = chat("install htop")["conversationId"]
    resp = client.get(f"/api/v1/conversations/{cid}/recipe", headers=auth_headers)
    assert resp.status_code == 200 and "htop" in resp.json["recipe"]["packages"]


def test_the_reply_stream_takes_a_stream_slot_and_is_refused_before_any_work_when_none_is_free(
        client, auth_headers, conversation, llm, package_indexes, stream_slots, monkeypatch, app):
    """The reply holds a web thread from the model's call to its last event, like a live log stream: it counts
    against KILN_STREAMS_PER_PROCESS, and a refused request asks no model and writes no message."""
    cid = conversation["id"]
    query = {"conversationId": cid, "message": "add nginx"}
    before = stream_slots.open
    monkeypatch.setitem(app.config, "KILN_STREAMS_PER_PROCESS", before + 1)
    assert stream_slots.take(before + 1)  # another stream holds the last slot
    refused = client.get("/api/chat/stream", query_string=query, headers=auth_headers)
    assert refused.status_code == 503 and refused.mimetype == "text/event-stream"
    assert refused.headers.getlist("Retry-After") == [str(RETRY_AFTER)]  # not the rate limit window's reset
    (name, data), = parse_sse(refused.get_data(as_text=True))
    error = json.loads(data)["error"]
    assert name == "error" and error["code"] == "SERVICE_UNAVAILABLE"
    assert error["details"] == {"streams": ["at capacity"]} and error["traceId"]
    assert llm.requests == []  # no model call, so no tokens
    kinds = [t["kind"] for t in client.get("/api/tokens/transactions", headers=auth_headers).json["transactions"]]
    assert "consume" not in kinds
    assert client.get(f"/api/conversations/{cid}", headers=auth_headers).json["messages"] == []
    assert stream_slots.open == before + 1  # the refusal took nothing

    stream_slots.give_back()  # the other stream ends: the next try gets its slot
    llm.reply_tools(("add_packages", {"packages": ["nginx"]}))
    resp = client.get("/api/chat/stream", query_string=query, headers=auth_headers)
    assert resp.status_code == 200
    assert stream_slots.open == before + 1  # the body holds it until it has been sent
    names = [name for name, _ in parse_sse(resp.get_data(as_text=True))]
    assert names[-2:] == ["recipe", "done"]
    assert stream_slots.open == before
    resp.close()  # what a WSGI server does with every body: the slot is not given back twice
    assert stream_slots.open == before
    assert len(llm.requests) == 1
    roles = [m["role"] for m in client.get(f"/api/conversations/{cid}", headers=auth_headers).json["messages"]]
    assert roles == ["user", "assistant"]


def test_a_reply_stream_that_fails_after_taking_its_slot_gives_it_back(client, auth_headers, stream_slots,
                                                                        monkeypatch, app):
    before = stream_slots.open
    monkeypatch.setitem(app.config, "KILN_STREAMS_PER_PROCESS", before + 1)
    missing = {"conversationId": "00000000-0000-0000-0000-000000000000", "message": "hi"}
    resp = client.get("/api/chat/stream", query_string=missing, headers=auth_headers)
    (name, data), = parse_sse(resp.get_data(as_text=True))
    assert resp.status_code == 404 and json.loads(data)["error"]["code"] == "NOT_FOUND"
    assert stream_slots.open == before
