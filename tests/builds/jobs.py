"""RQ jobs the worker tests enqueue into a real `python worker.py` (importable there: it runs from the repo)."""
from __future__ import annotations

import json
import subprocess
import time

from flask import current_app
from rq import get_current_job

from app.engine.locks import make_staging
from app.engine.settings import EngineSettings
from app.services.builds import scratch


def leave_behind(marker: str) -> None:
    """What a build leaves when its worker is SIGKILLed: a command running in the worker's scratch space (in a
    session of its own, as the engine starts them), a mount and a temp tree; then it hangs like a build."""
    tree = scratch.scratch_dir(get_current_job().worker_name) / "build-left-behind"
    (tree / "mnt").mkdir(parents=True, exist_ok=True)
    (tree / "rootfs.img").write_bytes(b"x" * 4096)
    subprocess.run(["mount", "-t", "tmpfs", "kiln-test", str(tree / "mnt")], check=True)
    child = subprocess.Popen(["sleep", "600"], cwd=tree, start_new_session=True)
    # And the cache entries it was making: a base layer being bootstrapped (mmdebstrap's mount and a command
    # working in it, in a session of its own) and a result being stored.
    cache = EngineSettings.from_config(current_app.config).cache_dir
    base, _ = make_staging(cache / "base", "left-behind-base")
    (base / "rootfs" / "var" / "cache" / "apt" / "archives").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "kiln-test", str(base / "rootfs" / "var" / "cache" / "apt" / "archives")],
                   check=True)
    bootstrap = subprocess.Popen(["sleep", "600"], cwd=base / "rootfs", start_new_session=True)
    result, _ = make_staging(cache / "results", "left-behind-rootfs-r4")
    (result / "rootfs.tar.zst").write_bytes(b"x" * 4096)
    with open(marker, "w") as out:
        json.dump({"tree": str(tree), "mount": str(tree / "mnt"), "pid": child.pid,
                   "staging": [str(base), str(result)], "bootstrap": bootstrap.pid}, out)
    time.sleep(600)
