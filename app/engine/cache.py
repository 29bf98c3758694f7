"""The result cache (recipe hash + format -> finished artifact) and LRU eviction of all caches.

Entries are directories created under a temp name and renamed into place, so a reader sees a
whole entry or none. Files are hardlinked out to the build's output directory (copied when it is
on another filesystem), which makes a cache hit take milliseconds.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from pathlib import Path

from .fsutil import remove_tree
from .locks import STAGING_PREFIX, file_lock, make_staging
from .process import kill_processes_under
from .settings import EngineSettings


def link_or_copy(src: Path, dst: Path) -> None:
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


# Bump when what the engine makes of a recipe changes (the sandbox, the kernel command line, ...): a result
# cached by an older engine is not the image this one would build, so it must not be served for it.
RESULT_REVISION = 5  # 3: reproducible images; 4: trimmed boot path; 5: no GRUB menu wait
# Saved test VMs (app.engine.testing.snapshots): entries like the result cache's, evicted with the rest.
BOOT_SNAPSHOTS = "boot-snapshots"


class ResultCache:
    def __init__(self, settings: EngineSettings):
        self.root = settings.cache_dir / "results"

    def entry(self, recipe_hash: str, fmt: str) -> Path:
        return self.root / f"{recipe_hash}-{fmt}-r{RESULT_REVISION}"

    def lookup(self, recipe_hash: str, formats: list[str]) -> dict[str, dict] | None:
        """All requested formats' entries, or None if any is missing."""
        found = {}
        for fmt in formats:
            meta_path = self.entry(recipe_hash, fmt) / "meta.json"
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                return None
            if not (meta_path.parent / meta["filename"]).exists():
                return None
            meta["dir"] = meta_path.parent
            found[fmt] = meta
        for meta in found.values():
            os.utime(meta["dir"] / "meta.json")  # LRU: last use
        return found

    def store(self, recipe_hash: str, fmt: str, artifact: Path, sha256: str,
              manifest: Path, sbom: Path) -> None:
        final = self.entry(recipe_hash, fmt)
        if final.exists():
            return
        staging, lock = make_staging(self.root, final.name)
        try:
            link_or_copy(artifact, staging / artifact.name)
            link_or_copy(manifest, staging / "manifest.json")
            link_or_copy(sbom, staging / "sbom.spdx.json")
            (staging / "meta.json").write_text(json.dumps({
                "format": fmt, "filename": artifact.name, "sha256": sha256,
                "size": artifact.stat().st_size, "storedAt": time.time(),
            }))
            os.rename(staging, final)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)  # another build stored it first
        finally:
            os.close(lock)


def reclaim_staging(settings: EngineSettings) -> tuple[list[Path], list[str]]:
    """Remove the staging directories (`.tmp-*`, see locks.make_staging) of base layers, results and boot
    snapshots whose
    maker died halfway, SIGKILLed or with its machine; they can hold gigabytes. A live maker holds the
    directory's lock, so it keeps it, in this or any other process on the host. What still works inside a
    dead maker's directory (mmdebstrap and apt outlive a killed Python parent) is killed first, then the tree
    is unmounted and deleted. Returns the directories removed and, for those that could not be, why."""
    reclaimed, problems = [], []
    for parent in (settings.cache_dir / "base", settings.cache_dir / "results", settings.cache_dir / BOOT_SNAPSHOTS):
        try:
            found = sorted(p for p in parent.iterdir() if p.name.startswith(STAGING_PREFIX))
        except FileNotFoundError:
            continue
        for staging in found:
            try:
                fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY)
            except FileNotFoundError:
                continue  # renamed into place or reclaimed just now
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # its maker is alive and working in it
            try:
                if not staging.exists():
                    continue  # its maker renamed it into place and then let go: the lock was the entry's
                kill_processes_under(staging)
                remove_tree(staging)
                reclaimed.append(staging)
            except Exception as err:  # noqa: BLE001 - one stuck tree must not keep the others
                problems.append(f"{staging}: {err}")
            finally:
                os.close(fd)
    return reclaimed, problems


# ---- LRU eviction across results, boot snapshots, base layers and the .deb cache ------------

def _entries(settings: EngineSettings) -> list[tuple[float, int, str, Path]]:
    """(last use, size, kind, path) of every evictable cache entry."""
    out = []
    for kind, name in (("result", "results"), ("boot-snapshot", BOOT_SNAPSHOTS)):
        entries = settings.cache_dir / name
        if not entries.is_dir():
            continue
        for d in entries.iterdir():
            if d.name.startswith("."):
                continue
            try:
                used = (d / "meta.json").stat().st_mtime
                size = sum(f.stat().st_size for f in d.iterdir() if f.is_file())
            except OSError:
                continue
            out.append((used, size, kind, d))
    bases = settings.cache_dir / "base"
    if bases.is_dir():
        for d in bases.iterdir():
            if d.name.startswith(".") or not d.is_dir():
                continue
            try:
                meta = json.loads((d / "meta.json").read_text())
                out.append(((d / "meta.json").stat().st_mtime, int(meta.get("size", 0)), "base", d))
            except (OSError, ValueError):
                continue
    debs = settings.cache_dir / "apt"
    if debs.is_dir():
        for f in debs.glob("*.deb"):
            try:
                st = f.stat()
            except OSError:
                continue
            out.append((st.st_mtime, st.st_size, "deb", f))
    return out


def cache_usage(settings: EngineSettings) -> int:
    return sum(size for _, size, _, _ in _entries(settings))


def evict(settings: EngineSettings, keep: set[Path] = frozenset()) -> list[Path]:
    """Delete least recently used entries until the caches fit in cache_max_bytes."""
    removed: list[Path] = []
    with file_lock(settings.cache_dir / "evict.lock", blocking=False) as got:
        if not got:
            return removed  # another build is already evicting
        entries = sorted(_entries(settings))
        total = sum(size for _, size, _, _ in entries)
        for used, size, kind, path in entries:
            if total <= settings.cache_max_bytes:
                break
            if path in keep:
                continue
            if kind == "base":
                lock = path.with_name(path.name + ".lock")
                with file_lock(lock, blocking=False) as free:
                    if not free:
                        continue  # a running build has it mounted
                    trash = path.with_name(f".evict-{path.name}-{time.monotonic_ns()}")
                    os.rename(path, trash)
                remove_tree(trash)
            elif kind in ("result", "boot-snapshot"):
                trash = path.with_name(f".evict-{path.name}-{time.monotonic_ns()}")
                try:
                    os.rename(path, trash)
                except OSError:
                    continue
                shutil.rmtree(trash, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            total -= size
            removed.append(path)
    return removed
