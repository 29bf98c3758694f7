"""How big will the image be: an estimate from the package index's installed sizes, before any build.

The image is the engine's base layer (mmdebstrap's minbase: Essential and Priority: required
packages plus apt; with the kernel and boot packages for the bootable formats), the packages the
recipe's settings need (tzdata, locales, nftables) and the recipe's own packages, each with what it
depends on. The closure follows Pre-Depends and Depends the way apt does without recommends, taking
an alternative already chosen, else the first of each group (a virtual name is served by a provider
already chosen, else its first provider), and sums the index's Installed-Size of every package in it.
"""
from __future__ import annotations

from dataclasses import dataclass

from app.engine.base import BOOT_PACKAGES
from app.engine.configure import support_packages
from app.engine.recipe import BOOTABLE_FORMATS

# How installed sizes become image sizes, from Kiln's own trixie builds on this kind of machine (the
# engine's base layers and build manifests): minbase sums to 122 MB installed and its tree is 139 MB;
# the bootable base (+ kernel, live-boot, systemd) sums to 277 MB and its tree is 349 MB; the live ISO
# with openssh-server is 234 MB, with docker.io as well 318 MB, a plain rootfs tarball 39 MB. With the
# ratios below the estimates for those come to 221, 280 and 50 MB: within about 15 %, up to 30 % for tiny
# images, which is what the answer calls "an estimate".
DOCS_KEPT = 0.8                # dpkg skips docs, man pages and translations (the engine's DPKG_EXCLUDES)
APT_LISTS_KIB = 55 * 1024      # the release's package lists apt keeps in /var/lib/apt/lists
INITRD_KIB = 40 * 1024         # the zstd initramfs of the bootable formats
GRUB_KIB = 8 * 1024            # GRUB's BIOS and UEFI images in the ISO
ZSTD_RATIO = 0.33              # zstd level 3 (squashfs, tarball) on a Debian tree: about a third
QCOW2_RATIO = 1.08             # qcow2 stores ext4 uncompressed; metadata adds a little, free space nothing


@dataclass(frozen=True)
class Estimate:
    packages: int          # packages in the closure
    installed_kib: int     # sum of their Installed-Size
    base_kib: int          # of which the base layer and the settings' packages
    kernel_kib: int        # of which the kernel (already compressed modules, vmlinuz)
    tree_kib: int          # the estimated root filesystem
    compressed_kib: int    # the estimated artifact of the recipe's format
    unknown: tuple[str, ...] = ()  # names the index has no entry for


def closure(index, roots: list[str], chosen: dict[str, None] | None = None) -> dict[str, None]:
    """The packages `roots` pull in (insertion-ordered), following (Pre-)Depends' first alternatives."""
    chosen = {} if chosen is None else chosen
    todo = list(reversed(roots))
    while todo:
        name = _real(index, todo.pop(), chosen)
        if name is None or name in chosen:
            continue
        chosen[name] = None
        for group in index.depends(name):
            pick = next((alt for alt in group if alt in chosen), None) or group[0]
            todo.append(pick)
    return chosen


def _real(index, name: str, chosen: dict[str, None]) -> str | None:
    if index.installed_size(name) is not None:
        return name
    providers = index.providers(name)
    return next((p for p in providers if p in chosen), providers[0] if providers else None)


def base_roots(index, recipe: dict) -> list[str]:
    bootable = recipe["format"] in BOOTABLE_FORMATS
    return [*index.required(), "apt", *(BOOT_PACKAGES if bootable else ()), *support_packages(recipe)]


def estimate(index, recipe: dict) -> Estimate:
    bootable = recipe["format"] in BOOTABLE_FORMATS
    base = closure(index, base_roots(index, recipe))
    everything = closure(index, list(recipe["packages"]), dict(base))
    size = {p: index.installed_size(p) for p in everything}
    installed, base_kib = sum(size.values()), sum(size[p] for p in base)
    # Kernel modules ship xz-compressed: dpkg's excludes do not touch them and zstd does not shrink them.
    kernel = sum(v for p, v in size.items() if p.startswith("linux-image-"))
    initrd = INITRD_KIB if bootable else 0
    tree = int((installed - kernel) * DOCS_KEPT) + kernel + APT_LISTS_KIB + initrd
    if recipe["format"] == "iso":
        compressed = (tree - kernel - initrd) * ZSTD_RATIO + kernel + initrd + GRUB_KIB
    elif recipe["format"] == "qcow2":
        compressed = tree * QCOW2_RATIO
    else:
        compressed = tree * ZSTD_RATIO
    unknown = tuple(p for p in recipe["packages"] if _real(index, p, everything) is None)
    return Estimate(len(everything), installed, base_kib, kernel, tree, int(compressed), unknown)


def heaviest(index, recipe: dict, limit: int = 3) -> list[tuple[str, int]]:
    """The recipe's packages by what each adds on its own (itself and what only it pulls in), largest first."""
    base = closure(index, base_roots(index, recipe))
    alone = []
    for p in recipe["packages"]:
        added = closure(index, [p], dict(base))
        alone.append((p, sum(index.installed_size(n) for n in added if n not in base)))
    return sorted(alone, key=lambda x: -x[1])[:limit]


def mb(kib: float) -> str:
    mb = kib / 1024
    return f"{mb:.0f} MB" if mb < 1000 else f"{mb / 1024:.1f} GB"


_ARTIFACT = {
    "iso": "The live ISO keeps the tree in squashfs (zstd), which takes a Debian tree to about a third, but the "
           "kernel's modules and the initrd are compressed already: the ISO comes to about {size}.",
    "rootfs": "The rootfs tarball (zstd) takes a Debian tree to about a third: around {size}.",
    "oci": "The OCI image's layer compresses to about a third: around {size}.",
    "qcow2": "The qcow2 disk stores the files uncompressed (free space takes nothing): around {size} at first.",
}


def size_answer(index, recipe: dict) -> str:
    """The reply to "how big will it be?"."""
    e = estimate(index, recipe)
    extra = e.installed_kib - e.base_kib
    parts = [f"An estimate from the {recipe['release']} index's installed sizes: {e.packages} packages come to "
             f"{mb(e.installed_kib)} installed, the base system {mb(e.base_kib)}"
             + (f" and the recipe's packages with what they depend on {mb(extra)}" if recipe["packages"] else "")
             + f". The root filesystem would be about {mb(e.tree_kib)} (without docs and man pages, with apt's "
             f"package lists" + (" and the initrd" if recipe["format"] in BOOTABLE_FORMATS else "") + ").",
             _ARTIFACT[recipe["format"]].format(size=mb(e.compressed_kib))]
    if e.unknown:
        parts.append(f"Not counted (not in the index): {', '.join(e.unknown)}.")
    parts.append("Each build reports the real sizes.")
    return " ".join(parts)
