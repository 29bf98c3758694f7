"""Small file-locking and atomic-write helpers shared by the caches."""
from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def file_lock(path: Path, shared: bool = False, blocking: bool = True) -> Iterator[bool]:
    """fcntl lock on `path` (created if missing). Yields False if non-blocking and busy."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        flags = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        if not blocking:
            flags |= fcntl.LOCK_NB
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temp file beside `path` then rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


STAGING_PREFIX = ".tmp-"


def make_staging(parent: Path, name: str) -> tuple[Path, int]:
    """A new empty directory `parent/.tmp-{name}-{pid}-{ns}` to build a cache entry in before it is renamed
    into place, and the fd of the flock this process holds on it until it closes the fd.

    The lock says its maker is alive: the kernel lets go of it when the process dies, SIGKILLed too, in any
    pid namespace and whatever pid comes next, so reclaim_staging (cache.py) needs no guess from the pid in
    the name (which only tells a person whose it was). The directory is made and locked under another name
    first and then renamed, so it is never seen unlocked under its `.tmp-` name."""
    parent.mkdir(parents=True, exist_ok=True)
    suffix = f"{name}-{os.getpid()}-{time.monotonic_ns()}"
    making = parent / f".new-{suffix}"
    making.mkdir()
    fd = os.open(making, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # nobody else knows the name yet: this never waits
        staging = parent / f"{STAGING_PREFIX}{suffix}"
        os.rename(making, staging)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            making.rmdir()
        raise
    return staging, fd
