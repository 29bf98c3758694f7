"""Live build logs and status: WebSocket /api/builds/{id}/logs/stream and SSE /api/streams/builds/{id}.

Both follow the same generator: log lines after a cursor (Redis stream, or the archived build.log once
Redis let them go), a status event whenever the status body changes, and `done` when the build has
finished and every line has been sent. The cursor is the line's `seq`, so a client that reconnects with
the last seq it saw gets every later line exactly once.

Authentication and the tenant check run in this blueprint's before_request, i.e. before the WebSocket
upgrade: another org's build is a plain 404 and a foreign Origin a 403. Browsers cannot set headers on a
WebSocket or EventSource, so `?token=` (a JWT or API key) is accepted here besides cookie and headers.
"""
from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, g, request, stream_with_context

from app.extensions import db, sock
from app.http.auth import accept_query_token, authorize, current_actor
from app.models import Build
from app.services import buildlogs, buildrun
from app.services import builds as service
from app.services.errors import Forbidden, ValidationFailed

stream_blp = Blueprint("build_streams", __name__)
accept_query_token(stream_blp)

IDLE_TICK = 1.0  # seconds one wait for new lines blocks
KEEPALIVE_TICKS = 15
CANCEL_DRAIN_SECONDS = 30  # after a cancel, how long to wait for the worker's last lines


def _origin_allowed() -> bool:
    origin = request.headers.get("Origin")
    if not origin:
        return True  # not a browser (curl, websocket-client): nothing to forge
    allowed = current_app.config.get("KILN_WS_ALLOWED_ORIGINS") or []
    if origin.rstrip("/") in [o.rstrip("/") for o in allowed]:
        return True
    return urlsplit(origin).netloc.lower() == request.host.lower()


@stream_blp.before_request
def _authorize_stream():
    if request.endpoint == "build_streams.logs_ws" and not _origin_allowed():
        raise Forbidden("This WebSocket origin is not allowed", {"origin": [request.headers.get("Origin", "")]})
    org, role = authorize("builds:read")
    build = service.get_build(org, (request.view_args or {}).get("build_id"), actor=current_actor(), role=role)
    g.stream_build_id = build.id
    g.stream_after = _cursor()


def _cursor() -> int:
    """The last line the client has: the later of `?after=` and `Last-Event-ID`. A browser's EventSource
    reconnects to the same URL (so the original `?after=`) and sends the last id it saw in the header."""
    cursor = 0
    for name, raw in (("after", request.args.get("after")), ("Last-Event-ID", request.headers.get("Last-Event-ID"))):
        if raw in (None, ""):
            continue
        try:
            value = int(raw)
        except ValueError:
            raise ValidationFailed(f"{name}: must be a log line number", {name: ["Not a valid integer."]}) from None
        if value < 0:
            raise ValidationFailed(f"{name}: must be 0 or more", {name: ["Must be greater than or equal to 0."]})
        cursor = max(cursor, value)
    return cursor


def follow(build_id, after: int):
    """Yield ("status", body), ("log", line), ("idle", None) and finally ("done", status)."""
    last_status = None
    drain_until = None
    while True:
        db.session.rollback()  # a fresh snapshot: the worker commits in another process
        build = db.session.get(Build, build_id)
        if build is None:
            yield "done", "deleted"
            return
        if build.status in ("building", "testing"):
            buildrun.reap_build(build)
        body = service.status_body(build)
        comparable = {k: v for k, v in body.items() if k != "estimatedCompletion"}
        if comparable != last_status:
            last_status = comparable
            yield "status", body
        lines = buildlogs.read(build, after, 500)
        for line in lines:
            yield "log", line
            after = line["seq"]
        if lines:
            continue
        if build.is_terminal:
            # A cancelled build's worker is still stopping and writing its last lines: wait for it.
            if build.status == "cancelled" and buildrun.heartbeat_alive(build.id):
                drain_until = drain_until or time.monotonic() + CANCEL_DRAIN_SECONDS
                if time.monotonic() < drain_until:
                    buildlogs.wait_for_lines(build_id, after, IDLE_TICK)
                    continue
            yield "done", build.status
            return
        if not buildlogs.wait_for_lines(build_id, after, IDLE_TICK):
            yield "idle", None


@sock.route("/api/builds/<build_id>/logs/stream", bp=stream_blp)
def logs_ws(ws, build_id):
    """JSON messages {"buildId","seq","timestamp","level","message","metadata":{"stage"}}, then {"type":"done"}."""
    build_key = g.stream_build_id
    for kind, data in follow(build_key, g.stream_after):
        if kind == "log":
            ws.send(json.dumps({"buildId": str(build_key), "seq": data["seq"], "timestamp": data["timestamp"],
                                "level": data["level"], "message": data["message"],
                                "metadata": {"stage": data["stage"]}}))
        elif kind == "done":
            ws.send(json.dumps({"type": "done", "buildId": str(build_key), "status": data}))
            ws.close(reason=1000, message="build finished")
            return
        elif kind == "idle" and not ws.connected:
            return
    db.session.remove()


@stream_blp.route("/api/streams/builds/<build_id>")
def build_events(build_id):
    """Server-sent events: `status` (the /status body), `log` (id = seq), `done`."""
    build_key, after = g.stream_build_id, g.stream_after

    def generate():
        yield "retry: 3000\n\n"
        idle = 0
        for kind, data in follow(build_key, after):
            if kind == "log":
                idle = 0
                yield f"id: {data['seq']}\nevent: log\ndata: {json.dumps(data)}\n\n"
            elif kind == "status":
                yield f"event: status\ndata: {json.dumps(data)}\n\n"
            elif kind == "done":
                yield f"event: done\ndata: {json.dumps({'buildId': str(build_key), 'status': data})}\n\n"
                return
            else:
                idle += 1
                if idle % KEEPALIVE_TICKS == 0:
                    yield ": keepalive\n\n"

    return Response(stream_with_context(generate()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
