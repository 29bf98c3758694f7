"""Builds as a normal user: the pipeline runs inside a user namespace with a subordinate uid range.

Each test creates a throwaway system user (so it needs root to run) and removes it afterwards.
"""
from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from app.engine.settings import host_mirror
from app.engine.userns import in_user_namespace, mode_description

REPO = Path(__file__).resolve().parents[2]
needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("useradd") is None,
                                reason="creating a throwaway user needs root and useradd")

RECIPE = """name: rootless
format: rootfs
release: trixie
hostname: rootless-host
users:
  - name: ops
    groups: [kilnops]
files:
  - path: /etc/kiln/hello.txt
    content: "hello\\n"
    mode: "0600"
    owner: ops
"""


def _free_subid_start() -> int:
    end = 400000
    for path in ("/etc/subuid", "/etc/subgid"):
        with contextlib.suppress(OSError):
            for line in Path(path).read_text().splitlines():
                parts = line.split(":")
                if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                    end = max(end, int(parts[1]) + int(parts[2]))
    return end


@contextlib.contextmanager
def throwaway_user(subids: bool):
    """A system user with a world-traversable scratch dir; with a 65536-id subordinate range if asked."""
    name = f"kiln{uuid.uuid4().hex[:8]}"
    scratch = Path(tempfile.mkdtemp(prefix="kiln-rootless-", dir="/var/tmp"))
    scratch.chmod(0o755)
    subprocess.run(["useradd", "--system", "--create-home", "--home-dir", str(scratch / "home"),
                    "--shell", "/bin/sh", name], check=True, capture_output=True)
    span = None
    try:
        if subids:
            start = _free_subid_start()
            span = f"{start}-{start + 65535}"
            subprocess.run(["usermod", "--add-subuids", span, "--add-subgids", span, name], check=True,
                           capture_output=True)
        work = scratch / "work"
        work.mkdir()
        shutil.chown(work, name, name)
        yield name, work
    finally:
        uid = pwd.getpwnam(name).pw_uid
        left = subprocess.run(["ps", "-u", str(uid), "-o", "pid="], capture_output=True, text=True).stdout.split()
        for pid in left:  # only this throwaway user's processes, by pid
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        if span:
            subprocess.run(["usermod", "--del-subuids", span, "--del-subgids", span, name], capture_output=True)
        subprocess.run(["userdel", name], capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)


def user_python(user: str) -> tuple[str, dict[str, str]]:
    """The project's interpreter if the user may run it, else the system python of the same version
    with the venv's packages (a venv built from an interpreter under /root is closed to other users)."""
    venv = str(REPO / ".venv/bin/python")
    if subprocess.run(["runuser", "-u", user, "--", venv, "-c", "import flask"], capture_output=True).returncode == 0:
        return venv, {}
    system = f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"
    if not os.access(system, os.X_OK):
        pytest.skip(f"the venv's interpreter is not usable by {user} and {system} does not exist")
    return system, {"PYTHONPATH": f"{REPO}:{sysconfig.get_paths()['purelib']}"}


def user_cmd(user: str, work: Path, *args: str) -> list[str]:
    python, extra = user_python(user)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(work), "LANG": "C.UTF-8",
           "KILN_DATA_DIR": str(work / "data"), "KILN_DEBIAN_MIRROR": host_mirror(), **extra}
    return ["runuser", "-u", user, "--", "env", "-i", *[f"{k}={v}" for k, v in env.items()], python, *args]


def tar(tarball: Path, *args: str) -> str:
    return subprocess.run(["tar", "--zstd", *args, "-f", str(tarball)], capture_output=True, text=True,
                          check=True).stdout


def test_host_root_is_not_a_user_namespace():
    if os.geteuid() == 0:
        assert not in_user_namespace()
        assert mode_description().startswith("running as root")


@needs_root
def test_user_without_subordinate_ids_gets_told_how_to_add_them():
    with throwaway_user(subids=False) as (user, work):
        recipe = work / "recipe.yaml"
        recipe.write_text(RECIPE.replace("rootless-host", f"h{uuid.uuid4().hex[:8]}"))
        result = subprocess.run(user_cmd(user, work, "-m", "app.engine", "build", str(recipe), "--out",
                                         str(work / "out"), "--no-test"),
                                cwd=REPO, capture_output=True, text=True, timeout=120)
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"/etc/subuid has no subordinate uid range for {user}" in result.stderr
        assert f"usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}" in result.stderr


@needs_root
@pytest.mark.slow
def test_rootless_rootfs_build_then_cancel_leaves_nothing(tmp_path):
    with throwaway_user(subids=True) as (user, work):
        recipe = work / "recipe.yaml"
        recipe.write_text(RECIPE)
        out = work / "out"
        result = subprocess.run(user_cmd(user, work, "-m", "app.engine", "build", str(recipe), "--out", str(out),
                                         "--format", "rootfs", "--no-test"),
                                cwd=REPO, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "running rootless in a user namespace" in result.stdout

        tarball = out / "rootless.rootfs.tar.zst"
        assert tarball.is_file() and tarball.stat().st_uid == pwd.getpwnam(user).pw_uid
        assert tar(tarball, "-xO", "./etc/hostname") == "rootless-host\n"
        owners = {}
        for line in tar(tarball, "-tv", "--numeric-owner").splitlines():
            fields = line.split()
            owners[fields[-1]] = fields[1]
        # Namespace root is root in the image, not the building user or a subordinate uid...
        assert owners["./etc/passwd"] == "0/0" and owners["./usr/bin/dpkg"] == "0/0"
        # ...and dpkg could hand files to system users: apt's download dir belongs to _apt (uid 42),
        # /etc/shadow to group shadow (gid 42), the recipe's file to the recipe's user.
        passwd = tar(tarball, "-xO", "./etc/passwd")
        ids = {line.split(":")[0]: line.split(":")[2] for line in passwd.splitlines()}
        assert owners["./var/cache/apt/archives/partial/"] == f"{ids['_apt']}/0" != "0/0"
        assert owners["./etc/shadow"] == "0/42"
        assert owners["./etc/kiln/hello.txt"] == f"{ids['ops']}/0"
        data = work / "data"
        assert list((data / "tmp").iterdir()) == []

        # Through the library: inspect() runs in the caller and sees the tree in the namespace's mounts.
        script = (
            "import os, sys; from pathlib import Path\n"
            "from app.engine.pipeline import build\n"
            "from app.engine.settings import EngineSettings\n"
            "seen = []\n"
            "r = build({'name': 'insp', 'format': 'rootfs', 'hostname': 'insp-host'}, Path(sys.argv[1]),\n"
            "          settings=EngineSettings.from_config(os.environ), inspect=lambda t: seen.append((t / 'etc/hostname').read_text()))\n"
            "print('SEEN', seen, r.cached)\n")
        result = subprocess.run(user_cmd(user, work, "-c", script, str(work / "out-lib")), cwd=REPO,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "SEEN ['insp-host\\n'] False" in result.stdout
        assert list((data / "tmp").iterdir()) == []

        # Cancel in the middle of a recipe command: the namespace and everything in it must go.
        recipe.write_text(RECIPE.replace("rootless-host", "cancel-host") + "commands:\n  - sleep 600\n")
        proc = subprocess.Popen(user_cmd(user, work, "-m", "app.engine", "build", str(recipe), "--out",
                                         str(work / "out2"), "--no-test"),
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "running recipe command" in line:
                break
        else:
            pytest.fail("the build never reached the recipe command:\n" + "".join(seen[-30:]))
        time.sleep(1)
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
        elapsed = time.monotonic() - started
        assert proc.returncode == 1, "".join(seen) + rest
        assert "build cancelled" in rest
        assert elapsed < 10, f"cancel took {elapsed:.1f} s"
        uid = pwd.getpwnam(user).pw_uid
        assert subprocess.run(["ps", "-u", str(uid), "-o", "pid=,args="], capture_output=True,
                              text=True).stdout.strip() == ""
        assert list((data / "tmp").iterdir()) == []
