"""The build sandbox: everything that runs inside the image tree runs in a bubblewrap container.

Like osbuild's build roots, each step (apt, maintainer scripts, `users`, `files`, `commands`,
service enabling) gets its own mount, PID, IPC, UTS and network namespaces, a fresh /proc of
its PID namespace, a minimal /dev, the image tree as its root and nothing else of the host
(the build's .deb directory is mounted read-only where apt reads it), an environment built
from an allow-list, and only the capabilities dpkg and user management need. Only the apt
download step shares the host's network, and it runs nothing but apt; every other step has
just `lo`.

Each step also has a memory limit, a process-count limit and a wall-clock limit. The limits
come from a child of the worker's own cgroup (v2, or v1 where that is what the host has) and
fall back to rlimits (prlimit) where no cgroup can be created, as in rootless mode; rlimits
cannot bind a process-count limit on the host's root, so that combination is refused.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from . import process
from .context import BuildCancelled, BuildContext, BuildError, BuildTimeout
from .userns import in_user_namespace

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The whole environment of a step: never the worker's own (it holds the app's secrets).
ENV = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TERM": "dumb",
       "DEBIAN_FRONTEND": "noninteractive"}
# What dpkg, maintainer scripts and user management need as root of the tree. Not kept: mounting,
# raw I/O, device nodes (CAP_MKNOD could recreate a host disk), modules, ptrace, clock, reboot.
CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
        "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_SETFCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
        "CAP_AUDIT_WRITE"]
SHM_BYTES = 64 * 1024**2  # each tmpfs (/dev/shm, /run): memory a step could fill outside its own processes
NETWORK_ERROR = re.compile(
    r"Network is unreachable|Temporary failure (?:in name resolution|resolving)|Could not resolve|"
    r"Name or service not known|No route to host|Connection refused|Could not connect|"
    r"Failed to establish a new connection|Cannot assign requested address", re.I)
MEMORY_ERROR = re.compile(r"Cannot allocate memory|memory exhausted|MemoryError|Out of memory", re.I)
FORK_ERROR = re.compile(r"fork: (?:retry: )?Resource temporarily unavailable|Cannot fork", re.I)
POLL = 0.2


class SandboxUnavailable(BuildError):
    """The sandbox cannot be set up on this host: an infrastructure failure naming what is missing."""

    def __init__(self, stage: str, reason: str):
        super().__init__(stage, f"the build sandbox cannot be set up here: {reason}", user_error=False)


@dataclass
class Limits:
    memory_mb: int
    max_processes: int
    step_timeout: float


# ---- cgroups ------------------------------------------------------------------------------

def _own_cgroups() -> list[tuple[str, str]]:
    """(controllers, path) of this process, from /proc/self/cgroup."""
    out = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            parts = line.split(":", 2)
            if len(parts) == 3:
                out.append((parts[1], parts[2]))
    return out


def _cgroup_mounts() -> list[tuple[str, str, str, set[str]]]:
    """(fstype, mount root, mount point, super options) of every cgroup mount."""
    out = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            parts, rparts = left.split(), right.split()
            if len(parts) > 4 and len(rparts) > 2 and rparts[0] in ("cgroup", "cgroup2"):
                out.append((rparts[0], parts[3], parts[4], set(rparts[2].split(","))))
    return out


def _join(mount_point: str, mount_root: str, path: str) -> Path | None:
    if mount_root != "/" and not (path == mount_root or path.startswith(mount_root.rstrip("/") + "/")):
        return None
    rel = path[len(mount_root):] if mount_root != "/" else path
    return Path(mount_point) / rel.lstrip("/")


def _writable(d: Path) -> bool:
    return d.is_dir() and os.access(d, os.W_OK)


def cgroup_parents() -> tuple[str, dict[str, Path]] | None:
    """("v2"|"v1", {"memory": dir, "pids": dir}) under which this process may create limited children."""
    own, mounts = _own_cgroups(), _cgroup_mounts()
    for controllers, path in own:
        if controllers != "":
            continue
        for fstype, root, point, _ in mounts:
            if fstype != "cgroup2":
                continue
            d = _join(point, root, path)
            if d is None or not _writable(d):
                continue
            try:
                enabled = set((d / "cgroup.subtree_control").read_text().split())
            except OSError:
                continue
            if {"memory", "pids"} <= enabled:
                return "v2", {"memory": d, "pids": d}
    found: dict[str, Path] = {}
    for controller in ("memory", "pids"):
        for controllers, path in own:
            if controller not in controllers.split(","):
                continue
            for fstype, root, point, opts in mounts:
                if fstype == "cgroup" and controller in opts:
                    d = _join(point, root, path)
                    if d is not None and _writable(d) and (d / "cgroup.procs").exists():
                        found[controller] = d
    if len(found) == 2:
        return "v1", found
    return None


STEP_CGROUP_PREFIX = "kiln-step-"
# A step joins its cgroup within milliseconds of creating it, and removes it when it ends; an empty one
# older than this was left by a process that was SIGKILLed mid-step (a killed worker), so nobody removes it.
STALE_STEP_CGROUP_SECONDS = 60.0


def remove_stale_step_cgroups(parents: dict[str, Path], min_age: float = STALE_STEP_CGROUP_SECONDS) -> list[Path]:
    """Remove the empty step cgroups that killed processes left under `parents`; returns those removed.
    A cgroup that still holds processes, or is younger than `min_age` (another step about to join it), stays."""
    removed = []
    now = time.time()
    for parent in dict.fromkeys(parents.values()):
        for d in parent.glob(STEP_CGROUP_PREFIX + "*"):
            try:
                if now - d.stat().st_mtime < min_age or (d / "cgroup.procs").read_text().strip():
                    continue
                d.rmdir()  # the kernel refuses (EBUSY) if a process joined meanwhile
                removed.append(d)
            except OSError:
                continue
    return removed


class StepCgroup:
    """One throwaway cgroup (or a pair, on v1) holding one step, with its limits and their events."""

    def __init__(self, version: str, parents: dict[str, Path], limits: Limits):
        self.version = version
        remove_stale_step_cgroups(parents)
        name = f"{STEP_CGROUP_PREFIX}{uuid.uuid4().hex[:12]}"
        self.dirs = {k: parent / name for k, parent in parents.items()}
        try:
            self._create(version, limits)
        except OSError:
            self.close()
            raise

    def _create(self, version: str, limits: Limits) -> None:
        for d in dict.fromkeys(self.dirs.values()):
            d.mkdir()
        memory = limits.memory_mb * 1024**2
        mem, pids = self.dirs["memory"], self.dirs["pids"]
        if version == "v2":
            (mem / "memory.max").write_text(str(memory))
            if (mem / "memory.swap.max").exists():
                (mem / "memory.swap.max").write_text("0")
        else:
            (mem / "memory.limit_in_bytes").write_text(str(memory))
            if (mem / "memory.memsw.limit_in_bytes").exists():
                with contextlib.suppress(OSError):  # swap accounting may be off
                    (mem / "memory.memsw.limit_in_bytes").write_text(str(memory))
        (pids / "pids.max").write_text(str(limits.max_processes))

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in dict.fromkeys(self.dirs.values())]

    @staticmethod
    def _counter(path: Path, key: str) -> int:
        try:
            for line in path.read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def oom_kills(self) -> int:
        mem = self.dirs["memory"]
        if self.version == "v2":
            return self._counter(mem / "memory.events", "oom_kill")
        return self._counter(mem / "memory.oom_control", "oom_kill")

    def pids_max_hits(self) -> int:
        return self._counter(self.dirs["pids"] / "pids.events", "max")

    def close(self) -> None:
        """Kill whatever is left and remove the cgroup(s)."""
        for d in dict.fromkeys(self.dirs.values()):
            for _ in range(50):
                try:
                    pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
                except (OSError, ValueError):
                    pids = []
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)


# ---- the sandbox --------------------------------------------------------------------------

# Joins the step's cgroup(s) before anything of the step runs, then becomes the sandbox.
JOIN = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'


class Sandbox:
    """Runs shell scripts inside one image tree; one per build (see module docstring)."""

    def __init__(self, ctx: BuildContext, root: Path):
        self.ctx = ctx
        self.root = Path(root)
        # Set on top of ENV for every later step (the configure stage adds SOURCE_DATE_EPOCH).
        self.env: dict[str, str] = {}
        s = ctx.settings
        self.limits = Limits(s.step_memory_mb, s.step_max_processes, s.step_timeout)
        self.bwrap = shutil.which("bwrap", path=PATH)
        if self.bwrap is None:
            raise SandboxUnavailable(ctx.stage, "`bwrap` is not installed (Debian package bubblewrap)")
        self.cgroups = cgroup_parents()
        if self.cgroups is None:
            if not in_user_namespace() and os.geteuid() == 0:
                raise SandboxUnavailable(
                    ctx.stage, "no cgroup with the memory and pids controllers can be created under the worker's "
                    "own cgroup (cgroup v2 with both controllers enabled for its children, or writable cgroup v1 "
                    "memory and pids hierarchies), and the process-count rlimit does not bind root; run the "
                    "worker in a delegated cgroup or as a normal user (rootless mode)")
            if shutil.which("prlimit", path=PATH) is None:
                raise SandboxUnavailable(ctx.stage, "no usable cgroup and `prlimit` (util-linux) is not installed")

    def describe(self) -> str:
        how = f"cgroup {self.cgroups[0]}" if self.cgroups else "rlimits"
        return (f"build steps run in a bubblewrap sandbox: private /proc and /dev, no host files, no network "
                f"(only apt's download step reaches the mirror), "
                f"{self.limits.memory_mb} MiB memory and {self.limits.max_processes} processes per step ({how}), "
                f"{self.limits.step_timeout:.0f} s per step")

    def _argv(self, script: str, network: bool, binds: Sequence[tuple[Path, str, bool]], tmpfs: Sequence[str],
              status_fd: int) -> list[str]:
        argv = [self.bwrap, "--bind", str(self.root), "/", "--proc", "/proc", "--dev", "/dev",
                "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm", "--size", str(SHM_BYTES), "--tmpfs", "/run",
                "--dir", "/run/lock",
                "--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "kiln-build",
                "--die-with-parent", "--new-session", "--clearenv", "--cap-drop", "ALL"]
        for cap in CAPS:
            argv += ["--cap-add", cap]
        for key, value in {**ENV, **self.env}.items():
            argv += ["--setenv", key, value]
        if network:
            # Name resolution for the mirror, through the host's resolver configuration (read-only).
            if Path("/etc/resolv.conf").exists():
                argv += ["--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf"]
        else:
            argv.append("--unshare-net")
        for src, dest, writable in binds:
            argv += ["--bind" if writable else "--ro-bind", str(src), dest]
        for dest in tmpfs:
            argv += ["--size", str(SHM_BYTES), "--tmpfs", dest]
        argv += ["--chdir", "/", "--json-status-fd", str(status_fd), "/bin/sh", "-ec", script]
        return argv

    def run(self, script: str, *, what: str, network: bool = False, user_error: bool = False,
            binds: Sequence[tuple[Path, str, bool]] = (), tmpfs: Sequence[str] = (),
            stdin_data: bytes | None = None, quiet: bool = False, check: bool = True) -> tuple[int, list[str]]:
        """Run `script` with /bin/sh -e in the tree. Failures raise BuildError naming `what`."""
        ctx = self.ctx
        ctx.check()
        limits = self.limits
        cgroup = None
        if self.cgroups:
            try:
                cgroup = StepCgroup(self.cgroups[0], self.cgroups[1], limits)
            except OSError as err:
                raise SandboxUnavailable(ctx.stage, f"cannot create the step's cgroup: {err}") from None
        read_fd, write_fd = os.pipe()
        stop = threading.Event()
        why: dict[str, str] = {}
        finished = threading.Event()

        def watch() -> None:
            # A step that hits a limit is stopped at once: a fork bomb would otherwise churn until the timeout.
            while not finished.wait(POLL):
                if ctx.cancel.is_set():
                    why["stop"] = "cancel"
                elif cgroup is not None and cgroup.pids_max_hits():
                    why["stop"] = "pids"
                elif cgroup is not None and cgroup.oom_kills():
                    why["stop"] = "memory"
                if "stop" in why:
                    stop.set()
                    return

        step_deadline = time.monotonic() + limits.step_timeout
        deadline = min(step_deadline, ctx.deadline) if ctx.deadline else step_deadline
        argv = self._argv(script, network, binds, tmpfs, write_fd)
        if cgroup is not None:
            argv = ["/bin/sh", "-c", JOIN, "kiln-join", *cgroup.procs_files, "--", *argv]
        else:
            argv = ["prlimit", f"--nproc={limits.max_processes}", f"--data={limits.memory_mb * 1024**2}",
                    "--", *argv]
        on_line = None if quiet else (lambda line: ctx.events.log(ctx.stage, "debug", line))
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        outcome: str | None = None
        try:
            code, lines = process.run(argv, on_line=on_line, cancel=stop, deadline=deadline, stdin_data=stdin_data,
                                      check=False, env=ENV, inherit_env=False, pass_fds=(write_fd,))
        except process.CommandCancelled:
            outcome, code, lines = why.get("stop", "cancel"), -9, []
        except process.CommandTimedOut:
            outcome, code, lines = ("timeout" if ctx.deadline is None or step_deadline < ctx.deadline
                                    else "build-timeout"), -9, []
        except FileNotFoundError as err:
            raise SandboxUnavailable(ctx.stage, f"`{err.filename}` is not installed") from None
        finally:
            finished.set()
            watcher.join()
            os.close(write_fd)
            status = _read_status(read_fd)
            if cgroup is not None:
                if outcome is None and cgroup.oom_kills():
                    outcome = "memory"
                if outcome is None and code != 0 and cgroup.pids_max_hits():
                    outcome = "pids"
                cgroup.close()
        if outcome == "cancel":
            raise BuildCancelled(ctx.stage)
        if outcome == "build-timeout":
            raise BuildTimeout(ctx.stage)
        if outcome == "timeout":
            raise BuildError(ctx.stage, f"{what} was stopped: it ran longer than the {limits.step_timeout:.0f} s "
                                        "a build step may take", user_error=True)
        if outcome == "memory":
            raise BuildError(ctx.stage, f"{what} was killed: it used more than the {limits.memory_mb} MiB of memory "
                                        "a build step may use", user_error=True)
        if outcome == "pids":
            raise BuildError(ctx.stage, f"{what} was stopped: it started more than the {limits.max_processes} "
                                        "processes a build step may run at once", user_error=True)
        if "child-pid" not in status:
            errors = [line for line in lines if line.startswith("bwrap:")] or lines[-3:] or [f"exit status {code}"]
            raise SandboxUnavailable(ctx.stage, "bubblewrap failed to start the step (" + "; ".join(errors) + ")")
        if code == 0 or not check:
            return code, lines
        tail = "\n".join(lines[-15:])
        hint = self.hint(lines, network)
        raise BuildError(ctx.stage, f"{what} failed with exit code {code}" + (f" ({hint})" if hint else "")
                         + f"\n{tail}", user_error=user_error)

    def hint(self, lines: list[str], network: bool = False) -> str:
        """Why a failed step probably failed, when its output shows it ran into the sandbox's walls."""
        tail = "\n".join(lines[-15:])
        if not network and NETWORK_ERROR.search(tail):
            return ("build steps have no network: packages are downloaded before they run and installed from "
                    "local files, so a command cannot fetch anything")
        if MEMORY_ERROR.search(tail):
            return f"a build step may use at most {self.limits.memory_mb} MiB of memory"
        if FORK_ERROR.search(tail):
            return f"a build step may run at most {self.limits.max_processes} processes at once"
        return ""


def _read_status(fd: int) -> dict:
    """bwrap's --json-status-fd: {"child-pid": N} once the sandbox is up, then {"exit-code": N}."""
    data = b""
    try:
        os.set_blocking(fd, False)
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    status: dict = {}
    for line in data.decode("utf-8", "replace").splitlines():
        with contextlib.suppress(ValueError):
            status.update(json.loads(line))
    return status
