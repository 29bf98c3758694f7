"""Each worker's scratch space: `KILN_DATA_DIR/workers/<worker>/`, where the engine's temp trees and the
image tests' disks of that worker go, and where their commands run. It sits beside the engine's own
`tmp/` (used by the CLI), not inside it, so either can be checked for leftovers on its own.

A worker holds an flock on its directory's `.lock` for as long as any of its Python processes lives (RQ's
work horse is forked and inherits it; the commands the engine starts exec and do not). A directory whose
lock nobody holds belongs to a worker that died. The next worker to start kills whatever still runs
there (mmdebstrap, apt, a test VM), unmounts what is mounted below it and removes the tree. It reclaims the
cache entries dead workers were making the same way (`.tmp-*` under the engine's cache; see
app.engine.cache.reclaim_staging): a staging directory whose lock nobody holds has lost its maker.
"""
from __future__ import annotations

import fcntl
import logging
import os
import re
import uuid
from pathlib import Path

from flask import current_app

from app.engine.cache import reclaim_staging
from app.engine.fsutil import remove_tree
from app.engine.process import kill_processes_under
from app.engine.settings import EngineSettings

LOCK_NAME = ".lock"
log = logging.getLogger("kiln.builds")
_claimed: dict[str, int] = {}  # this process's scratch dir -> the fd holding its lock


def workers_root() -> Path:
    return Path(current_app.config["KILN_DATA_DIR"]).resolve() / "workers"


def scratch_dir(worker_name: str) -> Path:
    return workers_root() / re.sub(r"[^A-Za-z0-9._-]", "_", worker_name)


def claim(worker_name: str) -> Path:
    """Create this worker's scratch directory already locked: it is made under a temporary name, locked, and
    renamed into place, so no other worker ever sees it unlocked. A directory of that name still there
    belongs to a live worker of the same name (start_worker reclaims dead ones first)."""
    directory = scratch_dir(worker_name)
    staging = workers_root() / f".claim-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    fd = os.open(staging / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        os.rename(staging, directory)
    except OSError:
        os.close(fd)
        remove_tree(staging)
        raise RuntimeError(f"another worker named {worker_name!r} is running (it holds {directory})") from None
    _claimed[str(directory)] = fd
    return directory


def reclaim_dead() -> list[Path]:
    """Kill, unmount and remove what dead workers left behind: their scratch directories, then the cache
    staging directories their builds were filling (app.engine.cache.reclaim_staging); returns the
    directories reclaimed."""
    reclaimed = _reclaim_dead_scratch()
    staging, problems = reclaim_staging(EngineSettings.from_config(current_app.config))
    for path in staging:
        log.warning("reclaimed %s, a cache entry a dead worker was making", path)
    for problem in problems:
        log.error("could not reclaim a dead worker's cache staging directory %s", problem)
    return reclaimed + staging


def _reclaim_dead_scratch() -> list[Path]:
    root = workers_root()
    if not root.is_dir():
        return []
    reclaimed = []
    for directory in sorted(p for p in root.iterdir()
                            if p.is_dir() and not p.name.startswith(".") and str(p) not in _claimed):
        try:
            fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            continue  # another worker reclaimed it just now
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # a live worker's
        try:
            killed = kill_processes_under(directory)
            remove_tree(directory)
            log.warning("reclaimed %s of a dead worker (%d process(es) killed)", directory, killed)
            reclaimed.append(directory)
        except Exception:  # noqa: BLE001 - one stuck tree must not stop the worker from starting
            log.exception("could not reclaim %s", directory)
        finally:
            os.close(fd)
    return reclaimed
