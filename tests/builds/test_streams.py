"""Live logs: SSE and WebSocket follow a build, resume from a cursor without gaps or duplicates, end on done."""
from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest
import websocket

from tests.builds.conftest import append_log, beat


def parse_sse(text: str) -> list[dict]:
    events = []
    for block in text.split("\n\n"):
        event = {}
        for line in block.splitlines():
            if line.startswith(":") or not line:
                continue
            key, _, value = line.partition(": ")
            event[key] = value
        if "event" in event:
            events.append(event)
    return events


def _append(app, build_id, messages, stage="configure"):
    return append_log(app, build_id, [(stage, "info", m) for m in messages])


def test_sse_replays_and_resumes_with_last_event_id(client, auth_headers, builds, org_id, app):
    build_id = builds.create(org_id, status="succeeded")
    _append(app, build_id, [f"line {i}" for i in range(1, 6)])
    resp = client.get(f"/api/streams/builds/{build_id}", headers=auth_headers)
    assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
    events = parse_sse(resp.get_data(as_text=True))
    kinds = [e["event"] for e in events]
    assert kinds[0] == "status" and kinds[-1] == "done" and kinds.count("log") == 5
    status = json.loads(events[0]["data"])
    assert status["buildId"] == str(build_id) and status["status"] == "succeeded" and "progress" in status
    logs = [e for e in events if e["event"] == "log"]
    assert [int(e["id"]) for e in logs] == [1, 2, 3, 4, 5]
    assert json.loads(logs[0]["data"])["message"] == "line 1"
    assert json.loads(events[-1]["data"])["status"] == "succeeded"
    resumed = parse_sse(client.get(f"/api/streams/builds/{build_id}",
                                   headers={**auth_headers, "Last-Event-ID": "3"}).get_data(as_text=True))
    assert [int(e["id"]) for e in resumed if e["event"] == "log"] == [4, 5]
    by_query = parse_sse(client.get(f"/api/streams/builds/{build_id}?after=4", headers=auth_headers).get_data(as_text=True))
    assert [int(e["id"]) for e in by_query if e["event"] == "log"] == [5]
    # An EventSource reconnects to its original URL (?after=1) and says where it got to in the header.
    reconnected = parse_sse(client.get(f"/api/streams/builds/{build_id}?after=1",
                                       headers={**auth_headers, "Last-Event-ID": "4"}).get_data(as_text=True))
    assert [int(e["id"]) for e in reconnected if e["event"] == "log"] == [5]
    bad = client.get(f"/api/streams/builds/{build_id}", headers={**auth_headers, "Last-Event-ID": "x"})
    assert bad.status_code == 400 and "Last-Event-ID" in bad.json["error"]["message"]


def test_stream_auth_and_tenant(client, builds, factory, app):
    owner = factory.user(email="owner@example.com")
    build_id = builds.create(owner.default_org_id, status="succeeded")
    assert client.get(f"/api/streams/builds/{build_id}").status_code == 401
    stranger = factory.user(email="stranger@example.com")
    assert client.get(f"/api/streams/builds/{build_id}", headers=factory.headers(stranger)).status_code == 404
    token = factory.token(owner)
    assert client.get(f"/api/streams/builds/{build_id}?token={token}").status_code == 200
    assert client.get(f"/api/streams/builds/{build_id}?token=garbage").status_code == 401
    ws_headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                  "Sec-WebSocket-Version": "13", "Authorization": f"Bearer {token}"}
    foreign_origin = client.get(f"/api/builds/{build_id}/logs/stream",
                                headers={**ws_headers, "Origin": "https://evil.example"})
    assert foreign_origin.status_code == 403


def _finish_later(app, build_id, lines, delay=0.05):
    """What a worker does: lines over time, then the build ends (log archived, status committed)."""
    from app.extensions import db
    from app.models import Build
    from app.services.builds import logs, run

    def write():
        with app.app_context():
            build = db.session.get(Build, build_id)
            for message in lines:
                logs.append(build, "package", "info", message)
                time.sleep(delay)
            run.succeed(build, build.attempt)
            db.session.remove()

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def _ws(url):
    return websocket.create_connection(url, timeout=20)


@pytest.mark.timeout(120)
def test_websocket_follows_live_build_and_resumes(live_server_url, factory, builds, app):
    owner = factory.user(email="ws@example.com")
    build_id = builds.create(owner.default_org_id, status="building")
    beat(app, build_id)
    token = factory.token(owner)
    base = live_server_url.replace("http://", "ws://") + f"/api/v1/builds/{build_id}/logs/stream?token={token}"
    lines = [f"line {i}" for i in range(1, 41)]
    first = _ws(base)
    writer = _finish_later(app, build_id, lines)
    seen = []
    while len(seen) < 10:
        msg = json.loads(first.recv())
        assert msg["buildId"] == str(build_id) and msg["metadata"] == {"stage": "package"}
        assert set(msg) == {"buildId", "seq", "timestamp", "level", "message", "metadata"}
        seen.append(msg)
    first.close()  # the browser tab goes away mid-build
    cursor = seen[-1]["seq"]
    second = _ws(base + f"&after={cursor}")
    final = None
    while True:
        msg = json.loads(second.recv())
        if msg.get("type") == "done":
            final = msg
            break
        seen.append(msg)
    writer.join(10)
    assert final["status"] == "succeeded"
    assert [m["seq"] for m in seen] == list(range(1, 41)), "every line exactly once across the reconnect"
    assert [m["message"] for m in seen] == lines
    # After the end: a late reconnect replays from the archive and says done.
    with app.app_context():
        from app.extensions import redis
        from app.services.builds import logs

        redis.client.delete(logs.stream_key(build_id))
    late = _ws(base + "&after=38")
    replay = [json.loads(late.recv()) for _ in range(3)]
    assert [m.get("seq") for m in replay[:2]] == [39, 40] and replay[2]["type"] == "done"


@pytest.mark.timeout(120)
def test_sse_follows_live_build_over_http(live_server_url, factory, builds, app):
    owner = factory.user(email="sse@example.com")
    build_id = builds.create(owner.default_org_id, status="building")
    beat(app, build_id)
    token = factory.token(owner)
    writer = _finish_later(app, build_id, [f"l{i}" for i in range(1, 21)])
    req = urllib.request.Request(f"{live_server_url}/api/streams/builds/{build_id}",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        events = parse_sse(resp.read().decode())
    writer.join(10)
    statuses = [json.loads(e["data"])["status"] for e in events if e["event"] == "status"]
    assert statuses[0] == "building" and statuses[-1] == "succeeded"
    assert [int(e["id"]) for e in events if e["event"] == "log"] == list(range(1, 21))
    assert events[-1]["event"] == "done"


def _api_key(app, user, scopes):
    from app.extensions import db
    from app.models import Organization, User
    from app.services import apikeys
    from app.services.audit import Actor

    with app.app_context():
        person = db.session.get(User, user.id)
        org = db.session.get(Organization, user.default_org_id)
        _key, raw = apikeys.create_key(Actor(user=person), org, name="ci", scopes=scopes)
        db.session.commit()
        return raw


def test_api_key_streams_by_header_and_query_and_scope(client, user, builds, org_id, app):
    build_id = builds.create(org_id, status="succeeded")
    _append(app, build_id, ["only line"])
    raw = _api_key(app, user, ["builds:read"])
    by_header = client.get(f"/api/streams/builds/{build_id}", headers={"X-API-Key": raw})
    assert by_header.status_code == 200 and "only line" in by_header.get_data(as_text=True)
    by_query = client.get(f"/api/streams/builds/{build_id}?token={raw}")
    assert by_query.status_code == 200 and "event: done" in by_query.get_data(as_text=True)
    wrong_scope = _api_key(app, user, ["conversations:read"])
    assert client.get(f"/api/streams/builds/{build_id}?token={wrong_scope}").status_code == 403
    # The key's scope also gates the JSON API: a read-only key cannot cancel or create.
    assert client.post(f"/api/builds/{build_id}/retry", headers={"X-API-Key": raw}).status_code == 403


@pytest.mark.timeout(60)
def test_streams_of_a_build_that_never_starts_end_instead_of_holding_a_thread(client, auth_headers, builds, org_id,
                                                                           app, app_config, monkeypatch, user):
    """A build created with start: false may never start: after KILN_STREAM_PENDING_WAIT the stream says
    `end` (not_started) and closes; the page falls back to polling, which holds no thread."""
    import threading

    from werkzeug.serving import make_server

    from app import create_app

    monkeypatch.setitem(app.config, "KILN_STREAM_PENDING_WAIT", 1)
    build_id = builds.create(org_id, status="pending")
    started = time.monotonic()
    events = parse_sse(client.get(f"/api/streams/builds/{build_id}", headers=auth_headers).get_data(as_text=True))
    assert time.monotonic() - started < 15
    assert [e["event"] for e in events] == ["status", "end"]
    assert json.loads(events[0]["data"])["status"] == "pending"
    assert json.loads(events[1]["data"]) == {"buildId": str(build_id), "status": "pending", "reason": "not_started"}

    live = create_app({**app_config, "TESTING": False, "KILN_STREAM_PENDING_WAIT": 1})
    server = make_server("127.0.0.1", 0, live, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        token = next(iter(auth_headers.values())).removeprefix("Bearer ")
        ws = _ws(f"ws://127.0.0.1:{server.server_port}/api/builds/{build_id}/logs/stream?token={token}")
        assert json.loads(ws.recv()) == {"type": "end", "buildId": str(build_id), "status": "pending",
                                         "reason": "not_started"}
        opcode, _data = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE  # the server closed it
        assert time.monotonic() - started < 30
    finally:
        server.shutdown()


def test_idle_waits_are_spread_so_streams_opened_together_do_not_wake_together():
    """200 streams opened at once must not all re-read their build in the same instant every tick."""
    from app.blueprints.builds import streams

    waits = [streams._idle_wait() for _ in range(200)]
    low, high = streams.IDLE_TICK * (1 - streams.IDLE_JITTER), streams.IDLE_TICK * (1 + streams.IDLE_JITTER)
    assert all(low <= w <= high for w in waits)
    # Spread over most of the window, not clustered: waits of streams started together drift apart.
    assert max(waits) - min(waits) > streams.IDLE_TICK * streams.IDLE_JITTER
    assert len({round(w, 3) for w in waits}) > 100
