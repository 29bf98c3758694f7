"""Stream slots: how many long-lived responses (live build logs, the chat reply) one web process holds.

Each open stream holds one server thread until it ends, so one web process holds at most
KILN_STREAMS_PER_PROCESS of them (gunicorn.conf.py gives it that many threads plus KILN_WEB_THREADS for every
other request). A request takes its slot before any work it streams is done; one beyond the limit is refused
with 503 + Retry-After (StreamsFull) and has done nothing. The slot is kept in `g.stream_slot` as the counter
it came from, and goes back to that same counter: when the request fails before its stream begins
(`release_slot`, a teardown), or when the body of an `event_stream` ends or the server closes it.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable

from flask import Response, current_app, g

from app.services.errors import DomainError

RETRY_AFTER = 10  # seconds a client refused for lack of a stream slot is told to wait


class StreamsFull(DomainError):
    """The process holds its maximum of live streams: retry later (the error envelope, 503 + Retry-After)."""
    code, status = "SERVICE_UNAVAILABLE", 503

    def __init__(self, message: str, details: dict | None = None, retry_after: int = RETRY_AFTER):
        super().__init__(message, details)
        self.retry_after = retry_after


class StreamSlots:
    """The live streams this process holds now; each holds a server thread until it ends."""

    def __init__(self):
        self._lock = threading.Lock()
        self.open = 0

    def take(self, limit: int) -> bool:
        with self._lock:
            if self.open >= limit:
                return False
            self.open += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.open -= 1


slots = StreamSlots()


def take_slot(what: str, instead: str) -> None:
    """Hold one of this process's stream slots for the current request, or raise StreamsFull.

    `what` names the streams in the refusal ("live log streams"), `instead` says what the client can do
    meanwhile besides retrying."""
    limit = int(current_app.config["KILN_STREAMS_PER_PROCESS"])
    counter = slots  # the slot goes back to the counter it came from
    if not counter.take(limit):
        raise StreamsFull(f"This server holds its maximum of {limit} {what}; {instead}", {"streams": ["at capacity"]})
    g.stream_slot = counter


def release_slot(_error=None) -> None:
    """Teardown: a request that still holds its slot gives it back (a WebSocket has ended when its view
    returns; a request that failed before its stream began held its slot for nothing)."""
    counter = g.pop("stream_slot", None)
    if counter is not None:
        counter.give_back()


def _hand_over_slot():
    """This request's stream slot (if any), as a callable that gives it back once: a streamed body keeps it
    until the body ends or the server closes it (Flask tears the request down when the view returns, long
    before that)."""
    held = g.pop("stream_slot", None)

    def give_back():
        nonlocal held
        if held is not None:
            counter, held = held, None
            counter.give_back()

    return give_back


def event_stream(events: Iterable[str], status: int = 200, headers: dict | None = None) -> Response:
    """A text/event-stream response whose body keeps this request's stream slot until it ends or is closed."""
    give_back = _hand_over_slot()

    def body():
        try:
            yield from events
        finally:
            give_back()

    response = Response(body(), status=status, mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})})
    response.call_on_close(give_back)  # a body closed before it started never runs body()
    return response
