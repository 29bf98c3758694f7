"""The cached base layer: a bootstrapped release (+ kernel and boot packages) reused across builds.

A build mounts an overlay on top of the base and installs only its own packages there, so the
expensive part (dpkg unpacking the kernel, initramfs generation) happens once per
(release, package set, mirror). Base directories are shared read-only; a shared flock marks
"in use" so the LRU eviction never deletes a base below a running build.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import time
from pathlib import Path

from .context import BuildContext
from .fsutil import remove_tree, tree_size
from .locks import make_staging
from .reproducible import BASE_EPOCH
from .sandbox import ENV as SANDBOX_ENV

BASE_REVISION = 5  # bump when the base recipe below changes (5: made with a fixed SOURCE_DATE_EPOCH)

# What a bootable image needs beyond minbase; declared in every manifest under addedByKiln.
BOOT_PACKAGES: dict[str, str] = {
    "linux-image-amd64": "kernel for the bootable formats",
    "systemd-sysv": "init system",
    "initramfs-tools": "builds the initrd",
    "live-boot": "boots the ISO with its root on squashfs",
    "zstd": "compresses the initrd with zstd",
    "iproute2": "network configuration tools",
    "qemu-guest-agent": "lets Kiln's image tests run commands in the booted VM over virtio-serial",
}
PLAIN_PACKAGES: dict[str, str] = {}

DPKG_EXCLUDES = [
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/lintian/*",
]

NETWORK_UNIT = """[Match]
Name=en* eth*

[Network]
DHCP=yes
"""


def base_packages(bootable: bool) -> dict[str, str]:
    return BOOT_PACKAGES if bootable else PLAIN_PACKAGES


def base_key(release: str, mirror: str, bootable: bool) -> str:
    ident = {"release": release, "mirror": mirror, "packages": sorted(base_packages(bootable)),
             "revision": BASE_REVISION, "bootable": bootable}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def _lock(ctx: BuildContext, path: Path, shared: bool) -> int:
    """flock that keeps honouring cancel/timeout while it waits for another build."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    flags = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
    announced = False
    while True:
        try:
            fcntl.flock(fd, flags)
            return fd
        except BlockingIOError:
            if not announced:
                ctx.log("waiting for another build that is preparing the same base layer")
                announced = True
            try:
                ctx.check()
            except BaseException:
                os.close(fd)
                raise
            time.sleep(0.5)


def _ready(final: Path, max_age: float) -> bool:
    meta = final / "meta.json"
    try:
        created = json.loads(meta.read_text())["createdAt"]
    except (OSError, ValueError, KeyError):
        return False
    return time.time() - created < max_age


def harvest_debs(src: Path, cache: Path) -> int:
    """Hardlink newly downloaded .debs into the shared cache (link() is atomic; first one wins)."""
    cache.mkdir(parents=True, exist_ok=True)
    added = 0
    for deb in src.glob("*.deb"):
        target = cache / deb.name
        if target.exists():
            continue
        try:
            os.link(deb, target)
            added += 1
        except FileExistsError:
            pass
        except OSError:
            continue
    return added


def seed_debs(cache: Path, dest: Path) -> None:
    """Give a build its own archives dir, hardlinked from the shared cache (no apt lock sharing)."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "partial").mkdir(exist_ok=True)
    if not cache.is_dir():
        return
    for deb in cache.glob("*.deb"):
        try:
            os.link(deb, dest / deb.name)
            os.utime(deb)  # LRU: a reused .deb counts as recently used
        except FileExistsError:
            pass
        except OSError:
            continue


def ensure_base(ctx: BuildContext, release: str, bootable: bool) -> Path:
    """Return the base rootfs directory, building it if needed; holds a shared lock until cleanup."""
    settings = ctx.settings
    key = base_key(release, settings.mirror, bootable)
    root = settings.cache_dir / "base"
    final = root / key
    lock_path = root / f"{key}.lock"

    fd = _lock(ctx, lock_path, shared=True)
    if _ready(final, settings.base_max_age):
        ctx.cleanup.push("base lock", lambda: os.close(fd))
        os.utime(final / "meta.json")
        ctx.log(f"reusing cached base layer {key} ({release}, {'bootable' if bootable else 'minimal'})")
        return final / "rootfs"
    os.close(fd)

    fd = _lock(ctx, lock_path, shared=False)
    try:
        if not _ready(final, settings.base_max_age):
            _build_base(ctx, release, bootable, key, final)
        fcntl.flock(fd, fcntl.LOCK_SH)
    except BaseException:
        os.close(fd)
        raise
    ctx.cleanup.push("base lock", lambda: os.close(fd))
    os.utime(final / "meta.json")
    return final / "rootfs"


def _build_base(ctx: BuildContext, release: str, bootable: bool, key: str, final: Path) -> None:
    settings = ctx.settings
    packages = base_packages(bootable)
    staging, lock = make_staging(settings.cache_dir / "base", key)
    ctx.cleanup.push("base staging lock", lambda: os.close(lock))  # LIFO: held until the tree is gone
    ctx.cleanup.push("base staging", lambda: remove_tree(staging))
    debs = staging / "debs"
    apt_cache = settings.cache_dir / "apt"
    seed_debs(apt_cache, debs)
    target = staging / "rootfs"
    ctx.log(f"bootstrapping base layer {key}: {release} minbase + {', '.join(packages) or 'nothing else'}")

    setup = (f'mkdir -p "$1/var/cache/apt/archives" && '
             f'mount --bind {shlex.quote(str(debs))} "$1/var/cache/apt/archives"')
    essential = ('mkdir -p "$1/etc/initramfs-tools/conf.d" && '
                 'printf "COMPRESS=zstd\\n" > "$1/etc/initramfs-tools/conf.d/kiln.conf"')
    customize = [
        # Release the deb cache before mmdebstrap's cleanup empties /var/cache/apt/archives.
        'umount "$1/var/cache/apt/archives"',
        # apt's binary cache of the package lists, kept in the base: a build's apt runs twice (download
        # with network, install without) and would otherwise parse the lists from scratch.
        'chroot "$1" apt-cache gencaches',
    ]
    if bootable:
        customize.append(
            'mkdir -p "$1/etc/systemd/network" && printf %s ' + shlex.quote(NETWORK_UNIT)
            + ' > "$1/etc/systemd/network/80-kiln-dhcp.network" && chroot "$1" systemctl enable systemd-networkd.service'
        )
    argv = ["mmdebstrap", "--verbose", "--mode=root", "--variant=minbase", "--format=directory",
            "--dpkgopt=force-unsafe-io", "--skip=essential/unlink", "--skip=cleanup/apt/lists",
            "--skip=cleanup/apt/cache",
            f"--setup-hook={setup}", f"--essential-hook={essential}"]
    argv += [f"--dpkgopt={opt}" for opt in DPKG_EXCLUDES]
    argv += [f"--customize-hook={c}" for c in customize]
    if packages:
        argv.append("--include=" + ",".join(packages))
    argv += [release, str(target), settings.mirror]
    # The worker's environment holds the app's secrets; maintainer scripts get none of it.
    # A fixed date: what the base's own build writes (the initrd above all) is the same for the same packages.
    ctx.run(argv, what="mmdebstrap", env={**SANDBOX_ENV, "SOURCE_DATE_EPOCH": str(BASE_EPOCH)}, inherit_env=False)
    added = harvest_debs(debs, apt_cache)
    ctx.log(f"base layer ready; {added} new .deb files added to the shared package cache")
    (staging / "meta.json").write_text(json.dumps({
        "key": key, "release": release, "mirror": settings.mirror, "bootable": bootable,
        "packages": sorted(packages), "createdAt": time.time(), "revision": BASE_REVISION,
        "size": tree_size(target),
    }))
    remove_tree(debs)
    if final.exists():
        old = final.with_name(f".old-{key}-{time.monotonic_ns()}")
        os.rename(final, old)
        remove_tree(old)
    os.rename(staging, final)
