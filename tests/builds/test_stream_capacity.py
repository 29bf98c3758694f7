"""One web process holds at most KILN_STREAMS_PER_PROCESS live log streams (each holds a thread), refuses more
with 503 + Retry-After, and a stream holds no database connection while it waits."""
from __future__ import annotations

import http.client
import json
import os
import runpy
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import websocket

from app.http.streams import RETRY_AFTER
from tests.builds.conftest import append_log


def _stream_url(build_id) -> str:
    return f"/api/streams/builds/{build_id}"


@contextmanager
def serving(app_config, **config):
    """The app on a real threaded HTTP server on loopback: each stream holds a server thread, as in gunicorn."""
    from werkzeug.serving import make_server

    from app import create_app

    live = create_app({**app_config, "TESTING": False, **config})
    server = make_server("127.0.0.1", 0, live, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield live, server.server_port
    finally:
        server.shutdown()


def _open_stream(port: int, path: str, token: str) -> tuple[socket.socket, bytes]:
    """A raw client that reads a stream's first bytes and can then vanish mid-stream."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    received = b""
    while b"retry: 3000" not in received and b"\r\n\r\n{" not in received:
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    return sock, received


def _get(port: int, path: str, token: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    return conn, conn.getresponse()


@pytest.mark.timeout(60)
def test_streams_beyond_the_process_limit_are_refused_with_retry_after(app_config, factory, stream_slots):
    from tests.builds.conftest import BuildFactory

    owner = factory.user(email="streams-full@example.com")
    token = factory.token(owner)
    before = stream_slots.open
    with serving(app_config, KILN_STREAMS_PER_PROCESS=before + 1) as (live, port):
        build_id = BuildFactory(live).create(owner.default_org_id, status="building")
        held, head = _open_stream(port, _stream_url(build_id), token)
        assert head.startswith(b"HTTP/1.1 200") and b"retry: 3000" in head
        try:
            conn, refused = _get(port, _stream_url(build_id), token)
            body = json.loads(refused.read())
            conn.close()
            assert refused.status == 503
            assert body["error"]["code"] == "SERVICE_UNAVAILABLE"
            assert body["error"]["details"] == {"streams": ["at capacity"]}
            assert f"/api/builds/{build_id}/logs" in body["error"]["message"]  # where to poll instead
            # The stream cap's own wait, not the rate limit window's reset that Flask-Limiter puts on every answer.
            assert refused.getheader("Retry-After") == str(RETRY_AFTER)
            # Ordinary requests are not streams: they still get through.
            conn, ordinary = _get(port, f"/api/builds/{build_id}/logs", token)
            ordinary.read()
            conn.close()
            assert ordinary.status == 200
        finally:
            held.shutdown(socket.SHUT_RDWR)  # the client goes away mid-stream
            held.close()
        # The server notices at its next write (a keepalive at the latest; log lines here) and frees the slot.
        deadline = time.monotonic() + 40
        while stream_slots.open > before and time.monotonic() < deadline:
            append_log(live, build_id, [("package", "info", "a line nobody reads")])
            time.sleep(0.2)
        assert stream_slots.open == before
        again, head = _open_stream(port, _stream_url(build_id), token)
        assert head.startswith(b"HTTP/1.1 200")
        again.shutdown(socket.SHUT_RDWR)
        again.close()


def test_a_refused_or_unauthorized_stream_takes_no_slot(client, auth_headers, builds, org_id, app, monkeypatch,
                                                       stream_slots):

    before = stream_slots.open
    monkeypatch.setitem(app.config, "KILN_STREAMS_PER_PROCESS", before + 1)
    build_id = builds.create(org_id, status="succeeded")
    assert client.get(_stream_url(build_id)).status_code == 401
    assert client.get(_stream_url("00000000-0000-0000-0000-000000000000"), headers=auth_headers).status_code == 404
    # A finished build's stream replays and ends; its slot comes back when the body is closed.
    done = client.get(_stream_url(build_id), headers=auth_headers)
    assert done.status_code == 200 and "event: done" in done.get_data(as_text=True)
    assert stream_slots.open == before  # given back when the stream ended
    done.close()  # what a WSGI server does with every body: the slot is not given back twice
    assert stream_slots.open == before


def test_a_waiting_stream_holds_no_database_connection(client, auth_headers, builds, org_id, app):
    from app.extensions import db

    build_id = builds.create(org_id, status="building")
    resp = client.get(_stream_url(build_id), headers=auth_headers, buffered=False)
    try:
        body = iter(resp.response)
        received = ""
        while "event: status" not in received:
            chunk = next(body)
            received += chunk.decode() if isinstance(chunk, bytes) else chunk
        # The stream is open and suspended between its status event and its wait for lines.
        with app.app_context():
            assert db.engine.pool.checkedout() == 0
    finally:
        resp.close()


@pytest.mark.timeout(60)
def test_websocket_beyond_the_limit_is_refused_before_the_upgrade(app_config, factory, stream_slots):
    from werkzeug.serving import make_server

    from app import create_app
    from tests.builds.conftest import BuildFactory

    live = create_app({**app_config, "TESTING": False, "KILN_STREAMS_PER_PROCESS": 0})
    owner = factory.user(email="ws-full@example.com")
    build_id = BuildFactory(live).create(owner.default_org_id, status="building")
    server = make_server("127.0.0.1", 0, live, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    before = stream_slots.open
    try:
        url = f"ws://127.0.0.1:{server.server_port}/api/builds/{build_id}/logs/stream?token={factory.token(owner)}"
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(url, timeout=20)
        assert refused.value.status_code == 503
        assert int(dict(refused.value.resp_headers)["retry-after"]) >= 1
    finally:
        server.shutdown()
    assert stream_slots.open == before


def test_gunicorn_gives_each_stream_slot_a_thread_besides_the_ordinary_ones(monkeypatch, tmp_path):
    # The config file sets up Prometheus' multiprocess directory: keep it (and the variable) this test's own.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prometheus"))
    monkeypatch.setenv("KILN_STREAMS_PER_PROCESS", "50")
    monkeypatch.setenv("KILN_WEB_THREADS", "8")
    settings = runpy.run_path(str(Path(__file__).resolve().parents[2] / "gunicorn.conf.py"))
    assert settings["worker_class"] == "gthread" and settings["threads"] == 58
    assert settings["wsgi_app"] == "wsgi:app"


@pytest.mark.parametrize("name, value, message", [
    ("KILN_STREAMS_PER_PROCESS", "many", "KILN_STREAMS_PER_PROCESS must be a whole number, got 'many'"),
    ("KILN_WEB_THREADS", "0", "KILN_WEB_THREADS must be at least 1, got 0"),
])
def test_web_process_settings_are_checked(name, value, message):
    from app.config import web_process_settings

    with pytest.raises(ValueError) as bad:
        web_process_settings({**os.environ, name: value})
    assert str(bad.value) == message


def test_a_stream_by_api_key_still_records_the_keys_use(client, user, builds, org_id, app):
    """The stream lets go of its database connection before it waits, not of the caller's key."""
    from app.extensions import db
    from app.models import ApiKey, ApiKeyUsage
    from tests.builds.test_streams import _api_key

    build_id = builds.create(org_id, status="succeeded")
    raw = _api_key(app, user, ["builds:read"])
    resp = client.get(_stream_url(build_id), headers={"X-API-Key": raw})
    assert resp.status_code == 200 and "event: done" in resp.get_data(as_text=True)
    resp.close()
    with app.app_context():
        key = db.session.scalars(db.select(ApiKey).where(ApiKey.org_id == org_id)).one()
        assert key.last_used_at is not None
        usage = db.session.scalars(db.select(ApiKeyUsage).where(ApiKeyUsage.api_key_id == key.id)).all()
        assert [(u.path, u.status) for u in usage] == [(_stream_url(build_id), 200)]
