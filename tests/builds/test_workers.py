"""Real `python worker.py` processes: what a SIGKILLed worker leaves behind (processes, mounts, temp trees) is
reclaimed by the next worker to start, and a live worker's scratch space is left alone."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app.engine.fsutil import remove_tree
from app.engine.locks import make_staging
from tests.builds.workers import wait_for

# Three worker processes on a small shared machine: about a minute, so with the slow suite.
pytestmark = pytest.mark.slow


def _registered(app, name: str) -> bool:
    from rq import Worker

    from app.extensions import redis

    with app.app_context():
        return any(w.name == name for w in Worker.all(connection=redis.client))


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _mounted(path: str) -> bool:
    return any(line.split()[1] == path for line in Path("/proc/mounts").read_text().splitlines())


@pytest.mark.timeout(400)
def test_a_worker_start_reclaims_what_a_sigkilled_worker_left(app, start_worker, engine_data_dir, tmp_path):
    from app import queues

    workers = engine_data_dir / "workers"
    bystander = start_worker("bystander-worker", "bystander")
    doomed = start_worker("doomed-worker", "doomed")  # the only worker on its queue: the job runs there
    marker = tmp_path / "left-behind.json"
    with app.app_context():
        queues.get_queue("doomed").enqueue("tests.builds.jobs.leave_behind", args=(str(marker),), job_timeout=900)
    left = json.loads(wait_for(lambda: marker.is_file() and marker.read_text(), 120, "the job to start"))
    assert left["tree"].startswith(str(workers / "doomed-worker"))
    doomed.kill_python()
    assert _alive(left["pid"]) and _mounted(left["mount"]) and Path(left["tree"]).is_dir()
    staging = [Path(p) for p in left["staging"]]
    assert _alive(left["bootstrap"]) and all(p.is_dir() for p in staging)
    # A cache entry a live process is making right now (this one) is not a dead worker's.
    live, lock = make_staging(engine_data_dir / "cache" / "results", "being-made-rootfs-r4")

    try:
        following = start_worker("next-worker", "next")
        wait_for(lambda: following.proc.poll() is not None or not _alive(left["pid"]) and not _mounted(left["mount"])
                 and not (workers / "doomed-worker").exists() and not any(p.exists() for p in staging)
                 and not _alive(left["bootstrap"]), 120, "the next worker to reclaim the dead one's scratch and staging",
                 interval=0.2)
        assert live.is_dir()
        assert not _mounted(str(staging[0] / "rootfs" / "var" / "cache" / "apt" / "archives"))
    finally:
        os.close(lock)
        remove_tree(live)
    assert following.proc.poll() is None, following.log_path.read_text()[-3000:]
    wait_for(lambda: _registered(app, "next-worker"), 120, "the next worker to take jobs")
    # A live worker's scratch space (and its lock) is not touched.
    assert bystander.proc.poll() is None and (workers / "bystander-worker" / ".lock").is_file()
    assert (workers / "next-worker").is_dir()
