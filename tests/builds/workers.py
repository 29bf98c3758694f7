"""A real `python worker.py` process for the end-to-end tests, and helpers to watch what it leaves behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """`python worker.py` in its own session, configured like production through the environment."""

    def __init__(self, app, engine_data_dir: Path, log_path: Path, name: str, queues: tuple[str, ...] = (),
                 settings: dict[str, str] | None = None):
        """`settings`: environment variables on top of the test defaults (a fault test's own Redis, data dir...)."""
        env = dict(os.environ)
        env.update({
            "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
            "REDIS_URL": app.config["REDIS_URL"],
            "KILN_DATA_DIR": str(engine_data_dir),
            "KILN_ARTIFACTS_DIR": app.config["KILN_ARTIFACTS_DIR"],
            "KILN_INSTANCE_PATH": str(log_path.parent / f"instance-{name}"),
            "SECRET_KEY": app.config["SECRET_KEY"],
            "KILN_WORKER_NAME": name,
            # Short heartbeat so a killed worker is noticed in seconds, not a minute.
            "KILN_BUILD_HEARTBEAT_INTERVAL": "1",
            "KILN_BUILD_HEARTBEAT_TTL": "6",
            "KILN_BUILD_REAPER_INTERVAL": "2",
            # CI machines are small and shared: give a TCG boot room before calling it a failure.
            "KILN_TEST_BOOT_TIMEOUT": "600",
        })
        env.update(settings or {})
        self.log_path = log_path
        self.log = log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "worker.py"), *queues], cwd=ROOT, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, sig=signal.SIGKILL) -> None:
        """Signal the worker and every descendant: RQ's work horse and the engine's commands run in
        sessions of their own, and a machine or container dying takes all of them."""
        for pid in [self.proc.pid] + _descendants(self.proc.pid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=30)

    def kill_python(self) -> None:
        """SIGKILL the worker and its work horse only, as the OOM killer or a `kill -9` would: the commands
        they started in sessions of their own live on."""
        for pid in [self.proc.pid] + _children(self.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.kill(signal.SIGTERM)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)  # a worker that cannot stop (its Redis gone) must not outlive the test
        self.log.close()


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _procs_under(path: Path) -> list[tuple[int, str]]:
    """Processes whose command line, working directory or chroot is inside `path`."""
    found = []
    needle = str(path)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            where = [os.readlink(entry / "cwd"), os.readlink(entry / "root")]
        except OSError:
            continue
        if needle in cmdline or any(w.startswith(needle) for w in where):
            found.append((int(entry.name), cmdline.strip()[:200]))
    return found


def _kill_processes_under(path: Path) -> None:
    for pid, _ in _procs_under(path):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _unmount_under(path: Path) -> None:
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(str(path))), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True)


def wait_for(fn, timeout: float, what: str, interval: float = 1.0):
    # API polls stay well under the default 100 requests/minute per user.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


