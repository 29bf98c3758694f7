"""Fixtures for the image test runner: a small fake Debian tree and the same tree packed by real tools."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


DPKG_STATUS = """\
Package: openssh-server
Status: install ok installed
Priority: optional
Version: 1:10.0p1-7
Description: secure shell (SSH) server
 multi-line description that mentions Package: nginx

Package: nginx
Status: deinstall ok config-files
Version: 1.26.3-3

Package: bash
Status: install ok installed
Version: 5.2.37-2
"""

PASSWD = "root:x:0:0:root:/root:/bin/bash\nadmin:x:1000:1000:Admin:/home/admin:/bin/bash\n"
GROUP = "root:x:0:\nsudo:x:27:admin\ndocker:x:999:\nadmin:x:1000:\n"


def make_debian_tree(root: Path) -> Path:
    """A tiny tree laid out like a merged-/usr Debian system with a few units enabled."""
    for d in ("usr/bin", "usr/lib/systemd/system", "etc/systemd/system/multi-user.target.wants",
              "etc/systemd/system/sockets.target.wants", "var/lib/dpkg", "etc/init.d", "etc/rc2.d"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.symlink("usr/lib", root / "lib")  # merged /usr: /lib/systemd/system is /usr/lib/systemd/system
    os.symlink("usr/bin", root / "bin")
    (root / "var/lib/dpkg/status").write_text(DPKG_STATUS)
    (root / "etc/passwd").write_text(PASSWD)
    (root / "etc/group").write_text(GROUP)
    (root / "usr/lib/os-release").write_text('PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\n')
    os.symlink("../usr/lib/os-release", root / "etc/os-release")
    os.symlink("/usr/lib/does-not-exist", root / "etc/dangling")
    # Absolute links must resolve inside the image, never on the host.
    os.symlink("/etc/passwd", root / "etc/passwd-link")
    (root / "etc/motd").write_text("built by kiln\n")
    units = root / "usr/lib/systemd/system"
    for unit in ("ssh.service", "nginx.service", "cups.service", "cups.socket", "serial-getty@.service",
                 "apache2.service"):
        (units / unit).write_text("[Unit]\n")
    wants = root / "etc/systemd/system/multi-user.target.wants"
    os.symlink("/lib/systemd/system/ssh.service", wants / "ssh.service")
    os.symlink("/lib/systemd/system/ssh.service", root / "etc/systemd/system/sshd.service")  # alias
    os.symlink("/lib/systemd/system/cups.socket", root / "etc/systemd/system/sockets.target.wants/cups.socket")
    os.symlink("/dev/null", root / "etc/systemd/system/apache2.service")  # masked
    (root / "etc/init.d/oldd").write_text("#!/bin/sh\n")
    os.symlink("../init.d/oldd", root / "etc/rc2.d/S01oldd")
    return root


@pytest.fixture
def debian_tree(tmp_path) -> Path:
    return make_debian_tree(tmp_path / "tree")


def _run(*argv: str | Path, **kw) -> None:
    subprocess.run([str(a) for a in argv], check=True, capture_output=True, **kw)


@pytest.fixture(scope="session")
def packed_images(tmp_path_factory) -> dict[str, Path]:
    """The fake tree packed as each artifact kind by the real tools (tar, mksquashfs+xorriso, mkfs+qemu-img, umoci)."""
    base = tmp_path_factory.mktemp("packed")
    tree = make_debian_tree(base / "tree")
    out: dict[str, Path] = {"tree": tree}

    out["rootfs"] = base / "rootfs.tar.zst"
    _run("tar", "--zstd", "-C", tree, "-cf", out["rootfs"], ".")

    iso_dir = base / "iso" / "live"
    iso_dir.mkdir(parents=True)
    _run("mksquashfs", tree, iso_dir / "filesystem.squashfs", "-comp", "zstd", "-noappend", "-quiet")
    out["iso"] = base / "image.iso"
    _run("xorriso", "-as", "mkisofs", "-quiet", "-R", "-o", out["iso"], base / "iso")

    raw = base / "disk.raw"
    with open(raw, "wb") as f:
        f.truncate(64 * 1024 * 1024)
    _run("sfdisk", "-q", raw, input=b"label: gpt\n,1M,21686148-6449-6E6F-744E-656564454649\n,\n")
    _run("mkfs.ext4", "-q", "-E", f"offset={2 * 1024 * 1024}", "-d", tree, raw, "60M")
    out["qcow2"] = base / "disk.qcow2"
    _run("qemu-img", "convert", "-O", "qcow2", raw, out["qcow2"])
    raw.unlink()

    if shutil.which("umoci"):
        layout = base / "oci-layout"
        _run("umoci", "init", "--layout", layout)
        _run("umoci", "new", "--image", f"{layout}:latest")
        bundle = base / "bundle"
        _run("umoci", "unpack", "--rootless", "--image", f"{layout}:latest", bundle)
        shutil.rmtree(bundle / "rootfs")
        shutil.copytree(tree, bundle / "rootfs", symlinks=True)
        _run("umoci", "repack", "--image", f"{layout}:latest", bundle)
        # A second layer that deletes a file (whiteout) and adds one, as image tooling does.
        shutil.rmtree(bundle)
        _run("umoci", "unpack", "--rootless", "--image", f"{layout}:latest", bundle)
        (bundle / "rootfs/etc/motd").unlink()
        (bundle / "rootfs/etc/layer2").write_text("second layer\n")
        _run("umoci", "repack", "--image", f"{layout}:latest", bundle)
        out["oci"] = base / "image.oci.tar"
        _run("tar", "-C", layout, "-cf", out["oci"], ".")
    return out


@pytest.fixture
def kill_first_vm():
    """kill_first_vm(when, console_dir, delay=0) -> a log callback for the runner that SIGKILLs the first
    test VM's QEMU `delay` seconds after `when(console_text)` is true: the emulator dying, whatever the
    image. The callback's `.started` lists the ids of the VMs the runner started."""
    import re
    import signal
    import threading
    import time

    threads: list[threading.Thread] = []

    def make(when, console_dir: Path, delay: float = 0.0):
        started: list[str] = []

        def watch(vm_id: str) -> None:
            console = console_dir / f"console-iso-{vm_id}.log"
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline:
                text = console.read_text(errors="replace") if console.exists() else ""
                if when(text):
                    break
                time.sleep(0.2)
            time.sleep(delay)
            found = subprocess.run(["pgrep", "-f", f"kiln-test-{vm_id} "], capture_output=True, text=True)
            for pid in found.stdout.split():
                os.kill(int(pid), signal.SIGKILL)

        def log(level: str, message: str) -> None:
            if m := re.match(r"starting test VM (\w+) ", message):
                started.append(m.group(1))
                if len(started) == 1:
                    threads.append(threading.Thread(target=watch, args=(m.group(1),), daemon=True))
                    threads[-1].start()

        log.started = started
        return log

    yield make
    for t in threads:
        t.join(timeout=5)
