"""Live build logs and status: WebSocket /api/builds/{id}/logs/stream and SSE /api/streams/builds/{id}.

Both follow the same generator: log lines after a cursor (Redis stream, or build.log once Redis let them
go), a status event whenever the status body changes, and `done` when the build has finished and every
line has been sent. The cursor is the line's `seq`, so a client that reconnects with the last seq it saw
gets every later line exactly once. A build that has not been started (created with `start: false`) is
waited for KILN_STREAM_PENDING_WAIT seconds at most; then the stream says `end` (reason `not_started`)
and closes, so such streams never hold a server thread for good. Streams only read: the workers' reaper,
not a reader, notices a build whose worker died.

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
from app.services.builds import logs, reads, signals
from app.services.errors import Forbidden
from app.services.ops import metrics as ops_metrics

from .schemas import BuildStatusSchema, LiveLogLineSchema, LogLineSchema, StreamEndSchema, whole_number

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
    build = reads.get_build(org, (request.view_args or {}).get("build_id"), actor=current_actor(), role=role)
    g.stream_build_id = build.id
    g.stream_after = _cursor()


def _cursor() -> int:
    """The last line the client has: the later of `?after=` and `Last-Event-ID`. A browser's EventSource
    reconnects to the same URL (so the original `?after=`) and sends the last id it saw in the header."""
    return max(whole_number("after", request.args.get("after"), minimum=0, default=0),
               whole_number("Last-Event-ID", request.headers.get("Last-Event-ID"), minimum=0, default=0))


def follow(build_id, after: int):
    """The stream of `_follow`, counted in kiln_active_log_streams while it is open."""
    with ops_metrics.log_stream():
        yield from _follow(build_id, after)


def _follow(build_id, after: int):
    """Yield ("status", body), ("log", line), ("idle", None) and finally ("done", status), or
    ("end", status) when the build was not started within KILN_STREAM_PENDING_WAIT seconds."""
    last_status = None
    drain_until = None
    pending_until = time.monotonic() + float(current_app.config["KILN_STREAM_PENDING_WAIT"])
    while True:
        db.session.rollback()  # a fresh snapshot: the worker commits in another process
        build = db.session.get(Build, build_id)
        if build is None:
            yield "done", "deleted"
            return
        body = BuildStatusSchema().dump(reads.build_status(build))
        comparable = {k: v for k, v in body.items() if k != "estimatedCompletion"}
        if comparable != last_status:
            last_status = comparable
            yield "status", body
        lines = logs.read(build, after, 500)
        for line in lines:
            yield "log", line
            after = line["seq"]
        if lines:
            continue
        if build.is_terminal:
            # A cancelled build's worker is still stopping and writing its last lines: wait for it.
            if build.status == "cancelled" and signals.alive(signals.heartbeat_key(build.id, build.attempt)):
                drain_until = drain_until or time.monotonic() + CANCEL_DRAIN_SECONDS
                if time.monotonic() < drain_until:
                    logs.wait_for_lines(build_id, after, IDLE_TICK)
                    continue
            yield "done", build.status
            return
        if build.status == "pending" and time.monotonic() >= pending_until:
            yield "end", build.status
            return
        if not logs.wait_for_lines(build_id, after, IDLE_TICK):
            yield "idle", None


@sock.route("/api/builds/<build_id>/logs/stream", bp=stream_blp)
def logs_ws(ws, build_id):
    """JSON messages {"buildId","seq","timestamp","level","message","metadata":{"stage"}}, then
    {"type":"done"} (or {"type":"end","reason":"not_started"}) and a close."""
    build_key = g.stream_build_id
    try:
        for kind, data in follow(build_key, g.stream_after):
            if kind == "log":
                ws.send(json.dumps(LiveLogLineSchema().dump({**data, "build_id": build_key})))
            elif kind in ("done", "end"):
                ws.send(json.dumps({"type": kind, **StreamEndSchema().dump(_ending(build_key, kind, data))}))
                ws.close(reason=1000, message="build finished" if kind == "done" else "build not started")
                return
            elif kind == "idle" and not ws.connected:
                return
    finally:
        db.session.remove()


def _ending(build_id, kind: str, status: str) -> dict:
    return {"build_id": build_id, "status": status, **({"reason": "not_started"} if kind == "end" else {})}


@stream_blp.route("/api/streams/builds/<build_id>")
def build_events(build_id):
    """Server-sent events: `status` (the /status body), `log` (id = seq), then `done`, or `end` for a build
    that was not started in time."""
    build_key, after = g.stream_build_id, g.stream_after

    def generate():
        yield "retry: 3000\n\n"
        idle = 0
        for kind, data in follow(build_key, after):
            if kind == "log":
                idle = 0
                yield f"id: {data['seq']}\nevent: log\ndata: {json.dumps(LogLineSchema().dump(data))}\n\n"
            elif kind == "status":
                yield f"event: status\ndata: {json.dumps(data)}\n\n"
            elif kind in ("done", "end"):
                yield f"event: {kind}\ndata: {json.dumps(StreamEndSchema().dump(_ending(build_key, kind, data)))}\n\n"
                return
            else:
                idle += 1
                if idle % KEEPALIVE_TICKS == 0:
                    yield ": keepalive\n\n"

    return Response(stream_with_context(generate()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
