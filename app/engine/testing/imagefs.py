"""Read an image's filesystem, whatever it was shipped as.

Every artifact kind is unpacked once into a plain directory (read-only use), and all checks
run over that directory with symlinks resolved *inside* the image root, never on the host.
Unpacking whole is a few seconds for a live image and keeps one code path for every format.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

from app.engine.fsutil import inside
from app.engine.process import CommandCancelled, CommandFailed, CommandTimedOut, run

UNPACK_TIMEOUT = 900.0


class ImageReadError(Exception):
    """The artifact could not be opened or unpacked; the message says why."""


class ImageTree:
    """An image root directory; paths are absolute paths inside the image."""

    def __init__(self, root: Path, *, owned: bool = False):
        self.root = Path(root)
        self._owned = owned

    def close(self) -> None:
        if self._owned:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "ImageTree":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- path resolution inside the image -------------------------------------------------
    def resolve(self, path: str, *, follow_last: bool = True) -> Path | None:
        """Host path for an image path, following symlinks as the image would; None if missing."""
        try:
            return inside(self.root, path, follow_last=follow_last, strict=True)
        except OSError:  # a missing component, or a symlink loop
            return None

    def exists(self, path: str) -> bool:
        return self.resolve(path) is not None

    def is_dir(self, path: str) -> bool:
        host = self.resolve(path)
        return host is not None and host.is_dir() and not host.is_symlink()

    def readlink(self, path: str) -> str | None:
        host = self.resolve(path, follow_last=False)
        return os.readlink(host) if host is not None and host.is_symlink() else None

    def read_bytes(self, path: str) -> bytes | None:
        host = self.resolve(path)
        if host is None or not host.is_file():
            return None
        return host.read_bytes()

    def read_text(self, path: str) -> str | None:
        data = self.read_bytes(path)
        return None if data is None else data.decode("utf-8", "replace")

    def listdir(self, path: str) -> list[str]:
        host = self.resolve(path)
        if host is None or not host.is_dir():
            return []
        return sorted(os.listdir(host))


# -- unpacking artifacts ----------------------------------------------------------------------

def _run(argv: list[str], cancel: threading.Event | None, what: str, **kw) -> list[str]:
    try:
        _, lines = run(argv, cancel=cancel, deadline=time.monotonic() + UNPACK_TIMEOUT, **kw)
    except CommandFailed as err:
        detail = "; ".join(line for line in err.tail[-5:] if line.strip())
        raise ImageReadError(f"{what} failed ({argv[0]} exited {err.returncode}): {detail}") from None
    except CommandTimedOut:
        raise ImageReadError(f"{what} timed out after {UNPACK_TIMEOUT:.0f} s") from None
    except FileNotFoundError:
        raise ImageReadError(f"{what} needs {argv[0]}, which is not installed") from None
    except CommandCancelled:
        raise
    return lines


def _unpack_iso(iso: Path, dest: Path, scratch: Path, cancel: threading.Event | None) -> None:
    squash = scratch / "filesystem.squashfs"
    candidates = ["/live/filesystem.squashfs"]
    try:
        _run(["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", candidates[0], str(squash)],
             cancel, "extracting the squashfs from the ISO")
    except ImageReadError:
        # Not a live-boot layout: look for any squashfs in the ISO.
        lines = _run(["xorriso", "-indev", str(iso), "-find", "/", "-name", "*.squashfs"], cancel, "listing the ISO")
        found = [ln.strip().strip("'") for ln in lines if ln.strip().endswith(".squashfs'") or ln.strip().endswith(".squashfs")]
        found = [f for f in found if f.startswith("/")]
        if not found:
            raise ImageReadError(f"{iso.name} holds no squashfs root filesystem (looked for /live/filesystem.squashfs)") from None
        _run(["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", found[0], str(squash)],
             cancel, "extracting the squashfs from the ISO")
    _run(["unsquashfs", "-no-xattrs", "-no-progress", "-f", "-d", str(dest), str(squash)], cancel, "unsquashfs")
    squash.unlink(missing_ok=True)


def _untar(archive: Path, dest: Path, cancel: threading.Event | None, what: str) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    # GNU tar detects gzip/xz/zstd by magic on extraction; device nodes are of no use to checks.
    _run(["tar", "-x", "-f", str(archive), "-C", str(dest), "--numeric-owner", "--no-same-owner",
          "--exclude=./dev/*", "--exclude=dev/*"], cancel, what)


def _oci_layers(layout: Path) -> list[Path]:
    """Layer blobs, bottom first, of the first image in an OCI layout or docker archive."""
    def blob(digest: str) -> Path:
        algo, _, hexd = digest.partition(":")
        path = layout / "blobs" / algo / hexd
        if not path.is_file():
            raise ImageReadError(f"OCI archive is missing blob {digest}")
        return path

    index_file = layout / "index.json"
    if index_file.is_file():
        doc = json.loads(index_file.read_text())
        for _ in range(4):  # an index may point at a nested index
            manifests = doc.get("manifests") or []
            if not manifests:
                break
            doc = json.loads(blob(manifests[0]["digest"]).read_text())
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise ImageReadError("OCI archive has no image manifest with layers")
        return [blob(layer["digest"]) for layer in layers]
    docker_manifest = layout / "manifest.json"
    if docker_manifest.is_file():
        entries = json.loads(docker_manifest.read_text())
        if entries and entries[0].get("Layers"):
            return [layout / name for name in entries[0]["Layers"]]
    raise ImageReadError("not an OCI image archive (no index.json or manifest.json)")


def _apply_layer(staging: Path, root: Path) -> None:
    """Merge one unpacked layer onto root, honouring OCI whiteouts (.wh.NAME, .wh..wh..opq)."""
    for dirpath, dirnames, filenames in os.walk(staging, topdown=True):
        rel = Path(dirpath).relative_to(staging)
        target_dir = root / rel
        names = dirnames + filenames
        if ".wh..wh..opq" in names and target_dir.is_dir():
            for child in target_dir.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        for name in names:
            if name.startswith(".wh."):
                victim = target_dir / name[4:]
                if name != ".wh..wh..opq" and (victim.exists() or victim.is_symlink()):
                    shutil.rmtree(victim) if victim.is_dir() and not victim.is_symlink() else victim.unlink()
        for name in list(dirnames):
            src, dst = Path(dirpath) / name, target_dir / name
            if dst.is_symlink() or (dst.exists() and not dst.is_dir()):
                dst.unlink()
            if not dst.exists():
                os.rename(src, dst)
                dirnames.remove(name)  # moved whole; nothing left to walk
        for name in filenames:
            if name.startswith(".wh."):
                continue
            src, dst = Path(dirpath) / name, target_dir / name
            if dst.is_dir() and not dst.is_symlink():
                shutil.rmtree(dst)
            os.replace(src, dst)


def _unpack_oci(archive: Path, dest: Path, scratch: Path, cancel: threading.Event | None) -> None:
    layout = scratch / "oci-layout"
    _untar(archive, layout, cancel, "unpacking the OCI archive")
    layers = _oci_layers(layout)
    dest.mkdir(parents=True, exist_ok=True)
    for i, layer in enumerate(layers):
        staging = scratch / f"layer{i}"
        _untar(layer, staging, cancel, f"unpacking OCI layer {i + 1}/{len(layers)}")
        _apply_layer(staging, dest)
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(layout, ignore_errors=True)


def _ext_partition_offsets(raw: Path, cancel: threading.Event | None) -> list[int]:
    """Byte offsets of the partitions, largest first; [0] for a bare filesystem."""
    try:
        lines = _run(["sfdisk", "--json", str(raw)], cancel, "reading the partition table", capture=True)
        table = json.loads("\n".join(lines))["partitiontable"]
    except (ImageReadError, ValueError, KeyError):
        return [0]
    sector = int(table.get("sectorsize", 512))
    parts = sorted(table.get("partitions", []), key=lambda p: -int(p["size"]))
    return [int(p["start"]) * sector for p in parts] or [0]


def _unpack_qcow2(image: Path, dest: Path, scratch: Path, cancel: threading.Event | None) -> None:
    raw = scratch / "disk.raw"
    _run(["qemu-img", "convert", "-O", "raw", str(image), str(raw)], cancel, "converting the qcow2 image to raw")
    try:
        problems = []
        for offset in _ext_partition_offsets(raw, cancel):
            device = f"{raw}?offset={offset}"
            try:
                lines = _run(["debugfs", "-c", "-R", "stat /etc", device], cancel, "debugfs", capture=True)
            except ImageReadError as err:
                problems.append(f"offset {offset}: {err}")
                continue
            if not any("Type: directory" in ln for ln in lines):
                problems.append(f"offset {offset}: no /etc")
                continue
            dest.mkdir(parents=True, exist_ok=True)
            _run(["debugfs", "-c", "-R", f"rdump / {dest}", device], cancel, "copying files out of the disk image")
            return
        raise ImageReadError("found no ext2/3/4 root filesystem (with /etc) in the disk image: " + "; ".join(problems))
    finally:
        raw.unlink(missing_ok=True)


def open_image(artifact: Path, fmt: str, work_dir: Path, *, cancel: threading.Event | None = None) -> ImageTree:
    """Unpack `artifact` under work_dir and return its tree; a directory is used in place."""
    artifact = Path(artifact)
    if artifact.is_dir():
        return ImageTree(artifact)
    if not artifact.is_file():
        raise ImageReadError(f"artifact {artifact} does not exist")
    unpackers = {"iso": _unpack_iso, "qcow2": _unpack_qcow2, "oci": _unpack_oci,
                 "rootfs": lambda a, d, s, c: _untar(a, d, c, "unpacking the rootfs tarball")}
    if fmt not in unpackers:
        raise ImageReadError(f"unknown image format {fmt!r}; one of: {', '.join(unpackers)}")
    work_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(work_dir) / f"unpack-{os.getpid()}-{threading.get_ident()}-{fmt}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    dest = scratch / "root"
    try:
        unpackers[fmt](artifact, dest, scratch, cancel)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return _ScratchTree(dest, scratch)


class _ScratchTree(ImageTree):
    def __init__(self, root: Path, scratch: Path):
        super().__init__(root, owned=True)
        self._scratch = scratch

    def close(self) -> None:
        shutil.rmtree(self._scratch, ignore_errors=True)
