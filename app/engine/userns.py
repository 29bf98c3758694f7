"""Rootless builds: the whole build runs as "root" inside a user + mount + pid namespace.

As root the engine mounts an overlay, chroots, and lets dpkg chown files to system users. A
normal user gets the same powers inside a user namespace that maps uid 0 to the user and uids
1..65535 to the user's subordinate range (/etc/subuid, /etc/subgid, via newuidmap), like
mmdebstrap's own unshare mode. Rather than wrapping single commands (mounts would not outlive
them), a child Python process runs the unchanged pipeline inside one namespace
(`unshare --map-auto --map-root-user --mount --pid --fork --kill-child --mount-proc`) and streams its events
back as JSON lines; cancel and inspect requests go to it over stdin.

Everything it mounts lives in its private mount namespace and disappears with it, and it is
pid 1 of its pid namespace, so killing it kills every process it started.
"""
from __future__ import annotations

import json
import os
import pwd
import queue
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import fields
from pathlib import Path
from typing import Callable

from . import process
from .context import BuildCancelled, BuildError, BuildEvents, BuildTimeout
from .result import Artifact, BuildResult
from .settings import EngineSettings

# --mount-proc: the build sandbox (bwrap) inside looks its children up in /proc by the pids of this namespace.
UNSHARE = ["unshare", "--map-auto", "--map-root-user", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc"]
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NEEDED_IDS = 65536  # 0 is the user itself; 1..65535 must map so that nobody (65534) and system users exist
# After a cancel the child kills its commands (<= 5 s) and removes its tree; past this it is SIGKILLed.
CHILD_GRACE = 6.0
PREFIX = '{"kiln"'
REPO_ROOT = Path(__file__).resolve().parents[2]


# ---- where are we --------------------------------------------------------------------------

def in_user_namespace() -> bool:
    """True inside a user namespace (uid 0 is not the host's root)."""
    try:
        first = Path("/proc/self/uid_map").read_text().split()
    except OSError:
        return False
    return first[:3] != ["0", "0", "4294967295"]


def mode_description() -> str:
    if not in_user_namespace():
        return "running as root: mmdebstrap root mode and overlay mounts on the host, build steps in the sandbox"
    try:
        ranges = [line.split() for line in Path("/proc/self/uid_map").read_text().splitlines()]
        mapped = ", ".join(f"{r[0]}-{int(r[0]) + int(r[2]) - 1} -> {r[1]}-{int(r[1]) + int(r[2]) - 1}"
                           for r in ranges)
    except (OSError, ValueError, IndexError):
        mapped = "?"
    return ("running rootless in a user namespace (uid map " + mapped + "): mmdebstrap root mode, overlay "
            "mounts and build steps inside a private mount and pid namespace")


# ---- can we --------------------------------------------------------------------------------

def _env() -> dict[str, str]:
    env = dict(os.environ)
    # Non-root PATHs often lack /usr/sbin (chroot, mkfs.ext4, mount helpers).
    env["PATH"] = env.get("PATH", "") + ":" + SYSTEM_PATH if env.get("PATH") else SYSTEM_PATH
    return env


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _sub_ranges(path: str, name: str, uid: int) -> list[tuple[int, int]]:
    out = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] in (name, str(uid)) and parts[1].isdigit() and parts[2].isdigit():
            out.append((int(parts[1]), int(parts[2])))
    return out


def _sysctl(name: str) -> str | None:
    try:
        return Path("/proc/sys/" + name.replace(".", "/")).read_text().strip()
    except OSError:
        return None


def _userns_disabled_reason(stderr: str) -> str:
    hints = []
    if _sysctl("kernel.unprivileged_userns_clone") == "0":
        hints.append("kernel.unprivileged_userns_clone is 0 (set it to 1)")
    if _sysctl("user.max_user_namespaces") == "0":
        hints.append("user.max_user_namespaces is 0 (raise it)")
    if _sysctl("kernel.apparmor_restrict_unprivileged_userns") == "1":
        hints.append("AppArmor restricts unprivileged user namespaces "
                     "(kernel.apparmor_restrict_unprivileged_userns=1)")
    detail = "; ".join(hints) or "the kernel or a security policy refuses them"
    return (f"unprivileged user namespaces are disabled here: `unshare --user --map-root-user` failed "
            f"({stderr.strip() or 'no message'}); {detail}")


PROBE_SCRIPT = r"""
step() { echo "KILN-STEP $1"; }
cd "$1"
step uidmap; cat /proc/self/uid_map; cat /proc/self/gid_map
step overlay
mkdir lower upper work merged && echo x > lower/f
mount -t overlay overlay -o lowerdir=lower,upperdir=upper,workdir=work merged || exit 1
step chown
chown 42:42 merged/f || exit 1
step whiteout
rm merged/f || exit 1
step proc
mkdir merged/proc && mount -t proc proc merged/proc || exit 1
step chroot
chroot / /bin/true || exit 1
step cleanup
umount merged/proc; umount merged; cd /; rm -rf "$1"/*
step done
"""

STEP_MEANING = {
    "uidmap": "creating a user namespace with the subordinate uid/gid range failed",
    "overlay": "mounting overlayfs inside a user namespace failed (needs Linux >= 5.11 and a filesystem "
               "that supports it under the data directory)",
    "chown": "chowning a file to a system user inside the user namespace failed",
    "whiteout": "deleting a file on the overlay (a whiteout device) failed inside the user namespace",
    "proc": "mounting /proc inside the user and pid namespace failed",
    "chroot": "chroot inside the user namespace failed",
}


def probe(settings: EngineSettings) -> None:
    """Check that a rootless build can work here; raise a BuildError naming exactly what is missing."""
    env = _env()
    user, uid = _user(), os.geteuid()
    if shutil.which("unshare", path=env["PATH"]) is None:
        raise BuildError("bootstrap", "building as a normal user needs `unshare` (util-linux) and it is not "
                                      "installed; run the build as root or install util-linux")
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "true"], capture_output=True, text=True,
                           env=env, timeout=30)
    if probe.returncode != 0:
        raise BuildError("bootstrap", "cannot build as a normal user: " + _userns_disabled_reason(probe.stderr)
                         + ". Run the build as root or enable user namespaces.")
    missing = [t for t in ("newuidmap", "newgidmap") if shutil.which(t, path=env["PATH"]) is None]
    if missing:
        raise BuildError("bootstrap", f"cannot build as user {user}: {' and '.join(missing)} not found; install "
                                      "the `uidmap` package (it maps the subordinate uid range into the namespace)")
    add = (f"add one as root with `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}`")
    for path, kind in (("/etc/subuid", "uid"), ("/etc/subgid", "gid")):
        ranges = _sub_ranges(path, user, uid)
        if not ranges:
            raise BuildError("bootstrap", f"cannot build as user {user}: {path} has no subordinate {kind} range "
                                          f"for {user}, which dpkg needs to give files to system users; {add}")
        if ranges[0][1] < NEEDED_IDS:
            raise BuildError("bootstrap", f"cannot build as user {user}: the first subordinate {kind} range in "
                                          f"{path} has only {ranges[0][1]} ids, {NEEDED_IDS} are needed; {add}")
    # The real thing, step by step, on the filesystem the build will use.
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    where = settings.tmp_dir / f"probe-{uuid.uuid4().hex[:8]}"
    where.mkdir()
    try:
        result = subprocess.run([*UNSHARE, "sh", "-c", PROBE_SCRIPT, "probe", str(where)], capture_output=True,
                                text=True, env=env, timeout=60)
    finally:
        _remove_scratch(where, env)
    out = (result.stdout + result.stderr).splitlines()
    steps = [line.split()[1] for line in out if line.startswith("KILN-STEP ")]
    if result.returncode != 0 or not steps or steps[-1] != "done":
        last = steps[-1] if steps else "uidmap"
        messages = [line for line in out if not line.startswith("KILN-STEP ") and line.strip()]
        tail = "; ".join(messages[-3:]) or f"exit status {result.returncode}"
        raise BuildError("bootstrap", f"cannot build as user {user}: {STEP_MEANING.get(last, last)}: {tail}")


def _remove_scratch(path: Path, env: dict[str, str] | None = None) -> None:
    """Delete a tree the namespace wrote: files owned by subordinate uids need the namespace to delete."""
    if not path.exists():
        return
    try:
        path.rmdir()
        return
    except OSError:
        pass
    subprocess.run([*UNSHARE[:3], "rm", "-rf", "--one-file-system", str(path)], capture_output=True,
                   env=env or _env(), timeout=600)
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)


# ---- outer side ----------------------------------------------------------------------------

def _settings_dict(settings: EngineSettings) -> dict:
    return {f.name: str(v) if isinstance(v := getattr(settings, f.name), Path) else v
            for f in fields(settings)}


def build_in_user_namespace(recipe: dict, out_dir: Path, formats: list[str], *, events: BuildEvents,
                            cancel: threading.Event, deadline: float | None, settings: EngineSettings,
                            inspect: Callable[[Path], None] | None, package_lock: dict[str, str] | None = None,
                            locked_at: str | None = None):
    """Run pipeline.build in a child inside a fresh user namespace; same results and errors as in-process."""
    probe(settings)
    env = _env()
    env["PYTHONPATH"] = str(REPO_ROOT) + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    scratch = settings.tmp_dir / f"userns-{uuid.uuid4().hex[:12]}"
    scratch.mkdir(parents=True)
    child_settings = _settings_dict(settings) | {"scratch_dir": str(scratch)}
    request = {"recipe": recipe, "out_dir": str(Path(out_dir).resolve()), "formats": formats,
               "timeout": None if deadline is None else max(1.0, deadline - time.monotonic()),
               "settings": child_settings, "inspect": inspect is not None,
               "package_lock": package_lock, "locked_at": locked_at}
    events.log("resolve", "info", f"not running as root: building in a user namespace as {_user()}")

    state = {"stage": "resolve", "final": None}
    inspections: queue.Queue[str] = queue.Queue()
    try:
        proc = subprocess.Popen([*UNSHARE, sys.executable, "-m", "app.engine.userns_child"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    except OSError as err:
        _remove_scratch(scratch, env)
        raise BuildError("bootstrap", f"cannot start the user namespace: {err}") from None

    def send(message: dict) -> None:
        try:
            proc.stdin.write((json.dumps(message) + "\n").encode())  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError, ValueError):
            pass

    def pump() -> None:
        for raw in proc.stdout:  # type: ignore[union-attr]
            line = raw.decode("utf-8", "replace").rstrip("\n")
            msg = None
            if line.startswith(PREFIX):
                try:
                    msg = json.loads(line)
                except ValueError:
                    msg = None
            try:
                if msg is None:
                    if line.strip():
                        events.log(state["stage"], "debug", line)
                elif msg["kiln"] == "log":
                    events.log(msg["stage"], msg["level"], msg["message"])
                elif msg["kiln"] == "progress":
                    events.progress(msg["stage"], msg["percent"], msg["message"])
                elif msg["kiln"] == "stage":
                    if msg["status"] == "running":
                        state["stage"] = msg["stage"]
                    events.stage(msg["stage"], msg["status"])
                elif msg["kiln"] == "inspect":
                    inspections.put(msg["path"])
                elif msg["kiln"] in ("result", "error"):
                    state["final"] = msg
            except Exception:  # a broken event sink must not wedge the pipe
                pass

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    send(request)
    stopped: str | None = None
    try:
        while proc.poll() is None:
            try:
                path = inspections.get(timeout=0.1)
            except queue.Empty:
                path = None
            if path is not None:
                send(_run_inspect(inspect, proc.pid, path))
            if cancel.is_set():
                stopped = "cancel"
            elif deadline is not None and time.monotonic() > deadline + 1:
                stopped = "timeout"
            if stopped:
                send({"control": "cancel"})
                limit = time.monotonic() + CHILD_GRACE
                while proc.poll() is None and time.monotonic() < limit:
                    time.sleep(0.1)
                break
    finally:
        if proc.poll() is None:
            process.kill_group(proc, grace=0.5)  # SIGKILL of unshare takes the whole pid namespace down
        proc.wait()
        reader.join(timeout=5)
        _remove_scratch(scratch, env)

    stage = state["stage"]
    if stopped == "timeout":
        raise BuildTimeout(stage)
    if stopped == "cancel":
        raise BuildCancelled(stage)
    final = state["final"]
    if final is None:
        raise BuildError(stage, f"the build process in the user namespace ended with exit status {proc.returncode} "
                                "without a result (see the log above)")
    if final["kiln"] == "error":
        cls = {"BuildCancelled": BuildCancelled, "BuildTimeout": BuildTimeout}.get(final["type"])
        if cls is not None:
            raise cls(final["stage"], final["reason"])
        raise BuildError(final["stage"], final["reason"], user_error=final["user_error"])
    data = final["result"]
    artifacts = [Artifact(a["kind"], Path(a["path"]), a["size"], a["sha256"]) for a in data["artifacts"]]
    return BuildResult(artifacts, data["manifest"], data["cached"], data["stage_timings"])


def _run_inspect(inspect: Callable[[Path], None] | None, pid: int, path: str) -> dict:
    """Call the caller's inspect() on the child's tree, seen through its mount namespace."""
    if inspect is None:
        return {"control": "inspected", "error": None}
    tree = Path(f"/proc/{pid}/root") / path.lstrip("/")
    try:
        inspect(tree)
    except BuildError as err:
        return {"control": "inspected", "error": {"build_error": True, "stage": err.stage, "reason": err.reason,
                                                  "user_error": err.user_error}}
    except Exception as err:
        return {"control": "inspected", "error": {"build_error": False, "reason": str(err)}}
    return {"control": "inspected", "error": None}
