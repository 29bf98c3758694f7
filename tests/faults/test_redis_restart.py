"""Redis restarted in the middle of a real build: the database still says what really happened (the build
succeeds on its first attempt, nobody calls its worker lost) and the log resumes with every line once, in
order, both for a live reader that kept polling through the outage and in the archived log.

The test runs its own redis-server (with an append-only file, so a restart keeps the data) on a port of its
own; the session's Redis serves every other test.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.builds.workers import wait_for
from tests.conftest import PASSWORD
from tests.faults.conftest import build_rows, outbox_types, rootfs_recipe
from tests.fixtures.services import _wait_port, free_port

pytestmark = pytest.mark.slow
OUTAGE_SECONDS = 5
# The outage must stay shorter than a heartbeat's TTL (60 s by default); the fault tests' 6 s is too tight for
# a Redis restart on a busy machine, and nothing here waits for the reaper.
HEARTBEAT_TTL = 20


class RestartableRedis:
    def __init__(self, workdir: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.argv = [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                     str(workdir), "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"]
        self.proc = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        _wait_port(self.port, self.proc, "redis-server")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def own_redis(tmp_path):
    server = RestartableRedis(tmp_path)
    server.start()
    yield server
    server.stop()


class LiveReader(threading.Thread):
    """A client following the log through the API the whole time (`?after=` its last seq), as the log page
    does; while Redis is away its requests fail and it simply asks again."""

    def __init__(self, client, headers, build_id, app):
        super().__init__(daemon=True)
        self.client, self.headers, self.build_id, self.app = client, headers, build_id, app
        self.lines: list[dict] = []
        self.failed_polls = 0
        self.done = threading.Event()

    def run(self):
        after = 0
        while not self.done.is_set():
            resp = self.client.get(f"/api/builds/{self.build_id}/logs?after={after}&limit=10000", headers=self.headers)
            if resp.status_code != 200:
                self.failed_polls += 1
            else:
                self.lines += resp.json["lines"]
                after = self.lines[-1]["seq"] if self.lines else after
                if resp.json["complete"]:
                    return
            time.sleep(0.2)


@pytest.mark.timeout(400)
def test_redis_restart_mid_build_keeps_state_and_log(app, app_config, factory, own_redis, workers, built_rootfs):
    # own_redis before workers: the worker stops while its Redis still runs (RQ cannot stop without it).
    from app import create_app

    faulty = create_app({**app_config, "REDIS_URL": own_redis.url, "RATELIMIT_STORAGE_URI": own_redis.url,
                         "RATELIMIT_ENABLED": False})
    client = faulty.test_client()
    owner = factory.user(email="redis-restart@example.com")
    login = client.post("/api/auth/login", json={"email": owner.email, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json['token']}"}
    # openssh-server: apt's output gives the log a steady flow of lines while Redis is away.
    # A recipe command that logs a line every half second for 20 s: the outage falls inside the build however
    # fast the machine (with warm caches the rest of the build can finish within the outage).
    recipe = {**rootfs_recipe("redis"), "packages": ["openssh-server"],
              "commands": ["for i in $(seq 1 40); do echo tick $i; sleep 0.5; done"]}
    resp = client.post("/api/builds", json={"recipe": recipe}, headers=headers)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    build_id = resp.json["id"]
    worker = workers("redis-restart", REDIS_URL=own_redis.url, KILN_BUILD_HEARTBEAT_TTL=HEARTBEAT_TTL)
    reader = LiveReader(faulty.test_client(), headers, build_id, faulty)
    reader.start()

    wait_for(lambda: (lambda b: b.status == "building" and b.stage == "configure")(
        build_rows(app, [build_id])[build_id]), 180, "the build to reach its recipe commands", interval=0.2)
    own_redis.stop()
    time.sleep(OUTAGE_SECONDS)
    own_redis.start()
    during = build_rows(app, [build_id])[build_id]
    assert (during.status, during.attempt) == ("building", 1), (during.status, during.attempt)

    build = wait_for(lambda: (lambda b: b if b.is_terminal else None)(build_rows(app, [build_id])[build_id]),
                     300, "the build to finish", interval=1)
    reader.join(60)
    reader.done.set()
    assert worker.proc.poll() is None, worker.log_path.read_text()[-3000:]
    # The database tells the truth: one attempt that succeeded, nothing lost or retried, each event once.
    assert (build.status, build.attempt, build.attempts, build.failure_code) == ("succeeded", 1, [], None), (
        build.status, build.failure_reason)
    assert {s.status for s in build.stages} == {"succeeded"}, [(s.name, s.status) for s in build.stages]
    assert outbox_types(app, build_id) == ["build.started", "test.completed", "build.completed"]

    # The archived log (the file the `log` artifact names) holds every line once, in order.
    log_artifact = next(a for a in build.artifacts if a.kind == "log")
    archived = [json.loads(raw) for raw in
                (Path(app.config["KILN_ARTIFACTS_DIR"]) / log_artifact.path).read_text().splitlines()]
    seqs = [line["seq"] for line in archived]
    assert seqs == list(range(1, len(seqs) + 1))
    messages = [line["message"] for line in archived]
    # The engine's own milestones, each exactly once: a lost or doubled line shows here.
    for stage in ("resolve", "bootstrap", "configure", "package", "evidence"):
        for status in ("running", "succeeded"):
            assert messages.count(f"stage {stage}: {status}") == 1, (stage, status)
    assert sum(m.startswith("attempt 1 started on") for m in messages) == 1
    assert sum(m.startswith("build finished in") for m in messages) == 1
    # The reader that followed through the outage saw exactly the archived log: no gap, nothing twice.
    assert reader.failed_polls > 0, "the outage was not noticed by the reader"
    assert [(line["seq"], line["message"]) for line in reader.lines] == [(line["seq"], line["message"])
                                                                          for line in archived]
