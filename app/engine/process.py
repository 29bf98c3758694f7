"""The one way the engine runs external commands.

Each command gets its own process group so a cancel or timeout can kill everything it
spawned (mmdebstrap -> apt -> dpkg -> maintainer scripts), and its output is streamed
line by line to the caller instead of being buffered until exit.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable, Sequence

LineSink = Callable[[str], None]
KILL_GRACE = 3.0


class CommandFailed(Exception):
    def __init__(self, argv: Sequence[str], returncode: int, tail: list[str]):
        self.argv = list(argv)
        self.returncode = returncode
        self.tail = tail
        super().__init__(f"{argv[0]} exited with status {returncode}")


class CommandCancelled(Exception):
    pass


class CommandTimedOut(Exception):
    pass


def kill_group(proc: subprocess.Popen, grace: float = KILL_GRACE) -> None:
    """SIGTERM the whole group, then SIGKILL whatever is left after `grace` seconds."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = proc.pid
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc.poll() is not None and not _group_alive(pgid):
                return
            time.sleep(0.05)
    # Children that outlived the leader keep the group id; one last sweep.
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def processes_under(path: Path) -> list[int]:
    """Processes whose command line names something inside `path`, or whose working or root directory is in it."""
    inside = re.compile(re.escape(str(path)) + r"(?:/|$|[\s,:=])")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            where = [os.readlink(entry / "cwd"), os.readlink(entry / "root")]
        except OSError:
            continue
        if inside.search(cmdline) or any(inside.match(w) for w in where):
            found.append(int(entry.name))
    return found


def kill_processes_under(path: Path, timeout: float = 10.0) -> int:
    """SIGKILL every process found under `path` until none is left; returns how many were killed."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = processes_under(path)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    return len(killed)


def run(
    argv: Sequence[str],
    *,
    on_line: LineSink | None = None,
    cancel: threading.Event | None = None,
    deadline: float | None = None,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
    stdin_data: bytes | None = None,
    check: bool = True,
    capture: bool = False,
    inherit_env: bool = True,
    pass_fds: Sequence[int] = (),
) -> tuple[int, list[str]]:
    """Run argv, streaming merged stdout+stderr to on_line.

    `deadline` is an absolute time.monotonic() value. Returns (returncode, lines) where
    lines is every output line if capture=True, else the last 40 (for error messages).
    With inherit_env=False the command sees only `env` (the sandbox: never the worker's secrets).
    """
    if cancel is not None and cancel.is_set():
        raise CommandCancelled()
    full_env = dict(os.environ) if inherit_env else {}
    full_env.update({"LC_ALL": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"})
    if env:
        full_env.update(env)
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=full_env,
        cwd=cwd,
        start_new_session=True,
        pass_fds=tuple(pass_fds),
    )
    lines: list[str] | deque[str] = [] if capture else deque(maxlen=40)

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line)
            if on_line is not None and line.strip():
                try:
                    on_line(line)
                except Exception:  # a broken sink must not wedge the pump
                    pass

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    if stdin_data is not None:
        def feed() -> None:
            try:
                proc.stdin.write(stdin_data)  # type: ignore[union-attr]
                proc.stdin.close()  # type: ignore[union-attr]
            except (BrokenPipeError, OSError):
                pass
        threading.Thread(target=feed, daemon=True).start()

    stopped: type[Exception] | None = None
    try:
        while proc.poll() is None:
            if cancel is not None and cancel.is_set():
                stopped = CommandCancelled
                break
            if deadline is not None and time.monotonic() > deadline:
                stopped = CommandTimedOut
                break
            time.sleep(0.1)
    finally:
        if stopped is not None or proc.poll() is None:
            kill_group(proc)
        else:
            # The leader exited; stragglers it left in the group (daemons started by
            # maintainer scripts) would keep files open in our temp tree.
            if _group_alive(proc.pid):
                kill_group(proc, grace=1.0)
        proc.wait()
        reader.join(timeout=5)
    if stopped is CommandCancelled:
        raise CommandCancelled()
    if stopped is CommandTimedOut:
        raise CommandTimedOut()
    if check and proc.returncode != 0:
        raise CommandFailed(argv, proc.returncode, list(lines)[-40:])
    return proc.returncode, list(lines)
