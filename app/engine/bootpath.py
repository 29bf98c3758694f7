"""Work a booted server image does not need, taken off its boot path at build time.

Measured under TCG on 2 cores (bench/boot.py, issue 19): systemd re-ran its "first boot after an
update" units on every boot of a Kiln image (ldconfig, sysusers, the journal catalog, update-done),
because nothing ever recorded that the image's /usr had been set up; live-boot re-triggered every
udev device and waited for them to settle only to write an ifupdown file no Kiln image reads; and
generators for hardware and boot setups an image built here cannot have ran in every boot. Each is
a few seconds of emulated CPU. Nothing here touches a unit the recipe installed or enabled, and a
file the recipe wrote itself is never replaced.
"""
from __future__ import annotations

import os
from pathlib import Path

from .context import BuildContext
from .fsutil import inside

# Generators whose subject a Kiln image cannot have; masking one is the documented way to turn it off
# (a symlink to /dev/null in /etc/systemd/system-generators, systemd.generator(7)).
MASKED_GENERATORS = {
    # Kiln's disks are MBR (qcow2) or ISO 9660: there is no GPT partition table to discover.
    "systemd-gpt-auto-generator": "no GPT disk to auto-mount",
    # Exposes sshd on AF_VSOCK/AF_UNIX for VM managers; fails without vsock, and sshd is the recipe's own unit.
    "systemd-ssh-generator": "sshd over vsock for VM managers",
    # No swap partition or hibernation image is ever made, so there is nothing to resume from.
    "systemd-hibernate-resume-generator": "no hibernation image",
}
# ConditionNeedsUpdate= compares these stamps' mtime with /usr's (systemd.unit(5)). Without them every boot is
# "the first after an update" and runs ldconfig, systemd-sysusers, journalctl --update-catalog and more,
# though the build already did all of it.
UPDATE_STAMPS = ("/etc/.updated", "/var/.updated")


def live_boot_options(root: Path) -> list[str]:
    """live-boot options for the kernel command line of an image with this tree.

    `nonetworking`: live-boot's network step re-triggers every udev device, waits for them to settle and
    writes /etc/network/interfaces for ifupdown; Kiln images configure the network with systemd-networkd,
    so unless the recipe installed ifupdown the step is pure waiting."""
    has_ifupdown = any(inside(root, p).exists() for p in ("/usr/sbin/ifup", "/sbin/ifup"))
    return [] if has_ifupdown else ["nonetworking"]


def trim_boot_path(ctx: BuildContext, root: Path) -> None:
    """Take what a server does not need off the boot path of a systemd image; nothing for other trees."""
    if not inside(root, "/usr/lib/systemd/systemd").exists():
        return
    masked = []
    for name in MASKED_GENERATORS:
        if not inside(root, f"/usr/lib/systemd/system-generators/{name}").exists():
            continue
        link = inside(root, f"/etc/systemd/system-generators/{name}", follow_last=False)
        if link.exists() or link.is_symlink():  # the recipe's own choice stays
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/dev/null")
        masked.append(name)
    # Stamped with /usr's own mtime: the image counts as updated at build time, and the stamps say no more
    # than /usr already does (reproducible builds clamp both the same way).
    usr = inside(root, "/usr").stat()
    for stamp in UPDATE_STAMPS:
        path = inside(root, stamp, follow_last=False)
        if path.exists() or path.is_symlink():
            continue
        path.write_bytes(b"")
        os.utime(path, ns=(usr.st_mtime_ns, usr.st_mtime_ns))
    ctx.log("boot path: first-boot update units marked done at build time"
            + (f"; masked generators: {', '.join(masked)}" if masked else ""))
