"""Logs (JSON, text, ?after, archive fallback), artifacts and downloads (Range, 416, checksum headers)."""
from __future__ import annotations

import base64
import uuid
import hashlib

from tests.builds.conftest import append_log

IMAGE = bytes(range(256)) * 40  # 10240 bytes, every offset distinguishable


def _append(app, build_id, n, stage="resolve"):
    return append_log(app, build_id, [(stage, "info", f"line {i}") for i in range(1, n + 1)])


def test_logs_json_after_cursor_and_text(client, auth_headers, builds, org_id, app):
    build_id = builds.create(org_id, status="building")
    assert _append(app, build_id, 5) == [1, 2, 3, 4, 5]
    body = client.get(f"/api/builds/{build_id}/logs", headers=auth_headers).json
    assert [line["seq"] for line in body["lines"]] == [1, 2, 3, 4, 5] and body["nextAfter"] == 5
    first = body["lines"][0]
    assert set(first) == {"seq", "timestamp", "level", "stage", "message"}
    assert first["stage"] == "resolve" and first["level"] == "info" and first["timestamp"].endswith("Z")
    after = client.get(f"/api/builds/{build_id}/logs?after=3", headers=auth_headers).json
    assert [line["message"] for line in after["lines"]] == ["line 4", "line 5"]
    limited = client.get(f"/api/builds/{build_id}/logs?after=1&limit=2", headers=auth_headers).json
    assert [line["seq"] for line in limited["lines"]] == [2, 3] and limited["nextAfter"] == 3
    text = client.get(f"/api/builds/{build_id}/logs?after=4", headers={**auth_headers, "Accept": "text/plain"})
    assert text.mimetype == "text/plain" and text.get_data(as_text=True).strip().endswith("line 5")
    assert "line 4" not in text.get_data(as_text=True)
    assert client.get(f"/api/builds/{build_id}/logs?format=text", headers=auth_headers).mimetype == "text/plain"
    bad = client.get(f"/api/builds/{build_id}/logs?after=-1", headers=auth_headers)
    assert bad.status_code == 400 and "after" in bad.json["error"]["details"]


def test_archived_log_serves_after_redis_lets_go(client, auth_headers, builds, org_id, app):
    build_id = builds.create(org_id, status="building")
    _append(app, build_id, 4)
    from app.extensions import db, redis
    from app.models import Build
    from app.services.builds import logs, run

    with app.app_context():
        build = db.session.get(Build, build_id)
        run.fail_attempt(build, 1, "bad package", failure_class="user_error", code="user_error")
        build = db.session.get(Build, build_id)
        assert build.status == "failed" and build.failure_class == "user_error"
        log_artifact = next(a for a in build.artifacts if a.kind == "log")
        path = logs.log_path(build)
        assert log_artifact.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        redis.client.delete(logs.stream_key(build_id))
    body = client.get(f"/api/builds/{build_id}/logs?after=2", headers=auth_headers).json
    assert [line["message"] for line in body["lines"]] == ["line 3", "line 4"]
    arts = client.get(f"/api/builds/{build_id}/artifacts", headers=auth_headers).json["artifacts"]
    assert [a["kind"] for a in arts] == ["log"] and arts[0]["filename"] == "build.log"


def test_artifacts_and_download_headers(client, auth_headers, builds, org_id):
    build_id = builds.create(org_id, status="succeeded", image=IMAGE)
    arts = client.get(f"/api/builds/{build_id}/artifacts", headers=auth_headers).json["artifacts"]
    assert len(arts) == 1
    art = arts[0]
    sha = hashlib.sha256(IMAGE).hexdigest()
    assert art["kind"] == "iso" and art["size"] == len(IMAGE) and art["sha256"] == sha
    assert art["downloadUrl"] == f"/api/builds/{build_id}/artifacts/{art['id']}/download"
    resp = client.get(f"/api/builds/{build_id}/download", headers=auth_headers)
    assert resp.status_code == 200 and resp.data == IMAGE
    assert resp.headers["Content-Length"] == str(len(IMAGE))
    assert resp.headers["Content-Disposition"].startswith("attachment") and "web.iso" in resp.headers["Content-Disposition"]
    assert resp.headers["X-Checksum-SHA256"] == sha
    assert resp.headers["Digest"] == "sha-256=" + base64.b64encode(hashlib.sha256(IMAGE).digest()).decode()
    assert resp.headers["Accept-Ranges"] == "bytes"
    same = client.get(art["downloadUrl"], headers=auth_headers)
    assert same.status_code == 200 and same.data == IMAGE


def test_download_ranges(client, auth_headers, builds, org_id):
    build_id = builds.create(org_id, status="succeeded", image=IMAGE)
    url = f"/api/builds/{build_id}/download"
    part = client.get(url, headers={**auth_headers, "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.data == IMAGE[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(IMAGE)}" and part.headers["Content-Length"] == "100"
    suffix = client.get(url, headers={**auth_headers, "Range": "bytes=-16"})
    assert suffix.status_code == 206 and suffix.data == IMAGE[-16:]
    open_ended = client.get(url, headers={**auth_headers, "Range": f"bytes={len(IMAGE) - 10}-"})
    assert open_ended.status_code == 206 and open_ended.data == IMAGE[-10:]
    bad = client.get(url, headers={**auth_headers, "Range": f"bytes={len(IMAGE) + 5}-{len(IMAGE) + 10}"})
    assert bad.status_code == 416 and bad.headers["Content-Range"] == f"bytes */{len(IMAGE)}"
    assert bad.json["error"]["code"] == "RANGE_NOT_SATISFIABLE"


def test_download_without_image_is_not_found(client, auth_headers, builds, org_id):
    build_id = builds.create(org_id, status="queued")
    resp = client.get(f"/api/builds/{build_id}/download", headers=auth_headers)
    assert resp.status_code == 404 and "yet" in resp.json["error"]["message"]


def _archived_lines(app, build_id):
    import json

    from app.extensions import db
    from app.models import Build
    from app.services.builds import files

    with app.app_context():
        build = db.session.get(Build, build_id)
        artifact = next(a for a in build.artifacts if a.kind == "log")
        raw = files.artifact_file(artifact).read_bytes()
        assert artifact.sha256 == hashlib.sha256(raw).hexdigest() and artifact.size == len(raw)
        return [json.loads(line) for line in raw.decode().splitlines()]


def test_lines_past_the_stream_trim_are_read_and_archived(client, auth_headers, builds, org_id, app, monkeypatch):
    from app.extensions import db, redis
    from app.models import Build
    from app.services.builds import logs, run

    monkeypatch.setitem(app.config, "KILN_BUILD_LOG_MAXLEN", 10)
    build_id = builds.create(org_id, status="building")
    _append(app, build_id, 500)
    with app.app_context():
        assert redis.client.xlen(logs.stream_key(build_id)) < 500  # Redis let the first lines go
    first = client.get(f"/api/builds/{build_id}/logs?limit=3", headers=auth_headers).json
    assert [line["message"] for line in first["lines"]] == ["line 1", "line 2", "line 3"]
    with app.app_context():
        assert run.succeed(db.session.get(Build, build_id), 1) == "succeeded"
    archived = _archived_lines(app, build_id)
    assert [line["seq"] for line in archived] == list(range(1, 501))
    assert archived[0]["message"] == "line 1" and archived[-1]["message"] == "line 500"


def test_custom_test_run_lines_join_the_archived_log(client, auth_headers, builds, org_id, app):
    from app.extensions import db, redis
    from app.models import Build, TestRun
    from app.services.builds import logs, run
    from app.tasks.builds import run_tests

    build_id = builds.create(org_id, status="building", image=b"not really an iso")
    _append(app, build_id, 3, stage="package")
    with app.app_context():
        assert run.succeed(db.session.get(Build, build_id), 1) == "succeeded"
        # The build ended an hour ago: Redis forgot its stream and its line counter.
        logs.forget(build_id)
    assert len(_archived_lines(app, build_id)) == 3
    queued = client.post(f"/api/builds/{build_id}/tests", headers=auth_headers,
                         json={"assertions": [{"type": "file_exists", "params": {"path": "/etc/hostname"}}]})
    assert queued.status_code == 202
    with app.app_context():
        assert run_tests(queued.json["testRunId"]) in ("failed", "error")
        test_run = db.session.get(TestRun, uuid.UUID(queued.json["testRunId"]))
        assert test_run.status in ("failed", "error")
        assert not redis.client.exists(f"kiln:testrun:{test_run.id}:heartbeat")  # beaten while it ran, then gone
    archived = _archived_lines(app, build_id)
    assert [line["seq"] for line in archived] == list(range(1, len(archived) + 1)), "no seq used twice"
    custom = [line["message"] for line in archived if line["seq"] > 3]
    assert custom[0].startswith(f"custom test run {test_run.id}") and custom[-1].endswith(test_run.status)
    api_lines = client.get(f"/api/builds/{build_id}/logs?after=3", headers=auth_headers).json["lines"]
    assert [line["message"] for line in api_lines] == custom


def test_lines_written_while_redis_is_away_join_the_stream_in_order(client, auth_headers, builds, org_id, app):
    """Redis unreachable mid-build: lines keep their seqs (from the file), and when it answers again they join
    the stream before the next line, so a reader following ?after= sees every line once, in order."""
    import redis as redis_lib

    from app.extensions import db
    from app.models import Build
    from app.services.builds import logs
    from tests.fixtures.services import free_port

    build_id = builds.create(org_id, status="building")
    _append(app, build_id, 3)
    seen = client.get(f"/api/builds/{build_id}/logs", headers=auth_headers).json["lines"]
    away = redis_lib.Redis(port=free_port())  # nothing listens there: every command is refused
    with app.app_context():
        build = db.session.get(Build, build_id)
        assert [logs.append(build, "configure", "info", f"away {i}", client=away) for i in (1, 2)] == [4, 5]
        assert logs.append(build, "configure", "info", "back") == 6
    after = seen[-1]["seq"]
    rest = client.get(f"/api/builds/{build_id}/logs?after={after}", headers=auth_headers).json["lines"]
    assert [(line["seq"], line["message"]) for line in rest] == [(4, "away 1"), (5, "away 2"), (6, "back")]
    _append(app, build_id, 1)
    assert [line["seq"] for line in _all_lines(app, build_id)] == list(range(1, 8))


def _all_lines(app, build_id):
    from app.extensions import db
    from app.models import Build
    from app.services.builds import logs

    with app.app_context():
        return list(logs.iter_all(db.session.get(Build, build_id)))
