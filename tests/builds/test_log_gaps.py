"""A writer SIGKILLed between taking a line's seq (Redis INCR) and writing the line leaves a seq that no line
has. That is a line never written, not a lost one: every reader (the live streams, the paged API, the
archive) gives every written line exactly once and in order, skips the unused seq, and never waits for it."""
from __future__ import annotations

import json
import urllib.request

import pytest

from tests.builds.conftest import append_log, beat
from tests.builds.test_streams import _finish_later


def _killed_writer(app, build_id) -> None:
    """What a worker killed between its INCR and its file write leaves: the counter moved, no line."""
    from app.extensions import redis
    from app.services.builds import logs

    with app.app_context():
        redis.client.incr(logs.seq_key(build_id))


def _write(app, build_id, messages) -> list[tuple[int, str]]:
    seqs = append_log(app, build_id, [("package", "info", m) for m in messages])
    return list(zip(seqs, messages))


def _paged(client, headers, build_id, limit: int) -> list[tuple[int, str]]:
    """The whole log through GET /api/builds/{id}/logs, page by page along nextAfter."""
    seen, after = [], 0
    for _ in range(50):
        page = client.get(f"/api/builds/{build_id}/logs?after={after}&limit={limit}", headers=headers)
        assert page.status_code == 200, page.json
        seen += [(line["seq"], line["message"]) for line in page.json["lines"]]
        if not page.json["lines"]:
            return seen
        after = page.json["nextAfter"]
    raise AssertionError(f"the log's pages did not end: {seen}")


def _sse_events(resp):
    """Events of an open SSE response as they arrive (a comment line is a keepalive)."""
    event = {}
    for raw in resp:
        line = raw.decode().rstrip("\n")
        if not line:
            if "event" in event:
                yield event
            event = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            event[key] = value


@pytest.mark.timeout(90)
def test_unused_seqs_of_a_killed_writer_are_skipped_by_every_reader(live_server_url, factory, builds, app):
    owner = factory.user(email="gaps@example.com")
    headers = factory.headers(owner)
    build_id = builds.create(owner.default_org_id, status="building")
    beat(app, build_id)
    _killed_writer(app, build_id)  # before the first line
    written = _write(app, build_id, ["one", "two", "three"])
    _killed_writer(app, build_id)
    written += _write(app, build_id, ["four", "five"])
    _killed_writer(app, build_id)  # the last seq taken has no line while the build runs on
    assert [seq for seq, _ in written] == [2, 3, 4, 6, 7]

    req = urllib.request.Request(f"{live_server_url}/api/streams/builds/{build_id}", headers=headers)
    with urllib.request.urlopen(req, timeout=20) as resp:
        events = _sse_events(resp)
        streamed = []
        while len(streamed) < len(written):
            event = next(events)
            if event["event"] == "log":
                line = json.loads(event["data"])
                assert int(event["id"]) == line["seq"]
                streamed.append((line["seq"], line["message"]))
        assert streamed == written
        # The reader now waits after seq 7, with seq 8 taken and never written: the next line and the end
        # still reach it (a reader waiting for seq 8 would sit here until the socket timed out).
        _killed_writer(app, build_id)
        writer = _finish_later(app, build_id, ["six", "seven"], delay=0)
        rest = []
        for event in events:
            if event["event"] == "log":
                line = json.loads(event["data"])
                rest.append((line["seq"], line["message"]))
            elif event["event"] == "done":
                break
        writer.join(10)
    assert rest == [(10, "six"), (11, "seven")]
    written += rest

    client = app.test_client()
    for limit in (1, 2, 1000):
        assert _paged(client, headers, build_id, limit) == written
    # The archived log (the `log` artifact, made when the build ended) holds exactly the written lines.
    from app.extensions import db, redis
    from app.models import Build
    from app.services.builds import logs

    with app.app_context():
        build = db.session.get(Build, build_id)
        archived = [json.loads(raw) for raw in logs.log_path(build).read_text().splitlines()]
        assert [(line["seq"], line["message"]) for line in archived] == written
        redis.client.delete(logs.stream_key(build_id))  # the stream expired: readers go to the archive
    for limit in (1, 1000):
        assert _paged(client, headers, build_id, limit) == written
    replay = client.get(f"/api/streams/builds/{build_id}?after=3", headers=headers).get_data(as_text=True)
    assert [int(line.split(": ")[1]) for line in replay.splitlines() if line.startswith("id: ")] == [4, 6, 7, 10, 11]


def test_a_trimmed_stream_that_starts_right_after_an_unused_seq(client, builds, factory, app):
    """The stream was trimmed up to the line after a gap: a reader whose cursor is before the gap is served from
    the file, then from the stream, without a line twice or a wait."""
    from app.extensions import redis
    from app.services.builds import logs

    owner = factory.user(email="trimmed-gap@example.com")
    headers = factory.headers(owner)
    build_id = builds.create(owner.default_org_id, status="building")
    written = _write(app, build_id, ["a", "b", "c"])
    _killed_writer(app, build_id)
    written += _write(app, build_id, ["d", "e"])
    with app.app_context():
        redis.client.xtrim(logs.stream_key(build_id), minid="5-0", approximate=False)
        assert int(redis.client.xrange(logs.stream_key(build_id), count=1)[0][0].split(b"-")[0]) == 5
    for limit in (1, 2, 1000):
        assert _paged(client, headers, build_id, limit) == written
    assert _paged(client, headers, build_id, 2) == [(1, "a"), (2, "b"), (3, "c"), (5, "d"), (6, "e")]
