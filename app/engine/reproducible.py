"""Reproducible images: the date a build claims, and a configured tree with nothing of the day it was made.

The same recipe and the same package set (the manifest's exact versions) give byte-identical rootfs
tarballs, OCI archives, squashfs and ISOs on any day. Two things make that work:

- `SOURCE_DATE_EPOCH` comes from the package set, never from the clock: it is the newest mtime of the
  `/usr/share/doc/<package>/copyright` files the installed packages ship. A .deb carries its files' mtimes
  (dpkg-deb clamps them to the package's own changelog date), so the value is "the date of the newest
  package in the image": the same package set gives the same value, a newer package a later one. The
  recipe itself carries no date; it changes what is in the tree, not when the tree claims to be from.
- `normalize_tree` removes what records the build's own moment or randomness (machine id, ssh host keys,
  random seeds, caches, logs, apt's lists and dpkg's backups), and clamps every mtime newer than the epoch
  to it. The packagers (formats.py) then write sorted archives with numeric owners and fixed header fields.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

from .fsutil import inside

# When no package ships a copyright file (an empty package set cannot happen with minbase, but a tree
# can be odd): the epoch still must not come from the clock.
FALLBACK_EPOCH = 1704067200  # 2024-01-01T00:00:00Z
# The base layer is bootstrapped once and reused; its own build-time outputs (the initrd above all) are
# made with this fixed date so two base layers of the same packages are the same bytes.
BASE_EPOCH = FALLBACK_EPOCH

# Regenerated at boot when missing: Debian's ssh.service refuses to start without host keys.
SSH_KEYGEN_UNIT = """[Unit]
Description=Generate the SSH host keys this image was built without (Kiln: reproducible image)
Before=ssh.service ssh.socket
# Debian's own sshd-keygen.service (trixie on) does the same on a first boot; this one runs after it, so only
# where it is missing (bookworm) or did not run.
After=sshd-keygen.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
# ed25519 and ecdsa only: an RSA key takes tens of seconds under an emulator, and sshd serves the keys it has.
ExecStart=/bin/sh -c 'for t in ed25519 ecdsa; do [ -e /etc/ssh/ssh_host_$${t}_key ] || /usr/bin/ssh-keygen -q -t $$t -N "" -f /etc/ssh/ssh_host_$${t}_key; done'
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target ssh.service ssh.socket
"""
SSH_KEYGEN_NAME = "kiln-ssh-host-keys.service"

# Files and directory contents that record when or where the tree was made; all are recreated by
# the running system when needed.
REMOVE_FILES = [
    "/var/lib/systemd/random-seed", "/var/lib/systemd/credential.secret", "/var/lib/urandom/random-seed",
    "/var/lib/dbus/machine-id", "/var/cache/ldconfig/aux-cache",
    "/var/cache/apt/pkgcache.bin", "/var/cache/apt/srcpkgcache.bin",
    "/var/lib/dpkg/status-old", "/var/lib/dpkg/diversions-old", "/var/lib/dpkg/statoverride-old",
    "/var/lib/dpkg/available-old", "/var/cache/debconf/config.dat-old", "/var/cache/debconf/templates.dat-old",
    "/var/cache/debconf/passwords.dat-old", "/var/lib/apt/extended_states.1",
    "/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_rsa_key.pub", "/etc/ssh/ssh_host_ecdsa_key",
    "/etc/ssh/ssh_host_ecdsa_key.pub", "/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_ed25519_key.pub",
]
EMPTY_DIRS = ["/var/cache/man", "/var/cache/fontconfig", "/var/lib/apt/lists", "/var/cache/apt/archives"]
KEEP_IN_DIRS = {"lock", "partial"}  # apt's own lock files and partial/ directories stay (empty)
# Byte-compiled Python records the source's mtime; Python writes it again when it needs it.
PYCACHE_ROOTS = ["/usr/lib", "/usr/share", "/usr/local/lib", "/etc"]


def source_date_epoch(root: Path, packages: list[dict]) -> int:
    """The newest mtime of the installed packages' copyright files (see the module docstring)."""
    newest = 0
    now = time.time()
    for p in packages:
        try:
            st = os.lstat(inside(root, f"/usr/share/doc/{p['name']}", follow_last=False) / "copyright")
        except (OSError, ValueError):
            continue
        if newest < st.st_mtime <= now:
            newest = int(st.st_mtime)
    return newest or FALLBACK_EPOCH


def normalize_tree(root: Path, epoch: int) -> list[str]:
    """Make the configured tree independent of the day and the machine; returns what it changed."""
    changed: list[str] = []
    machine_id = inside(root, "/etc/machine-id", follow_last=False)
    already_empty = machine_id.is_file() and not machine_id.is_symlink() and machine_id.stat().st_size == 0
    if (machine_id.is_symlink() or machine_id.exists()) and not already_empty:
        machine_id.unlink()
        # Empty: systemd makes a new id at first boot (and treats the boot as the first one).
        machine_id.write_text("")
        machine_id.chmod(0o444)
        changed.append("/etc/machine-id emptied (generated at first boot)")
    if machine_id.is_file() and not machine_id.is_symlink() and machine_id.stat().st_mode & 0o7777 != 0o444:
        machine_id.chmod(0o444)  # the same mode whether the base layer left it empty or not
    for name in REMOVE_FILES:
        path = inside(root, name, follow_last=False)
        if path.is_symlink() or path.exists():
            path.unlink()
            changed.append(f"{name} removed")
    if any(n.startswith("/etc/ssh/ssh_host_") for n in (c.split(" ")[0] for c in changed)):
        _ssh_keys_at_first_boot(root)
        changed.append(f"{SSH_KEYGEN_NAME} generates the SSH host keys at first boot")
    for name in EMPTY_DIRS:
        d = inside(root, name)
        if not d.is_dir():
            continue
        removed = 0
        for entry in sorted(d.iterdir()):
            if entry.name in KEEP_IN_DIRS:
                if entry.is_dir() and not entry.is_symlink():
                    removed += _empty(entry)
                continue
            removed += _remove(entry)
        if removed:
            changed.append(f"{name}/* emptied ({removed} entries)")
    logs = _truncate_logs(inside(root, "/var/log"))
    if logs:
        changed.append(f"{logs} log file(s) under /var/log truncated")
    pycache = 0
    for name in PYCACHE_ROOTS:
        top = inside(root, name)
        if top.is_dir():
            for dirpath, dirnames, _ in os.walk(top):
                for d in [d for d in dirnames if d == "__pycache__"]:
                    pycache += _remove(Path(dirpath) / d)
                    dirnames.remove(d)
    if pycache:
        changed.append(f"{pycache} byte-compiled Python file(s) removed")
    if _shadow_dates(root, epoch):
        changed.append("password change dates in /etc/shadow set to SOURCE_DATE_EPOCH")
    clamped = clamp_mtimes(root, epoch)
    changed.append(f"{clamped} mtime(s) clamped to SOURCE_DATE_EPOCH")
    return changed


def _ssh_keys_at_first_boot(root: Path) -> None:
    if not inside(root, "/usr/bin/ssh-keygen").exists():
        return
    unit = inside(root, f"/etc/systemd/system/{SSH_KEYGEN_NAME}")
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(SSH_KEYGEN_UNIT)
    for target in ("multi-user.target", "ssh.service", "ssh.socket"):
        wants = inside(root, f"/etc/systemd/system/{target}.wants")
        wants.mkdir(parents=True, exist_ok=True)
        link = inside(root, f"/etc/systemd/system/{target}.wants/{SSH_KEYGEN_NAME}", follow_last=False)
        if not link.is_symlink():
            link.symlink_to(f"/etc/systemd/system/{SSH_KEYGEN_NAME}")


def _remove(path: Path) -> int:
    if path.is_dir() and not path.is_symlink():
        count = _empty(path)
        path.rmdir()
        return count + 1
    path.unlink()
    return 1


def _empty(d: Path) -> int:
    return sum(_remove(entry) for entry in list(d.iterdir()))


def _truncate_logs(log_dir: Path) -> int:
    """Empty every log file but keep it (services expect e.g. /var/log/wtmp with its mode)."""
    count = 0
    if not log_dir.is_dir():
        return 0
    for dirpath, _, filenames in os.walk(log_dir):
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink() and path.stat().st_size:
                with open(path, "r+b") as f:
                    f.truncate(0)
                count += 1
    return count


_SHADOW_LINE = re.compile(r"^([^:]*):([^:]*):(\d*)(:.*)$")


def _shadow_dates(root: Path, epoch: int) -> bool:
    """useradd and passwd write today's day number into /etc/shadow's third field."""
    day = str(epoch // 86400)
    changed = False
    for name in ("/etc/shadow", "/etc/shadow-"):
        path = inside(root, name, follow_last=False)
        if not path.is_file() or path.is_symlink():
            continue
        lines = path.read_text().splitlines(keepends=True)
        out = []
        for line in lines:
            m = _SHADOW_LINE.match(line.rstrip("\n"))
            if m and m.group(3) and m.group(3) != day:
                line = f"{m.group(1)}:{m.group(2)}:{day}{m.group(4)}\n"
            out.append(line)
        if out != lines:
            mode = path.stat().st_mode
            path.write_text("".join(out))
            path.chmod(mode & 0o7777)
            changed = True
    return changed


def clamp_mtimes(root: Path, epoch: int) -> int:
    """Every mtime (and atime) newer than `epoch` becomes `epoch`; symlinks themselves, never their targets."""
    count = 0
    # Bottom-up: a directory's own time is set after everything inside it changed.
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if st.st_mtime > epoch:
                os.utime(path, (epoch, epoch), follow_symlinks=False)
                count += 1
    st = os.lstat(root)
    if st.st_mtime > epoch:
        os.utime(root, (epoch, epoch), follow_symlinks=False)
        count += 1
    return count


def epoch_iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
