"""The package stage: one configured tree -> iso / qcow2 / rootfs / oci files."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import time
import uuid
from pathlib import Path

from .bootpath import live_boot_options
from .context import BuildContext, BuildError
from .fsutil import inside, tree_size

# no_timer_check: the kernel's early IO-APIC timer check counts ticks against wall time, and under an emulator
# on a busy host too few arrive, so a healthy image panics ("IO-APIC + timer doesn't work!"; seen here under
# TCG). Fedora's and CirrOS's cloud images boot with it for the same reason; on real hardware it only skips
# a sanity check.
KERNEL_CMDLINE = "console=tty0 console=ttyS0,115200 no_timer_check"
GRUB_DIR = Path("/usr/lib/grub/i386-pc")
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # where grub-mkrescue finds its tools


def kernel_cmdline(root: Path, live: bool) -> str:
    """The kernel command line of a bootable image; a live one also gets live-boot's options (bootpath.py)."""
    return " ".join(["boot=live", KERNEL_CMDLINE, *live_boot_options(root)] if live else [KERNEL_CMDLINE])


def artifact_name(recipe: dict, fmt: str) -> str:
    return {"iso": f"{recipe['name']}.iso", "qcow2": f"{recipe['name']}.qcow2",
            "rootfs": f"{recipe['name']}.rootfs.tar.zst", "oci": f"{recipe['name']}.oci.tar"}[fmt]


def kernel_files(root: Path) -> tuple[str, Path, Path]:
    """(version, vmlinuz, initrd) of the newest kernel in the tree."""
    # inside(): recipe commands ran in this tree, and /boot/vmlinuz-x -> /etc/shadow must not copy the host's.
    kernels = sorted(inside(root, "/boot").glob("vmlinuz-*"), key=lambda p: _version_key(p.name[8:]))
    for found in reversed(kernels):
        version = found.name[len("vmlinuz-"):]
        vmlinuz = inside(root, f"/boot/{found.name}")
        initrd = inside(root, f"/boot/initrd.img-{version}")
        if vmlinuz.is_file() and initrd.is_file():
            return version, vmlinuz, initrd
    raise BuildError("package", "the image has no kernel with an initrd in /boot; cannot make a bootable format")


def _version_key(v: str) -> list:
    return [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", v)]


def _fixed_times(ctx: BuildContext, tree: Path, epoch: int) -> None:
    """Files the packager writes itself get the build's SOURCE_DATE_EPOCH too."""
    for dirpath, dirnames, filenames in os.walk(tree, topdown=False):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (epoch, epoch), follow_symlinks=False)
    os.utime(tree, (epoch, epoch))


def _epoch_env(epoch: int) -> dict[str, str]:
    # grub-mkrescue, xorriso, mtools (the EFI image) and mke2fs take their own dates from these.
    return {"SOURCE_DATE_EPOCH": str(epoch), "E2FSPROGS_FAKE_TIME": str(epoch), "TZ": "UTC"}


def _uuid(recipe: dict, epoch: int, what: str) -> str:
    """A filesystem id that is the same for the same recipe and package set (not random per build)."""
    digest = hashlib.sha256(f"{recipe['name']}\n{epoch}\n{what}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def make_iso(ctx: BuildContext, root: Path, recipe: dict, out: Path, epoch: int) -> None:
    version, vmlinuz, initrd = kernel_files(root)
    iso_dir = ctx.work / "iso"
    live = iso_dir / "live"
    live.mkdir(parents=True)
    ctx.log("compressing the root filesystem into squashfs (zstd level 3)")
    ctx.run(["mksquashfs", str(root), str(live / "filesystem.squashfs"), "-noappend", "-comp", "zstd",
             "-Xcompression-level", "3", "-quiet", "-no-progress", "-wildcards",
             # Fixed filesystem date; the tree's mtimes are already clamped; -reproducible: sorted, single order.
             "-mkfs-time", str(epoch), "-reproducible",
             "-e", "proc/*", "sys/*", "dev/pts/*", "run/*", "tmp/*", "boot/*"], what="mksquashfs")
    shutil.copy2(vmlinuz, live / "vmlinuz")
    shutil.copy2(initrd, live / "initrd.img")
    grub = iso_dir / "boot/grub"
    grub.mkdir(parents=True)
    (grub / "grub.cfg").write_text(f"""serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
set default=0
set timeout=0
# One entry, so no menu wait (it was 2 s of every boot); holding Shift as GRUB starts shows the menu
# to edit the kernel command line on real hardware.
if keystatus --shift; then
    set timeout=-1
fi

menuentry "{recipe['name']} (Debian {recipe['release']}, live)" {{
    linux /live/vmlinuz {kernel_cmdline(root, live=True)}
    initrd /live/initrd.img
}}
""")
    _fixed_times(ctx, iso_dir, epoch)
    ctx.log(f"writing ISO with GRUB for BIOS and UEFI (kernel {version})")
    volid = re.sub(r"[^A-Z0-9_]", "_", recipe["name"].upper())[:32] or "KILN"
    # xorriso takes every volume date and the volume uuid from SOURCE_DATE_EPOCH (and clamps file dates);
    # grub-mkrescue passes it on to mformat for the EFI boot image. -volume_date makes the dates explicit.
    stamp = time.strftime("%Y%m%d%H%M%S00", time.gmtime(epoch))
    # mformat (the EFI boot image's FAT) takes its dates from SOURCE_DATE_EPOCH but draws a random volume
    # serial; grub-mkrescue runs it by name, so a wrapper first on PATH gives it a fixed one (-N).
    tools = ctx.work / "iso-tools"
    tools.mkdir(exist_ok=True)
    mformat = shutil.which("mformat")
    if mformat is None:
        raise BuildError("package", "required tool not found: mformat (Debian package mtools)")
    serial = hashlib.sha256(f"{recipe['name']}\n{epoch}\nefi".encode()).hexdigest()[:8]
    (tools / "mformat").write_text(f'#!/bin/sh\nexec {shlex.quote(mformat)} -N {serial} "$@"\n')
    (tools / "mformat").chmod(0o755)
    env = {**_epoch_env(epoch), "PATH": f"{tools}:{HOST_PATH}"}
    ctx.run(["grub-mkrescue", "-o", str(out), str(iso_dir), "--", "-volid", volid,
             "-volume_date", "all_file_dates", f"={epoch}", "-volume_date", "uuid", stamp],
            what="grub-mkrescue", env=env)
    shutil.rmtree(tools, ignore_errors=True)
    shutil.rmtree(iso_dir, ignore_errors=True)


def make_qcow2(ctx: BuildContext, root: Path, recipe: dict, out: Path, epoch: int) -> None:
    version, _, _ = kernel_files(root)
    used = tree_size(root)
    fs_bytes = int(used * 1.3) + 512 * 1024**2
    fs_bytes -= fs_bytes % (1024 * 1024)
    offset = 1024 * 1024
    raw = ctx.work / "disk.raw"
    with open(raw, "wb") as f:
        f.truncate(offset + fs_bytes)
    disk_id = "0x" + hashlib.sha256(f"{recipe['name']}\n{epoch}".encode()).hexdigest()[:8]
    ctx.run(["sfdisk", "--quiet", str(raw)],
            stdin_data=f"label: dos\nlabel-id: {disk_id}\nstart=2048, type=83, bootable\n".encode(), what="sfdisk")
    root_uuid = _uuid(recipe, epoch, "root")
    ctx.log(f"creating ext4 root filesystem ({fs_bytes // 1024**2} MiB) from the tree")
    # The features are named, not left to /etc/mke2fs.conf: newer ones (orphan_file, metadata_csum_seed) are on by
    # default from e2fsprogs 1.47.1, and GRUB before 2.12 cannot read a filesystem with them. mke2fs 1.47.1 and
    # later also add the tree in name order with fixed times, so the same tree gives the same bytes.
    ctx.run(["mkfs.ext4", "-q", "-F", "-L", "root", "-U", root_uuid, "-d", str(root),
             "-O", "^orphan_file,^metadata_csum_seed",
             "-E", f"offset={offset},hash_seed={_uuid(recipe, epoch, 'hash')}", str(raw), f"{fs_bytes // 1024}k"],
            what="mkfs.ext4", env=_epoch_env(epoch))
    # GRUB is embedded in the MBR gap with its whole config built in, so nothing has to be
    # written into the filesystem and nothing has to be mounted.
    cmdline = f"root=UUID={root_uuid} rw {kernel_cmdline(root, live=False)}"
    grub_tmp = ctx.work / "grub"
    grub_tmp.mkdir()
    (grub_tmp / "embed.cfg").write_text(f"""serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
set root=(hd0,msdos1)
echo "Booting {recipe['name']} (kernel {version})"
linux /boot/vmlinuz-{version} {cmdline}
initrd /boot/initrd.img-{version}
boot
""")
    ctx.run(["grub-mkimage", "-O", "i386-pc", "-o", str(grub_tmp / "core.img"), "-c", str(grub_tmp / "embed.cfg"),
             "-p", "(hd0,msdos1)/boot/grub", "biosdisk", "part_msdos", "ext2", "linux", "serial",
             "terminal", "echo", "normal", "search", "gzio"], what="grub-mkimage")
    install_grub_mbr(raw, grub_tmp / "core.img", offset)
    ctx.log("converting the disk to qcow2")
    ctx.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(out)], what="qemu-img convert")
    raw.unlink()
    shutil.rmtree(grub_tmp, ignore_errors=True)


def install_grub_mbr(raw: Path, core_img: Path, gap_end: int) -> None:
    """What grub-bios-setup does for an embedded core.img, without needing a device to probe.

    boot.img's boot code goes into the MBR (the partition table and disk signature stay) and
    core.img into the gap before the first partition. Their defaults already chain: boot.img
    loads sector 1, and grub-mkimage writes core.img's own length into its first-sector blocklist.
    """
    boot = (GRUB_DIR / "boot.img").read_bytes()
    core = core_img.read_bytes()
    if len(boot) != 512 or 512 + len(core) > gap_end:
        raise BuildError("package", f"GRUB core image ({len(core)} bytes) does not fit before the first partition")
    with open(raw, "r+b") as disk:
        disk.seek(0)
        disk.write(boot[:440])
        disk.seek(512)
        disk.write(core)


def tar_options(epoch: int) -> list[str]:
    """GNU tar options for archives that are the same bytes for the same tree: sorted entries, numeric owners,
    mtimes clamped to SOURCE_DATE_EPOCH, pax headers without atime/ctime and with a fixed name (the default
    name holds tar's process id)."""
    return ["--sort=name", "--numeric-owner", "--format=posix", f"--mtime=@{epoch}", "--clamp-mtime",
            "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime"]


TAR_EXCLUDES = ["--exclude=./proc/*", "--exclude=./sys/*", "--exclude=./dev/pts/*", "--exclude=./run/*",
                "--exclude=./tmp/*"]


def make_rootfs(ctx: BuildContext, root: Path, recipe: dict, out: Path, epoch: int) -> None:
    ctx.log("writing root filesystem tarball (zstd)")
    ctx.run(["tar", *tar_options(epoch), "--xattrs", "--xattrs-include=*", "--acls", "-C", str(root),
             *TAR_EXCLUDES, "-I", "zstd -T0 -3 -q", "-cf", str(out), "."], what="tar")


def _blob(layout: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs/sha256" / digest).write_bytes(data)
    return f"sha256:{digest}", len(data)


def make_oci(ctx: BuildContext, root: Path, recipe: dict, out: Path, epoch: int) -> None:
    """Hand-written OCI image layout (one gzip layer) packed as an oci-archive tarball."""
    layout = ctx.work / "oci"
    (layout / "blobs/sha256").mkdir(parents=True)
    layer_tmp = layout / "blobs/sha256/layer.tmp"
    diff_file = ctx.work / "oci-diffid"
    # A container does not boot: the kernel and its modules stay out of the layer.
    ctx.log("writing OCI layer (container image without kernel and /boot)")
    script = (f"set -o pipefail; tar {' '.join(shlex.quote(o) for o in tar_options(epoch))} --xattrs --xattrs-include=* -C {shlex.quote(str(root))} "
              f"{' '.join(shlex.quote(e) for e in TAR_EXCLUDES)} --exclude=./boot/* --exclude=./usr/lib/modules/* "
              f"-cf - . | tee >(sha256sum | cut -d' ' -f1 > {shlex.quote(str(diff_file))}) "
              f"| gzip -1 -n > {shlex.quote(str(layer_tmp))}")
    ctx.run(["bash", "-c", script], what="tar | gzip (OCI layer)")
    for _ in range(50):  # the process substitution can finish a moment after the pipeline
        if diff_file.exists() and diff_file.read_text().strip():
            break
        time.sleep(0.1)
    diff_id = "sha256:" + diff_file.read_text().strip()
    h = hashlib.sha256()
    with open(layer_tmp, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    layer_digest = h.hexdigest()
    layer_size = layer_tmp.stat().st_size
    os.rename(layer_tmp, layout / "blobs/sha256" / layer_digest)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    config = {
        "created": created, "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["/bin/bash"],
                   "Labels": {"org.opencontainers.image.title": recipe["name"], "io.kiln.release": recipe["release"]}},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": "kiln build"}],
    }
    cfg_digest, cfg_size = _blob(layout, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest, "size": cfg_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": f"sha256:{layer_digest}", "size": layer_size}],
    }
    man_digest, man_size = _blob(layout, json.dumps(manifest, sort_keys=True).encode())
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": man_digest, "size": man_size,
        "annotations": {"org.opencontainers.image.ref.name": f"kiln/{recipe['name']}:latest"},
    }]}
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    ctx.run(["tar", *tar_options(epoch), "--owner=0", "--group=0", "-C", str(layout),
             "-cf", str(out), "oci-layout", "index.json", "blobs"], what="tar (OCI archive)")
    shutil.rmtree(layout, ignore_errors=True)


BUILDERS = {"iso": make_iso, "qcow2": make_qcow2, "rootfs": make_rootfs, "oci": make_oci}
