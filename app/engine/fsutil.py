"""Mounts, temp trees and their cleanup.

Cleanup must hold on success, failure, cancel and timeout, including after mmdebstrap or
apt was SIGKILLed halfway: so instead of trusting a record of what we mounted, we read
/proc/self/mountinfo and unmount everything below a tree before deleting it.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path, PurePosixPath
from typing import Callable


def _unescape(path: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return path.encode().decode("unicode_escape") if "\\" in path else path


def mounts_under(root: Path) -> list[str]:
    root_s = str(Path(root).resolve())
    found = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        parts = line.split()
        if len(parts) > 4:
            mnt = _unescape(parts[4])
            if mnt == root_s or mnt.startswith(root_s + "/"):
                found.append(mnt)
    return found


def unmount_all(root: Path) -> None:
    """Unmount every mount at or below root, deepest first; lazily if busy."""
    for _ in range(5):
        mounts = mounts_under(root)
        if not mounts:
            return
        for mnt in sorted(mounts, key=lambda m: m.count("/"), reverse=True):
            if subprocess.run(["umount", mnt], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", mnt], capture_output=True)
        time.sleep(0.1)


def remove_tree(path: Path) -> None:
    """Unmount then delete a temp tree without ever crossing into a still-mounted filesystem."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    unmount_all(path)
    if mounts_under(path):
        raise RuntimeError(f"cannot unmount everything below {path}; refusing to delete it")
    # --one-file-system: a bind mount of the host's /dev we failed to see must never be emptied.
    result = subprocess.run(["rm", "-rf", "--one-file-system", str(path)], capture_output=True, text=True)
    if result.returncode != 0 and path.exists():
        shutil.rmtree(path, ignore_errors=True)


def tree_size(path: Path) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


class CleanupStack:
    """LIFO of cleanup callbacks; every one runs even if an earlier one fails."""

    def __init__(self) -> None:
        self._items: list[tuple[str, Callable[[], None]]] = []

    def push(self, label: str, fn: Callable[[], None]) -> None:
        self._items.append((label, fn))

    def close(self) -> list[str]:
        errors = []
        while self._items:
            label, fn = self._items.pop()
            try:
                fn()
            except Exception as err:  # keep going: the rest still has to be released
                errors.append(f"{label}: {err}")
        return errors


MAX_SYMLINKS = 40


def inside(root: Path, path: str, *, follow_last: bool = True, strict: bool = False) -> Path:
    """Host path of `path` in the image tree at `root`, resolving symlinks as the image would.

    Recipe steps can leave any symlink in the tree (`/etc/hostname -> /proc/1/root/...`); the engine's
    own reads and writes from the host side go through this so they never leave the tree. `strict`:
    every component must exist, as for a lookup in the running image (FileNotFoundError otherwise).
    """
    root = Path(root)
    todo = [p for p in PurePosixPath("/" + path.lstrip("/")).parts[1:]]
    done: list[str] = []
    hops = 0
    while todo:
        part = todo.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        host = root.joinpath(*done, part)
        if host.is_symlink() and (todo or follow_last):
            hops += 1
            if hops > MAX_SYMLINKS:
                raise OSError(f"too many levels of symbolic links below {path} in the image")
            target = os.readlink(host)
            if target.startswith("/"):
                done = []
            todo = [p for p in PurePosixPath(target).parts if p != "/"] + todo
            continue
        if strict and not host.is_symlink() and not host.exists():
            raise FileNotFoundError(f"{path} does not exist in the image")
        done.append(part)
    return root.joinpath(*done)
