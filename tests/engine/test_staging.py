"""Cache staging directories (`.tmp-*` under cache/base and cache/results) of a maker that died are reclaimed;
a live maker's are kept, whatever pid is in the name, and finished cache entries are never touched."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.engine.cache import ResultCache, reclaim_staging
from app.engine.locks import make_staging
from app.engine.settings import EngineSettings

REPO = Path(__file__).resolve().parents[2]

# A maker in a process of its own: it stages a directory, starts a command working inside it (in a session of
# its own, as the engine starts them, so it outlives a SIGKILLed Python parent), says where, and waits.
MAKER = """
import json, subprocess, sys, time
from pathlib import Path
from app.engine.locks import make_staging
staging, _lock = make_staging(Path(sys.argv[1]), sys.argv[2])
(staging / "rootfs.img").write_bytes(b"x" * 65536)
child = subprocess.Popen(["sleep", "600"], cwd=staging, start_new_session=True)
print(json.dumps({"staging": str(staging), "child": child.pid}), flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def settings(tmp_path):
    return EngineSettings(data_dir=tmp_path / "data")


@pytest.fixture
def maker(request):
    """maker(parent, name) -> (process, staging dir, pid of the command working in it); all killed at the end."""
    started = []

    def start(parent: Path, name: str):
        proc = subprocess.Popen([sys.executable, "-c", MAKER, str(parent), name], cwd=REPO, stdout=subprocess.PIPE,
                                text=True)
        info = json.loads(proc.stdout.readline())
        started.append((proc, info["child"]))
        return proc, Path(info["staging"]), info["child"]

    yield start
    for proc, child in started:
        for pid in (proc.pid, child):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()


def test_a_dead_makers_staging_is_reclaimed_with_what_still_works_in_it(settings, maker):
    proc, staging, child = maker(settings.cache_dir / "base", "trixie-abc123")
    assert staging.name.startswith(f".tmp-trixie-abc123-{proc.pid}-")
    proc.kill()  # SIGKILL: no cleanup of its own runs
    proc.wait()
    assert staging.is_dir() and _alive(child)

    reclaimed, problems = reclaim_staging(settings)

    assert (reclaimed, problems) == ([staging], [])
    assert not staging.exists()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)  # a command left working in it is killed before the tree goes


def test_a_live_makers_staging_is_kept_in_this_or_another_process(settings, maker):
    _, theirs, child = maker(settings.cache_dir / "results", "abc-rootfs-r4")
    ours, lock = make_staging(settings.cache_dir / "base", "bookworm-def456")
    try:
        assert reclaim_staging(settings) == ([], [])
        assert theirs.is_dir() and (theirs / "rootfs.img").is_file() and ours.is_dir() and _alive(child)
    finally:
        os.close(lock)
    # Once this process lets go (as at its death), its directory is a dead maker's.
    assert reclaim_staging(settings) == ([ours], [])
    assert theirs.is_dir()


def test_the_pid_in_the_name_is_not_trusted(settings):
    """A staging dir left before a reboot (or by an engine older than the lock) can name a pid that is now some
    other live process; nobody holds its lock, so it goes."""
    stale = settings.cache_dir / "results" / f".tmp-abc-rootfs-r4-{os.getpid()}-12345"
    stale.mkdir(parents=True)
    (stale / "rootfs.img").write_bytes(b"x" * 4096)
    assert reclaim_staging(settings) == ([stale], [])
    assert not stale.exists()


def test_finished_cache_entries_and_their_locks_stay(settings, tmp_path):
    results = ResultCache(settings)
    made = tmp_path / "made"
    made.mkdir()
    for name in ("rootfs.tar.zst", "manifest.json", "sbom.spdx.json"):
        (made / name).write_bytes(b"{}")
    results.store("abc", "rootfs", made / "rootfs.tar.zst", "0" * 64, made / "manifest.json", made / "sbom.spdx.json")
    base = settings.cache_dir / "base" / "trixie-abc123"
    (base / "rootfs").mkdir(parents=True)
    (base / "meta.json").write_text("{}")
    (settings.cache_dir / "base" / "trixie-abc123.lock").touch()
    before = sorted(p.relative_to(settings.cache_dir) for p in settings.cache_dir.rglob("*"))
    # Storing left no staging directory of its own behind either.
    assert not [p for p in before if p.name.startswith((".tmp-", ".new-"))]

    assert reclaim_staging(settings) == ([], [])

    assert sorted(p.relative_to(settings.cache_dir) for p in settings.cache_dir.rglob("*")) == before
    assert results.lookup("abc", ["rootfs"]) is not None


def test_no_cache_yet_is_nothing_to_reclaim(settings):
    assert reclaim_staging(settings) == ([], [])
