"""End to end: a real `python worker.py` picks real builds from Redis, builds and boot-tests the ISO.

Slow (real mmdebstrap + QEMU). The engine's caches live in the session's engine data dir, shared with
the engine suite, so an image the engine tests already built is reused here.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import websocket

from tests.builds.test_streams import parse_sse
from tests.builds.workers import _procs_under, wait_for
from tests.fixtures.images import SSH_RECIPE

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow



class Api:
    def __init__(self, client, headers):
        self.client, self.headers = client, headers

    def get(self, url, **kw):
        resp = self.client.get(url, headers={**self.headers, **kw.pop("headers", {})}, **kw)
        assert resp.status_code < 400, (url, resp.status_code, resp.get_data(as_text=True)[:300])
        return resp

    def post(self, url, **kw):
        resp = self.client.post(url, headers=self.headers, **kw)
        assert resp.status_code < 400, (url, resp.status_code, resp.get_data(as_text=True)[:300])
        return resp.json

    def status(self, build_id) -> dict:
        return self.get(f"/api/builds/{build_id}/status").json


class StatusRecorder(threading.Thread):
    """Watches the build row (the source of truth) and keeps the sequence of distinct statuses it saw.
    It reads the database, not /status, so its polling does not eat the caller's API rate limit."""

    def __init__(self, app, build_id):
        super().__init__(daemon=True)
        self.app, self.build_id = app, build_id
        self.seen: list[str] = []

    def run(self):
        from sqlalchemy import create_engine, text

        engine = create_engine(self.app.config["SQLALCHEMY_DATABASE_URI"])
        try:
            while True:
                with engine.connect() as conn:
                    status = conn.execute(text("SELECT status FROM builds WHERE id = :id"),
                                          {"id": self._key(engine)}).scalar()
                if status and (not self.seen or self.seen[-1] != status):
                    self.seen.append(status)
                if status in ("succeeded", "failed", "cancelled"):
                    return
                time.sleep(0.05)
        finally:
            engine.dispose()

    def _key(self, engine):
        # SQLAlchemy's Uuid type stores 32 hex chars on SQLite and a native uuid on PostgreSQL.
        import uuid

        value = uuid.UUID(str(self.build_id))
        return value.hex if engine.dialect.name == "sqlite" else value


def _ws_read(url, want: int | None = None) -> tuple[list[dict], dict | None]:
    ws = websocket.create_connection(url, timeout=900)
    lines, done = [], None
    try:
        while want is None or len(lines) < want:
            msg = json.loads(ws.recv())
            if msg.get("type") == "done":
                done = msg
                break
            lines.append(msg)
    finally:
        ws.close()
    return lines, done


@pytest.mark.timeout(1500)
def test_worker_builds_boot_tests_and_streams_an_iso(client, factory, live_server_url, start_worker, app):
    owner = factory.user(email="e2e@example.com")
    api = Api(client, factory.headers(owner))
    created = api.post("/api/builds", json={"recipe": SSH_RECIPE, "start": False})
    build_id = created["id"]
    observed = [created["status"]]
    observed.append(api.post(f"/api/builds/{build_id}/start")["status"])
    recorder = StatusRecorder(app, build_id)
    recorder.start()

    token = factory.token(owner)
    ws_url = live_server_url.replace("http://", "ws://") + f"/api/builds/{build_id}/logs/stream?token={token}"
    sse_events: list[dict] = []

    def read_sse():
        req = urllib.request.Request(f"{live_server_url}/api/streams/builds/{build_id}?token={token}")
        with urllib.request.urlopen(req, timeout=1200) as resp:
            sse_events.extend(parse_sse(resp.read().decode()))

    sse = threading.Thread(target=read_sse, daemon=True)
    sse.start()
    start_worker("e2e-worker-1")

    first, _ = _ws_read(ws_url, want=5)  # connect, read some, go away
    cursor = first[-1]["seq"]
    rest, done = _ws_read(ws_url + f"&after={cursor}")  # reconnect with the cursor until the end
    recorder.join(60)
    sse.join(120)

    build = api.get(f"/api/builds/{build_id}").json
    assert build["status"] == "succeeded", {k: build[k] for k in ("failureReason", "failureCode", "attempts")}
    assert done == {"type": "done", "buildId": build_id, "status": "succeeded"}
    observed += [s for s in recorder.seen if s != observed[-1]]
    assert observed == ["pending", "queued", "building", "testing", "succeeded"], observed
    assert build["workerName"] == "e2e-worker-1" and build["attempt"] == 1
    assert [s["status"] for s in build["stages"]][-1] == "succeeded"

    # Every line exactly once across the reconnect, and the same lines as the archived log.
    log_artifact = next(a for a in build["artifacts"] if a["kind"] == "log")
    archived_raw = api.get(log_artifact["downloadUrl"]).data
    assert hashlib.sha256(archived_raw).hexdigest() == log_artifact["sha256"]
    archived = [json.loads(line) for line in archived_raw.decode().splitlines()]
    ws_lines = first + rest
    assert [m["seq"] for m in ws_lines] == [a["seq"] for a in archived]
    assert [m["message"] for m in ws_lines] == [a["message"] for a in archived]
    assert len(archived) > 10 and archived[0]["seq"] == 1
    sse_logs = [json.loads(e["data"]) for e in sse_events if e["event"] == "log"]
    assert [line["seq"] for line in sse_logs] == [a["seq"] for a in archived]
    assert sse_events[-1]["event"] == "done"
    sse_statuses = [json.loads(e["data"])["status"] for e in sse_events if e["event"] == "status"]
    assert sse_statuses[-1] == "succeeded"

    # The image: the download's sha256 is the artifact record's, and the tests ran and passed.
    iso = next(a for a in build["artifacts"] if a["kind"] == "iso")
    download = api.get(f"/api/builds/{build_id}/download")
    assert hashlib.sha256(download.data).hexdigest() == iso["sha256"] == download.headers["X-Checksum-SHA256"]
    assert int(download.headers["Content-Length"]) == iso["size"]
    tests = api.get(f"/api/builds/{build_id}/tests").json
    assert tests["status"] == "passed" and tests["tests"], tests
    assert all(t["status"] in ("passed", "skipped") for t in tests["tests"])

    # Custom assertions on the finished image run on the worker: one holds, one does not.
    queued = api.post(f"/api/builds/{build_id}/tests", json={"assertions": [
        {"type": "file_contains", "params": {"path": "/etc/motd", "text": "built by kiln"}},
        {"type": "package_installed", "params": {"package": "nginx"}}]})
    assert queued["status"] == "queued"
    custom = wait_for(lambda: (lambda t: t if t["status"] in ("passed", "failed") else None)(
        api.get(f"/api/builds/{build_id}/tests").json), 600, "the custom test run", interval=2)
    assert custom["testRunId"] == queued["testRunId"] and custom["kind"] == "custom" and custom["status"] == "failed"
    results = [a["result"] for t in custom["tests"] for a in t["assertions"]]
    assert results == ["passed", "failed"], custom
    assert api.get(f"/api/builds/{build_id}").json["status"] == "succeeded"  # a test run never changes the build

    # A custom run that needs the VM resumes the snapshot saved after the build's own test boot (or after an
    # earlier boot of these bytes): no second boot, and the build's log says so.
    queued = api.post(f"/api/builds/{build_id}/tests", json={"assertions": [
        {"type": "service_running", "params": {"service": "ssh"}},
        {"type": "command_succeeds", "params": {"command": "echo live > /root/probe && grep -qx live /root/probe"}}]})
    live = wait_for(lambda: (lambda t: t if t["testRunId"] == queued["testRunId"] and t["status"] in ("passed", "failed")
                             else None)(api.get(f"/api/builds/{build_id}/tests").json), 600, "the VM test run", interval=2)
    assert live["status"] == "passed", live
    [run] = [r for r in live["runs"] if r["id"] == queued["testRunId"]]
    assert [a["fromSnapshot"] for a in run["bootAttempts"]] == [True], run
    log_text = api.get(f"/api/builds/{build_id}/logs?format=text&limit=10000").get_data(as_text=True)
    assert "test VM booted from a snapshot of an earlier boot of this image" in log_text


@pytest.mark.timeout(1500)
def test_sigkill_worker_is_lost_and_retried_then_cancel_leaves_no_process(client, factory, start_worker,
                                                                        engine_data_dir, app):
    """A worker killed mid-build: worker_lost, attempt 2 on the next worker; then a cancel mid-build."""
    owner = factory.user(email="kill@example.com")
    api = Api(client, factory.headers(owner))
    # A recipe nobody built before (no cached result), so the build really runs for a while.
    recipe = {**SSH_RECIPE, "hostname": f"kill-{os.getpid()}-{int(time.time())}"}
    build_id = api.post("/api/builds", json={"recipe": recipe})["id"]
    first = start_worker("doomed-worker")
    wait_for(lambda: api.status(build_id)["status"] == "building"
             and api.get(f"/api/builds/{build_id}/logs").json["nextAfter"] > 3, 300, "the build to run", interval=2)
    first.kill(signal.SIGKILL)
    killed_at = time.monotonic()
    # Reads never reap: well past the heartbeat's TTL the API still shows what the database says.
    time.sleep(10)
    assert (lambda b: (b["status"], b["attempt"]))(api.get(f"/api/builds/{build_id}").json) == ("building", 1)

    # The next worker to start reclaims what the dead one left (no process, mount or temp tree of it
    # remains), reaps the lost attempt as worker_lost and runs attempt 2.
    start_worker("rescue-worker")
    lost = wait_for(lambda: (lambda b: b if b["attempt"] == 2 else None)(api.get(f"/api/builds/{build_id}").json),
                    300, "worker_lost to be detected")
    assert time.monotonic() - killed_at < 300
    assert lost["status"] in ("queued", "building", "testing"), lost
    assert lost["attempts"][0]["failureCode"] == "worker_lost" and lost["attempts"][0]["worker"] == "doomed-worker"
    assert lost["attempts"][0]["failureClass"] == "infrastructure"
    doomed_scratch = engine_data_dir / "workers" / "doomed-worker"
    wait_for(lambda: not doomed_scratch.exists() and not _procs_under(doomed_scratch), 120,
             "the rescue worker to reclaim the dead worker's scratch")
    # Mid-build: while the engine runs its commands, or while the test VM boots.
    wait_for(lambda: (lambda s: s["status"] in ("building", "testing")
                      and s["stage"] in ("bootstrap", "configure", "package", "test"))(api.status(build_id)),
             600, "attempt 2 to be running")
    running = api.get(f"/api/builds/{build_id}").json
    assert running["workerName"] == "rescue-worker" and running["attempt"] == 2
    cancelled_at = time.monotonic()
    assert api.post(f"/api/builds/{build_id}/cancel")["status"] == "cancelled"
    # The worker stops the engine; nothing of the build may keep running.
    build_files = Path(app.config["KILN_ARTIFACTS_DIR"])
    wait_for(lambda: not _procs_under(engine_data_dir / "tmp") and not _procs_under(build_files)
             and not app.extensions["redis"].exists(f"kiln:build:{build_id}:heartbeat:2"), 15,
             "the build's processes to end", interval=0.2)
    assert time.monotonic() - cancelled_at < 15 + 1
    final = api.get(f"/api/builds/{build_id}").json
    assert final["status"] == "cancelled" and final["cancelRequestedAt"]
    logs = api.get(f"/api/builds/{build_id}/logs?limit=10000").json["lines"]
    assert any("cancel" in line["message"] for line in logs)


@pytest.mark.timeout(600)
def test_user_error_fails_at_once_without_retry(client, factory, start_worker, app):
    owner = factory.user(email="typo@example.com")
    api = Api(client, factory.headers(owner))
    recipe = {**SSH_RECIPE, "packages": ["openssh-server", "nginxx"]}
    build_id = api.post("/api/builds", json={"recipe": recipe})["id"]
    start_worker("typo-worker")
    final = wait_for(lambda: (lambda b: b if b["status"] in ("failed", "succeeded") else None)(
        api.get(f"/api/builds/{build_id}").json), 300, "the build to fail")
    assert final["status"] == "failed" and final["failureClass"] == "user_error", final
    assert final["attempt"] == 1 and len(final["attempts"]) == 1 and final["failureStage"] == "resolve"
    assert "nginxx" in final["failureReason"]
    stages = {s["name"]: s["status"] for s in final["stages"]}
    assert stages["resolve"] == "failed" and stages["package"] == "pending"
    from sqlalchemy import select

    from app.extensions import db
    from app.models import OutboxEvent

    with app.app_context():
        events = db.session.scalars(select(OutboxEvent.type).where(OutboxEvent.entity_id == build_id)
                                    .order_by(OutboxEvent.created_at)).all()
    assert events == ["build.started", "build.failed"]
