"""Kiln past one machine, with real processes: PostgreSQL, Redis, an S3 server (SeaweedFS), one web process and two
`python worker.py` with data directories of their own, as on two hosts that share only the database, Redis and the
bucket. Builds run on both workers; every file downloads from the web process (which has none of them on disk)
with its sha256 and byte ranges; an identical recipe on the other worker comes from the shared result; a worker
SIGKILLed mid-build loses nothing (the survivor's reaper retries the build and it succeeds).

The workers' engine caches share the session's .deb cache, base layers and package index (symlinks into the engine
data dir), so only the recipes' own work runs; the result caches are each worker's own.
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.builds.workers import _descendants, _unmount_under, wait_for
from tests.conftest import Factory
from tests.fixtures.s3 import seaweedfs_server
from tests.fixtures.services import _wait_port, free_port, postgres_server, redis_server

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
BUCKET = "kiln-scaleout"
# The cheapest real image: a rootfs tarball of a small Debian (no kernel, no boot test).
RECIPE = {"name": "scaleout", "release": "trixie", "format": "rootfs", "packages": ["less"], "hostname": "so"}


class Proc:
    """A process in its own session; kill() takes its whole tree, as a host going away would."""

    def __init__(self, args, env, log: Path):
        self.log = log.open("ab")
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def kill(self, sig=signal.SIGKILL):
        for pid in [self.proc.pid] + _descendants(self.proc.pid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()


class Cluster:
    def __init__(self, base: str, headers: dict, workers: dict[str, Proc], data_dirs: dict[str, Path], web_dir: Path,
                 s3):
        self.base, self.headers, self.workers, self.data_dirs, self.web_dir, self.s3 = (
            base, headers, workers, data_dirs, web_dir, s3)

    def get(self, path, **kw):
        resp = requests.get(self.base + path, headers={**self.headers, **kw.pop("headers", {})}, timeout=120, **kw)
        assert resp.status_code < 400, (path, resp.status_code, resp.text[:300])
        return resp

    def build(self, recipe) -> str:
        resp = requests.post(self.base + "/api/builds", json={"recipe": recipe}, headers=self.headers, timeout=60)
        assert resp.status_code == 201, resp.text[:300]
        return resp.json()["id"]

    def finished(self, build_id, timeout=600) -> dict:
        return wait_for(lambda: (lambda b: b if b["status"] in ("succeeded", "failed", "cancelled") else None)(
            self.get(f"/api/builds/{build_id}").json()), timeout, f"build {build_id} to finish", interval=2)


def _seed_caches(data_dir: Path, shared_cache: Path) -> None:
    """A worker's own data dir whose engine reuses the session's downloads and base layers (not its results)."""
    cache = data_dir / "cache"
    cache.mkdir(parents=True)
    for name in ("apt", "base", "index"):
        (shared_cache / name).mkdir(parents=True, exist_ok=True)
        (cache / name).symlink_to(shared_cache / name, target_is_directory=True)


@pytest.fixture(scope="module")
def cluster(engine_data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("scaleout")
    with postgres_server() as database_url, redis_server() as redis_url, seaweedfs_server() as s3:
        s3.create_bucket(BUCKET)
        secret = "scaleout-" + uuid.uuid4().hex
        common = {**os.environ, **s3.env(), "DATABASE_URL": database_url, "REDIS_URL": redis_url,
                  "SECRET_KEY": secret, "KILN_STORAGE_URL": f"s3://{BUCKET}/kiln",
                  "KILN_RATE_LIMIT": "100000 per minute", "KILN_BUILD_START_LIMIT": "1000 per hour",
                  "KILN_BUILD_HEARTBEAT_INTERVAL": "1", "KILN_BUILD_HEARTBEAT_TTL": "15",
                  "KILN_BUILD_REAPER_INTERVAL": "2",
                  # Several builds at once: the free tier (the default for new orgs) runs one at a time.
                  "KILN_DEFAULT_TIER": "enterprise"}
        from app import create_app
        from app.extensions import db

        app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "REDIS_URL": redis_url, "SECRET_KEY": secret,
                          "RATELIMIT_STORAGE_URI": redis_url, "KILN_DATA_DIR": str(root / "setup"),
                          "KILN_ARTIFACTS_DIR": str(root / "setup" / "artifacts"),
                          "KILN_DEFAULT_TIER": "enterprise"})
        with app.app_context():
            db.create_all()
        factory = Factory(app)
        owner = factory.user(email="scaleout@example.com")
        headers = factory.headers(owner)

        port = free_port()
        web_dir = root / "web"
        web = Proc([sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--threads", "8", "--workers", "1",
                    "--bind", f"127.0.0.1:{port}", "--timeout", "120", "wsgi:app"],
                   {**common, "KILN_DATA_DIR": str(web_dir), "KILN_INSTANCE_PATH": str(root / "web-instance")},
                   root / "web.log")
        procs, data_dirs = {"web": web}, {}
        try:
            _wait_port(port, web.proc, "the web process", timeout=60)
            workers = {}
            for name in ("host-a", "host-b"):
                data_dirs[name] = root / name
                _seed_caches(data_dirs[name], engine_data_dir / "cache")
                workers[name] = procs[name] = Proc(
                    [sys.executable, str(ROOT / "worker.py")],
                    {**common, "KILN_DATA_DIR": str(data_dirs[name]), "KILN_WORKER_NAME": name,
                     "KILN_INSTANCE_PATH": str(root / f"{name}-instance")}, root / f"{name}.log")
            from rq import Worker

            with app.app_context():
                from app.extensions import redis

                wait_for(lambda: {w.name for w in Worker.all(connection=redis.client)} >= set(workers), 60,
                         "both workers to listen")
            yield Cluster(f"http://127.0.0.1:{port}", headers, workers, data_dirs, web_dir, s3)
        finally:
            for proc in procs.values():
                if not proc.log.closed:
                    proc.kill()
            for name in data_dirs:
                _unmount_under(data_dirs[name])
            with app.app_context():
                db.session.remove()
                db.engine.dispose()


def _check_downloads(cluster: Cluster, build: dict) -> None:
    """Every file from the web process, streamed from the store: right bytes, sha256 header, a byte range."""
    assert build["artifacts"], build
    for artifact in build["artifacts"]:
        resp = cluster.get(artifact["downloadUrl"])
        assert hashlib.sha256(resp.content).hexdigest() == artifact["sha256"] == resp.headers["X-Checksum-SHA256"]
        assert len(resp.content) == artifact["size"] == int(resp.headers["Content-Length"])
        start = artifact["size"] // 3
        end = min(start + 4095, artifact["size"] - 1)
        part = cluster.get(artifact["downloadUrl"], headers={"Range": f"bytes={start}-{end}"})
        assert part.status_code == 206 and part.headers["Content-Range"] == f"bytes {start}-{end}/{artifact['size']}"
        assert part.content == resp.content[start:end + 1]


@pytest.mark.timeout(900)
def test_two_workers_share_one_store(cluster):
    tag = uuid.uuid4().hex[:8]
    recipes = [{**RECIPE, "hostname": f"so-{tag}-{i}"} for i in range(2)]
    started = time.monotonic()
    first = [cluster.build(recipe) for recipe in recipes]
    built = [cluster.finished(build_id) for build_id in first]
    took = time.monotonic() - started
    assert [b["status"] for b in built] == ["succeeded", "succeeded"], [b.get("failureReason") for b in built]
    # Two jobs queued while both workers were idle: one each.
    assert {b["workerName"] for b in built} == {"host-a", "host-b"}
    assert not any(b["cached"] for b in built)
    for build in built:
        _check_downloads(cluster, build)
        assert {a["kind"] for a in build["artifacts"]} == {"rootfs", "manifest", "sbom", "checksums", "log"}
    # The web process holds none of the files; a worker drops its copy once the build is finished.
    assert not (cluster.web_dir / "artifacts").exists() or not any((cluster.web_dir / "artifacts").rglob("*.tar*"))
    for name, data_dir in cluster.data_dirs.items():
        assert not any((data_dir / "artifacts").rglob("*.tar*")), name
    logs = cluster.get(f"/api/builds/{first[0]}/logs?limit=10000").json()["lines"]
    assert logs and logs[0]["seq"] == 1 and any("finished" in line["message"] for line in logs)
    print(f"\n[scaleout] two fresh rootfs builds on two workers: {took:.1f} s")

    # A fresh recipe starts on one worker; that host dies mid-build (SIGKILL of all its processes).
    doomed_id = cluster.build({**RECIPE, "hostname": f"so-{tag}-doomed"})
    running = wait_for(lambda: (lambda s: s if s["status"] == "building"
                                and s["stage"] in ("bootstrap", "configure", "package") else None)(
        cluster.get(f"/api/builds/{doomed_id}/status").json()), 300, "the build to run", interval=0.5)
    doomed_row = cluster.get(f"/api/builds/{doomed_id}").json()
    assert doomed_row["attempt"] == 1, doomed_row["attempts"]
    doomed = doomed_row["workerName"]
    survivor = ({"host-a", "host-b"} - {doomed}).pop()
    cluster.workers[doomed].kill()
    killed_at = time.monotonic()
    assert running["status"] == "building"

    # The recipe the dead host built earlier, asked again: the survivor never built it, and serves it from the
    # shared result at once.
    original = next(b for b in built if b["workerName"] == doomed)
    again_started = time.monotonic()
    again = cluster.finished(cluster.build(original["recipe"]), timeout=300)
    again_took = time.monotonic() - again_started
    assert again["status"] == "succeeded" and again["workerName"] == survivor and again["cached"] is True, again
    by_kind = {a["kind"]: a for a in again["artifacts"]}
    assert by_kind["rootfs"]["sha256"] == next(a for a in original["artifacts"] if a["kind"] == "rootfs")["sha256"]
    again_logs = [line["message"] for line in cluster.get(f"/api/builds/{again['id']}/logs?limit=10000").json()["lines"]]
    assert any(f"s3://{BUCKET}/kiln" in m and "fetched it" in m for m in again_logs), again_logs
    assert any("(1 copied inside the store)" in m for m in again_logs), again_logs
    print("[scaleout] " + "; ".join(m for m in again_logs if "fetched it" in m or "copied inside" in m
                                    or "build finished" in m))
    _check_downloads(cluster, again)
    print(f"[scaleout] identical recipe on the other worker from the shared result: {again_took:.1f} s")

    # The killed build: worker_lost, retried by the survivor's reaper, and it succeeds there.
    final = cluster.finished(doomed_id, timeout=600)
    assert final["status"] == "succeeded", (final.get("failureReason"), final["attempts"])
    assert final["attempt"] == 2 and final["workerName"] == survivor
    assert final["attempts"][0]["failureCode"] == "worker_lost" and final["attempts"][0]["worker"] == doomed
    _check_downloads(cluster, final)
    print(f"[scaleout] killed build recovered on {survivor} {time.monotonic() - killed_at:.1f} s after the kill")

    # Deleting a build removes its objects from the bucket.
    client = cluster.s3.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="kiln/").get("Contents", [])]
    assert any(doomed_id in k for k in keys), keys
    assert requests.delete(f"{cluster.base}/api/builds/{doomed_id}", headers=cluster.headers,
                           timeout=60).status_code == 204
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="kiln/").get("Contents", [])]
    assert not any(doomed_id in k for k in keys) and any(first[0] in k for k in keys), keys
