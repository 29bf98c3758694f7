"""Hostile recipes, built for real: each one fails its build with a clear reason or runs harmlessly
inside the sandbox, and afterwards the host is unchanged and the next build succeeds.

The recipes are rootfs-only and share one minimal base layer, so after the first one each build
costs a few seconds. Memory and process limits are set low here so the runaway commands hit them
quickly; the limits' defaults are the same code path with bigger numbers.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from app.engine.pipeline import BuildError, BuildEvents, build
from app.engine.sandbox import STEP_CGROUP_PREFIX, cgroup_parents, remove_stale_step_cgroups

pytestmark = pytest.mark.slow

CANARY_VAR = "KILN_SANDBOX_TEST_SECRET"


class Recorder(BuildEvents):
    def __init__(self):
        self.lines: list[str] = []

    def log(self, stage, level, message):
        self.lines.append(f"[{stage}] {message}")

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture(scope="module")
def canary():
    """A secret in the worker's environment, as SECRET_KEY or DATABASE_URL would be."""
    value = "canary-" + secrets.token_hex(16)
    os.environ[CANARY_VAR] = value
    yield value
    os.environ.pop(CANARY_VAR, None)


@pytest.fixture(scope="module")
def hostile_settings(engine_settings):
    return dataclasses.replace(engine_settings, step_memory_mb=256, step_max_processes=64, step_timeout=120)


@pytest.fixture(scope="module")
def marker():
    """A host path a successful escape would create; it must never appear."""
    # /var/tmp: if a write lands inside the image instead, the rootfs tarball shows it (/tmp is left out).
    path = Path("/var/tmp") / f"kiln-escape-{uuid.uuid4().hex[:12]}"
    yield path
    path.unlink(missing_ok=True)


def run_build(settings, tmp_path, name, commands=(), files=()):
    """Build a rootfs in tmp_path/name. The hostname is unique, so the result cache never answers."""
    events = Recorder()
    recipe = {"name": name, "format": "rootfs", "hostname": f"h-{uuid.uuid4().hex[:12]}",
              "commands": list(commands), "files": list(files)}
    try:
        result = build(recipe, tmp_path / name, settings=settings, events=events, timeout=600)
    except BuildError as err:
        return err, events
    assert not result.cached
    return result, events


def assert_no_secret(canary, events, out_dir: Path):
    assert canary not in events.text
    for artifact in out_dir.iterdir():
        data = artifact.read_bytes()
        if artifact.name.endswith(".tar.zst"):
            data = subprocess.run(["zstd", "-dc", str(artifact)], capture_output=True, check=True).stdout
        assert canary.encode() not in data, artifact.name


def image_has(out_dir: Path, path: Path) -> bool:
    [tarball] = out_dir.glob("*.rootfs.tar.zst")
    listing = subprocess.run(["tar", "--zstd", "-tf", str(tarball)], capture_output=True, text=True, check=True)
    return f".{path}" in listing.stdout.splitlines()


def host_disk() -> tuple[str, str]:
    """(name, major:minor) of a real block device of this host."""
    for dev in sorted(Path("/sys/block").iterdir()):
        if not dev.name.startswith(("loop", "ram", "zram")):
            return dev.name, (dev / "dev").read_text().strip()
    pytest.skip("this host has no block device to attack")


def test_reading_the_worker_environment_finds_nothing(canary, hostile_settings, tmp_path):
    # Everything that could show an environment: its own, pid 1's, every process it can see; the
    # copies are written into the image too, so the artifact is checked as well as the log.
    result, events = run_build(hostile_settings, tmp_path, "hostile-env", commands=[
        "env | tee /root/env.txt",
        "cat /proc/1/environ > /root/pid1.txt 2>&1 || true; "
        "for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f; done 2>/dev/null | tee /root/all.txt",
        "echo VISIBLE-PROCESSES=$(ls -d /proc/[0-9]* | wc -l)",
    ])
    assert not isinstance(result, BuildError), result.reason
    assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in events.text
    assert_no_secret(canary, events, tmp_path / "hostile-env")
    # A fresh /proc of its own PID namespace: the sandbox's init, the shell and ls, not the host's hundreds.
    count = int(events.text.rsplit("VISIBLE-PROCESSES=", 1)[1].split()[0])
    assert count <= 5


def test_escape_through_proc_1_root_stays_inside(hostile_settings, tmp_path, marker, canary):
    # Pid 1 is the sandbox's own init, so its root is the image: the write lands in the image (or the
    # chroot is refused, which fails the build with the command named), never on the host.
    result, events = run_build(hostile_settings, tmp_path, "hostile-proc",
                               commands=[f"chroot /proc/1/root sh -c 'id > {marker}'"])
    assert not marker.exists()
    if isinstance(result, BuildError):
        assert result.user_error and result.reason.startswith("recipe command 1 failed")
        assert "chroot /proc/1/root" in result.reason
    else:
        assert image_has(tmp_path / "hostile-proc", marker)
        assert_no_secret(canary, events, tmp_path / "hostile-proc")


def test_files_entry_through_a_proc_symlink_stays_inside(hostile_settings, tmp_path, marker):
    # Under the old chroot /proc was the host's, and /proc/1/root/var/tmp/x was the host's /var/tmp/x.
    result, events = run_build(hostile_settings, tmp_path, "hostile-files", files=[
        {"path": f"/proc/1/root{marker}", "content": "escaped\n", "mode": "0644", "owner": "root"}])
    assert not marker.exists()
    if isinstance(result, BuildError):
        assert result.user_error and f"writing /proc/1/root{marker} failed" in result.reason
    else:
        assert image_has(tmp_path / "hostile-files", marker)


def test_symlinks_planted_for_the_engine_are_resolved_inside_the_image(hostile_settings, tmp_path, marker):
    # The engine reads and writes the tree from the host after the commands ran (the dpkg status for the
    # evidence, policy-rc.d removal): planted absolute symlinks must resolve inside the image, so the
    # host's files are neither read into the manifest nor deleted.
    host_dir = marker.with_name(marker.name + "-dir")
    host_dir.mkdir()
    (host_dir / "status").write_text("Package: host-secret-package\nStatus: install ok installed\nVersion: 6.6.6\n")
    (host_dir / "policy-rc.d").write_text("host file\n")
    try:
        result, events = run_build(hostile_settings, tmp_path, "hostile-links", commands=[
            f"rm /var/lib/dpkg/status && ln -s {host_dir}/status /var/lib/dpkg/status",
            f"mkdir -p {host_dir} && printf 'Package: image-package\\nStatus: install ok installed\\n"
            f"Version: 1\\n' > {host_dir}/status",
            f"mv /usr/sbin /usr/sbin.real && ln -s {host_dir} /usr/sbin",
        ])
        assert not isinstance(result, BuildError), result.reason
        assert {p["name"] for p in result.manifest["packages"]} == {"image-package"}
        assert (host_dir / "status").read_text().startswith("Package: host-secret-package")
        assert (host_dir / "policy-rc.d").read_text() == "host file\n"
    finally:
        subprocess.run(["rm", "-rf", str(host_dir)], check=True)


def test_opening_a_host_disk_fails(hostile_settings, tmp_path):
    name, numbers = host_disk()
    major, minor = numbers.split(":")
    err, events = run_build(hostile_settings, tmp_path, "hostile-disk", commands=[
        f"ls /dev/{name} || (mknod /tmp/hostdisk b {major} {minor} && head -c 512 /tmp/hostdisk > /root/disk.bin)"])
    assert isinstance(err, BuildError) and err.user_error
    assert err.reason.startswith("recipe command 1 failed")
    assert f"/dev/{name}" in events.text and "Operation not permitted" in events.text


def test_connecting_to_the_host_loopback_fails_at_once(hostile_settings, tmp_path, listener):
    port, received = listener
    err, events = run_build(hostile_settings, tmp_path, "hostile-net",
                            commands=[f"bash -c 'echo hello > /dev/tcp/127.0.0.1/{port}'"])
    assert isinstance(err, BuildError) and err.user_error
    assert "recipe command 1 failed" in err.reason and "build steps have no network" in err.reason
    assert "Connection refused" in events.text
    assert received == []


def test_fork_bomb_is_stopped_at_the_process_limit(hostile_settings, tmp_path):
    before = _leftover_step_cgroups()
    err, events = run_build(hostile_settings, tmp_path, "hostile-forks",
                            commands=["bomb() { bomb | bomb & }; bomb; sleep 100"])
    assert isinstance(err, BuildError) and err.user_error and err.stage == "configure"
    assert "recipe command 1 (bomb()" in err.reason
    if cgroup_parents() is not None:
        assert "started more than the 64 processes a build step may run at once" in err.reason
    else:  # rlimits: the bomb's forks fail and the step's time limit ends it
        assert "a build step may run at most 64 processes" in err.reason or "ran longer than" in err.reason
    assert set(_leftover_step_cgroups()) - set(before) == set()


def test_filling_memory_is_stopped_at_the_memory_limit(hostile_settings, tmp_path):
    err, events = run_build(hostile_settings, tmp_path, "hostile-memory",
                            commands=["head -c 2000m /dev/zero | tail"])
    assert isinstance(err, BuildError) and err.user_error
    if cgroup_parents() is not None:
        assert "recipe command 1 (head -c 2000m /dev/zero | tail) was killed: it used more than the 256 MiB" \
            in err.reason
    else:
        assert "recipe command 1 failed" in err.reason and "at most 256 MiB" in err.reason


def test_the_next_build_succeeds_and_nothing_is_left(engine_settings, tmp_path, canary, listener, marker):
    port, received = listener
    before = _leftover_step_cgroups()  # another run's live steps on this machine are not ours to judge
    result, events = run_build(engine_settings, tmp_path, "after-hostile",
                               commands=["echo fine > /root/ok"],
                               files=[{"path": "/etc/motd", "content": "ok\n", "mode": "0644", "owner": "root"}])
    assert not isinstance(result, BuildError), result.reason
    assert received == [] and not marker.exists()
    assert_no_secret(canary, events, tmp_path / "after-hostile")
    assert set(_leftover_step_cgroups()) - set(before) == set()
    assert [p for p in engine_settings.tmp_dir.iterdir() if p.name.startswith("build-")] == []


def test_step_cgroups_a_killed_worker_left_are_removed_by_the_next_step(tmp_path):
    """A worker SIGKILLed mid-step leaves its empty step cgroup; the next step removes it once it is stale,
    never one that is young (a step about to join it) or still holds a process."""
    parents = cgroup_parents()
    if parents is None:
        pytest.skip("this host gives the worker no cgroup to create step cgroups in")
    dirs = parents[1]
    stale, young = (f"{STEP_CGROUP_PREFIX}test-{uuid.uuid4().hex[:8]}" for _ in range(2))
    for name in (stale, young):
        for d in set(dirs.values()):
            (d / name).mkdir()
    old = time.time() - 3600
    for d in set(dirs.values()):
        os.utime(d / stale, (old, old))
    try:
        removed = remove_stale_step_cgroups(dirs)
        assert {p.name for p in removed} == {stale}
        assert all(not (d / stale).exists() and (d / young).exists() for d in set(dirs.values()))
    finally:
        for d in set(dirs.values()):
            for name in (stale, young):
                with contextlib.suppress(OSError):
                    (d / name).rmdir()


def _leftover_step_cgroups() -> list[str]:
    parents = cgroup_parents()
    if parents is None:
        return []
    return [str(p) for d in set(parents[1].values()) for p in d.glob("kiln-step-*")]
