"""The inner side of a rootless build: `python -m app.engine.userns_child`, started by userns inside a fresh
user namespace. It runs pipeline.build and speaks JSON lines to the outer side (log/progress/stage events,
inspect requests, the result or the error). Its own module, so the pipeline can import userns's outer side
without userns importing the pipeline back."""
from __future__ import annotations

import json
import os
import queue
import sys
import threading
from dataclasses import fields
from pathlib import Path
from typing import Callable

from .context import BuildCancelled, BuildError, BuildEvents
from .pipeline import build
from .settings import EngineSettings


class _PipeEvents(BuildEvents):
    def __init__(self, write: Callable[[dict], None]):
        self.write = write

    def log(self, stage: str, level: str, message: str) -> None:
        self.write({"kiln": "log", "stage": stage, "level": level, "message": message})

    def progress(self, stage: str, percent: int, message: str = "") -> None:
        self.write({"kiln": "progress", "stage": stage, "percent": percent, "message": message})

    def stage(self, stage: str, status: str) -> None:
        self.write({"kiln": "stage", "stage": stage, "status": status})


class _InspectFailed(Exception):
    pass


def _child_main() -> int:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr  # stray prints must not corrupt the protocol
    lock = threading.Lock()

    def write(message: dict) -> None:
        with lock:
            out.write(json.dumps(message) + "\n")
            out.flush()

    request = json.loads(sys.stdin.readline())
    cancel = threading.Event()
    replies: queue.Queue[dict] = queue.Queue()

    def control() -> None:
        for line in sys.stdin:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("control") == "cancel":
                cancel.set()
            elif msg.get("control") == "inspected":
                replies.put(msg)
        cancel.set()  # the outer process is gone: stop and clean up

    threading.Thread(target=control, daemon=True).start()

    def inspect(tree: Path) -> None:
        write({"kiln": "inspect", "path": str(tree)})
        while True:
            try:
                reply = replies.get(timeout=0.2)
                break
            except queue.Empty:
                if cancel.is_set():
                    raise BuildCancelled("configure") from None
        err = reply["error"]
        if err is None:
            return
        if err["build_error"]:
            raise BuildError(err["stage"], err["reason"], user_error=err["user_error"])
        raise _InspectFailed(err["reason"])

    values = dict(request["settings"])
    for f in fields(EngineSettings):
        if f.name in ("data_dir", "scratch_dir") and values.get(f.name) is not None:
            values[f.name] = Path(values[f.name])
    settings = EngineSettings(**values)
    try:
        result = build(request["recipe"], Path(request["out_dir"]), request["formats"], events=_PipeEvents(write),
                       cancel=cancel, timeout=request["timeout"], settings=settings,
                       inspect=inspect if request["inspect"] else None,
                       package_lock=request.get("package_lock"), locked_at=request.get("locked_at"))
    except BuildError as err:
        write({"kiln": "error", "type": type(err).__name__, "stage": err.stage, "reason": err.reason,
               "user_error": err.user_error})
        return 1
    write({"kiln": "result", "result": {
        "artifacts": [{"kind": a.kind, "path": str(a.path), "size": a.size, "sha256": a.sha256}
                      for a in result.artifacts],
        "manifest": result.manifest, "cached": result.cached, "stage_timings": result.stage_timings}})
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
