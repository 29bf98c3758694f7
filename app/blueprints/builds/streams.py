"""Live build logs and status: WebSocket /api/builds/{id}/logs/stream and SSE /api/streams/builds/{id}.

Both follow the same generator: log lines after a cursor (Redis stream, or build.log once Redis let them
go), a status event whenever the status body changes, and `done` when the build has finished and every
line has been sent. The cursor is the line's `seq`, so a client that reconnects with the last seq it saw
gets every later line exactly once. A build that has not been started (created with `start: false`) is
waited for KILN_STREAM_PENDING_WAIT seconds at most; then the stream says `end` (reason `not_started`)
and closes, so such streams never hold a server thread for good. Streams only read: the workers' reaper,
not a reader, notices a build whose worker died.

Each open stream holds one server thread and so one of the process's stream slots (app/http/streams.py,
shared with the chat reply stream); a stream beyond KILN_STREAMS_PER_PROCESS is answered 503 with
Retry-After, and the page falls back to polling. While it waits, a stream
holds no database connection: it reads the build, closes its session, then blocks on Redis.

Authentication and the tenant check run in this blueprint's before_request, i.e. before the WebSocket
upgrade: another org's build is a plain 404 and a foreign Origin a 403. Browsers cannot set headers on a
WebSocket or EventSource, so `?token=` (a JWT or API key) is accepted here besides cookie and headers.
"""
from __future__ import annotations

import json
import random
import time
from urllib.parse import urlsplit

from flask import Blueprint, current_app, g, request, stream_with_context
from sqlalchemy.orm import defer

from app.extensions import db, sock
from app.http import streams as stream_slots
from app.http.auth import accept_query_token, authorize, current_actor
from app.models import Build
from app.services.builds import logs, reads, signals
from app.services.errors import Forbidden
from app.services.ops import metrics as ops_metrics

from .schemas import BuildStatusSchema, LiveLogLineSchema, LogLineSchema, StreamEndSchema, whole_number

stream_blp = Blueprint("build_streams", __name__)
accept_query_token(stream_blp)

# Seconds one wait for new lines blocks. A line ends the wait at once; between lines each turn re-reads the
# build's status, so this is how late a status change without log lines (progress) can show, and it sets what
# an idle stream costs the process: 200 waiting streams wake 200 / IDLE_TICK times a second (bench/web.py).
IDLE_TICK = 3.0
# Each wait lasts IDLE_TICK give or take this share of it. Streams opened together (a page load, a reconnect
# after a restart, the bench) would otherwise wake together every tick: a burst of 200 status reads holding
# the GIL while other requests wait (bench/web.py: the list's p95 was 3.5 times higher with the streams open).
IDLE_JITTER = 0.25
KEEPALIVE_TICKS = 5  # a comment line every 15 s keeps proxies from closing an idle stream
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
    stream_slots.take_slot("live log streams", f"retry later or poll GET /api/builds/{build.id}/logs?after=")
    # The checks above used a database connection: give it back before the stream waits. A rollback ends the
    # transaction but keeps the caller's user and key in the session (recording an API key's use needs them).
    db.session.rollback()


# The WebSocket has ended when its view returns; an SSE view hands its slot to its body (event_stream).
stream_blp.teardown_request(stream_slots.release_slot)


def _cursor() -> int:
    """The last line the client has: the later of `?after=` and `Last-Event-ID`. A browser's EventSource
    reconnects to the same URL (so the original `?after=`) and sends the last id it saw in the header."""
    return max(whole_number("after", request.args.get("after"), minimum=0, default=0),
               whole_number("Last-Event-ID", request.headers.get("Last-Event-ID"), minimum=0, default=0))


def _idle_wait() -> float:
    return IDLE_TICK * random.uniform(1 - IDLE_JITTER, 1 + IDLE_JITTER)


def follow(build_id, after: int):
    """The stream of `_follow`, counted in kiln_active_log_streams while it is open."""
    with ops_metrics.log_stream():
        yield from _follow(build_id, after)


def _follow(build_id, after: int):
    """Yield ("status", body), ("log", line), ("idle", None) and finally ("done", status), or
    ("end", status) when the build was not started within KILN_STREAM_PENDING_WAIT seconds."""
    last_status = None
    nothing_new = False  # the last wait saw no line after the cursor
    drain_until = None
    pending_until = time.monotonic() + float(current_app.config["KILN_STREAM_PENDING_WAIT"])
    while True:
        # Each turn reads the build (without its recipe), then keeps it detached and ends the transaction
        # before anything is sent or waited for: the next turn sees what the worker committed since, and a
        # stream holds no DB connection while it waits, so many streams never starve the pool.
        build = db.session.get(Build, build_id, options=[defer(Build.recipe)])
        if build is None:
            db.session.rollback()
            yield "done", "deleted"
            return
        # Compared as the dataclass: dumping it on every idle turn of every stream cost CPU for nothing.
        comparable = reads.build_status(build, estimate=False)
        changed = comparable != last_status
        if changed:
            last_status = comparable
            # The estimate costs a query over recent builds: made only when the status is sent.
            body = BuildStatusSchema().dump(reads.build_status(build))
        db.session.expunge(build)
        db.session.rollback()
        if changed:
            yield "status", body
        # The wait reads from the cursor, so a line written after it timed out is seen by the next wait: an idle
        # turn need not read again, unless the build changed (it may have ended after its last lines).
        quiet = nothing_new and not changed and not build.is_terminal
        nothing_new = False
        lines = [] if quiet else logs.read(build, after, 500)
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
                    logs.wait_for_lines(build_id, after, _idle_wait())
                    continue
            yield "done", build.status
            return
        if build.status == "pending" and time.monotonic() >= pending_until:
            yield "end", build.status
            return
        if not logs.wait_for_lines(build_id, after, _idle_wait()):
            nothing_new = True
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
                ending = StreamEndSchema().dump(_ending(build_key, kind, data))
                yield f"event: {kind}\ndata: {json.dumps(ending)}\n\n"
                return
            else:
                idle += 1
                if idle % KEEPALIVE_TICKS == 0:
                    yield ": keepalive\n\n"

    return stream_slots.event_stream(stream_with_context(generate()))
