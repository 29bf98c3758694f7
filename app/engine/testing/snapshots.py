"""Booted-VM snapshots: a later test run of an image with the same bytes resumes an earlier run's boot.

Once a cold boot has reached its login prompt, start-up has settled with no failed unit and the guest agent
answers, the runner saves the VM (QEMU's savevm, before any assertion touched the guest) and stores the qcow2
file that holds it here, in the engine's cache. A later run whose VM would be made the same way (the key:
the image's sha256 and QEMU's command line without ports or paths, see VM.snapshot_key) starts QEMU from a
copy of it with -loadvm instead of booting.

Entries are directories created under a temp name and renamed into place (as the result cache does), so a
reader sees a whole entry or none and two runs storing the same key at once leave one of them; the LRU
eviction in app.engine.cache counts them with the other caches under KILN_CACHE_MAX_GB.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from app.engine.cache import BOOT_SNAPSHOTS, evict
from app.engine.locks import make_staging
from app.engine.settings import EngineSettings

STATE_FILE = "state.qcow2"
META_FILE = "meta.json"


@dataclass(frozen=True)
class Snapshot:
    """One stored snapshot: its file and what the boot it was taken from proved."""
    key: str
    path: Path
    boot_seconds: float     # QEMU start to login prompt of the boot it was taken from
    accel: str
    created_at: float

    @property
    def entry(self) -> Path:
        return self.path.parent


class SnapshotStore:
    """cache_dir/boot-snapshots/<image sha256>-<VM hash>/{state.qcow2, meta.json}."""

    def __init__(self, settings: EngineSettings):
        self.settings = settings
        self.root = snapshot_root(settings)
        self._locks: dict[Path, int] = {}  # staging dir -> fd of the lock that says its maker lives

    def lookup(self, key: str) -> Snapshot | None:
        entry = self.root / key
        try:
            meta = json.loads((entry / META_FILE).read_text())
            if not (entry / STATE_FILE).is_file():
                return None
            os.utime(entry / META_FILE)  # LRU: last use
            return Snapshot(key, entry / STATE_FILE, float(meta["bootSeconds"]), str(meta["accel"]),
                            float(meta["createdAt"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def staging(self, key: str) -> Path:
        """A fresh directory to write a snapshot of `key` into before store() moves it into place."""
        # Locked while this run lives, so a worker killed mid-save leaves a staging dir that the next worker
        # start reclaims (cache.reclaim_staging); a live run's is left alone.
        staging, fd = make_staging(self.root, key)
        self._locks[staging] = fd
        return staging

    def _unlock(self, staging: Path) -> None:
        fd = self._locks.pop(staging, None)
        if fd is not None:
            os.close(fd)

    def store(self, key: str, staging: Path, *, boot_seconds: float, accel: str) -> bool:
        """Move a staging directory holding state.qcow2 into place; False when another run stored it first."""
        final = self.root / key
        try:
            (staging / META_FILE).write_text(json.dumps({
                "bootSeconds": round(boot_seconds, 1), "accel": accel, "createdAt": time.time(),
                "size": (staging / STATE_FILE).stat().st_size}))
            if final.exists():
                return False
            os.rename(staging, final)
        except OSError:
            return False
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            self._unlock(staging)
        evict(self.settings, keep={final})
        return True

    def discard_staging(self, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)
        self._unlock(staging)

    def discard(self, snapshot: Snapshot) -> None:
        """Remove a snapshot that would not load, unless the entry was replaced since it was looked up."""
        try:
            meta = json.loads((snapshot.entry / META_FILE).read_text())
            if meta.get("createdAt") != snapshot.created_at:
                return
            trash = snapshot.entry.with_name(f".bad-{snapshot.key}-{time.monotonic_ns()}")
            os.rename(snapshot.entry, trash)
        except OSError:
            return
        shutil.rmtree(trash, ignore_errors=True)


def snapshot_root(settings: EngineSettings) -> Path:
    return settings.cache_dir / BOOT_SNAPSHOTS
