"""The data disk filling up during a real build: the build fails with a message that says the disk is full
(not a traceback, not retried onto the same full disk), the engine's caches on that disk are whole (a later
build reuses them), and once space is freed the next build succeeds.

KILN_DATA_DIR (caches, the workers' scratch space and the artifacts) is a small ext4 filesystem on a loop
device, seeded with the session's minimal base layer. Mounting it needs root, as building does.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.builds.workers import _procs_under, wait_for
from tests.faults.conftest import all_log_lines, build_rows, rootfs_recipe

pytestmark = pytest.mark.slow
DISK_MB = 420
LEFT_FREE_MB = 12  # less than the rootfs tarball (about 38 MiB), more than the work tree's own writes


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("a loop-mounted filesystem needs root (CI and the build engine run as root)")
    image, mountpoint = tmp_path / "disk.img", tmp_path / "disk"
    mountpoint.mkdir()
    with image.open("wb") as out:
        out.truncate(DISK_MB * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True, capture_output=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mountpoint)], check=True, capture_output=True)
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)


def _seed_caches(engine_data_dir: Path, disk: Path) -> str:
    """Copy the minimal base layer (and the package index) onto the small disk; returns the base's key."""
    source = engine_data_dir / "cache"
    (disk / "cache" / "base").mkdir(parents=True)
    if (source / "index").is_dir():  # a recipe without packages never needed it
        shutil.copytree(source / "index", disk / "cache" / "index", symlinks=True)
    for meta in (source / "base").glob("*/meta.json"):
        if not json.loads(meta.read_text())["bootable"]:
            key = meta.parent.name
            subprocess.run(["cp", "-a", str(meta.parent), str(disk / "cache" / "base" / key)], check=True)
            return key
    raise AssertionError("the session has no minimal base layer")


def _free_mb(path: Path) -> float:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize / 1024**2


def _run_build(client, headers, app, recipe) -> tuple[str, object]:
    resp = client.post("/api/builds", json={"recipe": recipe}, headers=headers)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    build_id = resp.json["id"]
    build = wait_for(lambda: (lambda b: b if b.is_terminal else None)(build_rows(app, [build_id])[build_id]),
                     240, "the build to finish", interval=1)
    return build_id, build


@pytest.mark.timeout(600)
def test_disk_full_mid_build_fails_cleanly_and_the_next_build_succeeds(app, client, factory, small_disk, workers,
                                                                         engine_data_dir, built_rootfs):
    base_key = _seed_caches(engine_data_dir, small_disk)
    owner = factory.user(email="disk-full@example.com")
    headers = factory.headers(owner)
    worker = workers("disk-worker", data_dir=small_disk, KILN_ARTIFACTS_DIR=small_disk / "artifacts")
    results = small_disk / "cache" / "results"

    first_recipe = rootfs_recipe("before")
    first_id, first = _run_build(client, headers, app, first_recipe)
    assert first.status == "succeeded", first.failure_reason
    cached = sorted(p.name for p in results.iterdir())

    filler = small_disk / "filler"
    with filler.open("wb") as out:
        out.truncate(0)
        chunk = b"\0" * (1024 * 1024)
        while _free_mb(small_disk) > LEFT_FREE_MB:
            out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    full_id, full = _run_build(client, headers, app, rootfs_recipe("full"))

    # A clear failure: says the disk is full, names no Python internals, is not retried onto the same disk.
    assert (full.status, full.failure_code, full.attempt) == ("failed", "disk_full", 1), (
        full.status, full.failure_code, full.failure_reason)
    reason = full.failure_reason
    assert "disk is full" in reason and "No space left on device" in reason, reason
    assert "Traceback" not in reason and "Errno" not in reason and "internal error" not in reason, reason
    assert full.failure_stage == "package" and full.failure_class == "infrastructure"
    assert worker.proc.poll() is None, worker.log_path.read_text()[-3000:]
    lines = all_log_lines(client, headers, full_id)
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
    assert any("disk is full" in line["message"] for line in lines if line["level"] == "error")
    assert not any("Traceback" in line["message"] for line in lines)
    # Nothing half-written is left in the caches, and the failed attempt's work tree is gone.
    assert sorted(p.name for p in results.iterdir()) == cached
    assert [p.name for p in (small_disk / "cache" / "base").iterdir() if p.name.startswith(".")] == []
    assert json.loads((small_disk / "cache" / "base" / base_key / "meta.json").read_text())["key"] == base_key
    scratch = small_disk / "workers" / "disk-worker"
    assert sorted(p.name for p in scratch.iterdir()) == [".lock"] and _procs_under(scratch) == []

    filler.unlink()
    # The same recipe again is served from the result cache the full disk did not damage ...
    again_id, again = _run_build(client, headers, app, first_recipe)
    assert again.status == "succeeded" and again.cached, again.failure_reason
    # ... and a new recipe builds on the cached base layer (no new bootstrap) and succeeds.
    next_id, after = _run_build(client, headers, app, rootfs_recipe("after"))
    assert after.status == "succeeded", after.failure_reason
    messages = [line["message"] for line in all_log_lines(client, headers, next_id)]
    assert any(m.startswith(f"reusing cached base layer {base_key}") for m in messages), messages[:40]
    image = next(a for a in after.artifacts if a.kind == "rootfs")
    assert (Path(small_disk / "artifacts") / image.path).stat().st_size == image.size
