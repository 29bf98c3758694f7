"""Reproducible images: the same recipe and package set built twice, on two days, in two data directories.

Build A uses the session's engine caches (its base layer is the one the other slow tests share) without
its own earlier results. Build B bootstraps its own base layer in a fresh data directory
seeded only with the session's .deb files, and every command the engine runs on the host (mmdebstrap's and the
sandbox's cleared environments aside) sees a clock one day ahead through libfaketime. Build C adds one package
to B's recipe: its rootfs differs from B's only in that package's files and dpkg's state.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from app.engine.cache import ResultCache
from app.engine.pipeline import build
from app.engine.recipe import recipe_hash, validate_recipe
from app.engine.settings import EngineSettings, host_mirror
from app.engine.testing.imagefs import open_image
from tests.fixtures.images import SSH_RECIPE

pytestmark = pytest.mark.slow

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
RECIPE = {**SSH_RECIPE, "name": "kiln-repro"}
FORMATS = ["rootfs", "iso", "oci", "qcow2"]
EXTRA = "hello"  # one small package without dependencies of its own beyond libc


def _seed_debs(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for deb in (src / "cache/apt").glob("*.deb") if (src / "cache/apt").is_dir() else []:
        target = dest / deb.name
        try:
            os.link(deb, target)
        except OSError:
            shutil.copy2(deb, target)


def _disk_tree(qcow2: Path, tmp: Path) -> dict[str, tuple]:
    """path -> (mode, owner, mtime, content sha256 or link target) of the files in a qcow2's root filesystem."""
    root = open_image(qcow2, "qcow2", tmp).root
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            if path.is_symlink():  # debugfs rdump cannot set a symlink's own times: its target is what counts
                out[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, None, os.readlink(path))
                continue
            content = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
            out[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, int(st.st_mtime), content)
    return out


def _tree(rootfs: Path) -> dict[str, tuple]:
    """path -> (type, mode, owner, mtime, content sha256 or link target) of every entry of a rootfs tarball."""
    proc = subprocess.Popen(["zstd", "-dcq", str(rootfs)], stdout=subprocess.PIPE)
    out = {}
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for m in tar:
            content = m.linkname
            if m.isfile():
                content = hashlib.sha256(tar.extractfile(m).read()).hexdigest()
            out[m.name.removeprefix("./")] = (m.type, m.mode, m.uid, m.gid, m.mtime, content)
    assert proc.wait() == 0
    return out


@pytest.fixture(scope="module")
def later_settings(engine_data_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("repro-later-data")
    _seed_debs(engine_data_dir, data / "cache/apt")
    return EngineSettings(data_dir=data, mirror=host_mirror())


@pytest.fixture(scope="module")
def builds(engine_settings, later_settings, tmp_path_factory):
    if not LIBFAKETIME.exists():
        pytest.fail(f"{LIBFAKETIME} is missing: install the Debian package faketime (scripts/system-packages.txt)")
    # An earlier run (KILN_TEST_DATA_DIR keeps the caches) left this recipe's results: A must build afresh.
    cache = ResultCache(engine_settings)
    for fmt in FORMATS:
        shutil.rmtree(cache.entry(recipe_hash(validate_recipe(RECIPE)), fmt), ignore_errors=True)
    a = build(RECIPE, tmp_path_factory.mktemp("repro-a"), FORMATS, settings=engine_settings, timeout=1800)
    assert not a.cached
    saved = {k: os.environ.get(k) for k in ("LD_PRELOAD", "FAKETIME", "NO_FAKE_STAT")}
    # NO_FAKE_STAT: files keep their real mtimes; only the clock the commands read moves.
    os.environ.update(LD_PRELOAD=str(LIBFAKETIME), FAKETIME="+1d", NO_FAKE_STAT="1")
    try:
        b = build(RECIPE, tmp_path_factory.mktemp("repro-b"), FORMATS, settings=later_settings, timeout=1800)
        c = build({**RECIPE, "packages": RECIPE["packages"] + [EXTRA]}, tmp_path_factory.mktemp("repro-c"),
                  ["rootfs", "iso"], settings=later_settings, timeout=1800)  # bootable: the same base as B
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return a, b, c


def _mke2fs_version() -> tuple[int, ...]:
    out = subprocess.run(["mke2fs", "-V"], capture_output=True, text=True).stderr
    found = re.search(r"mke2fs (\d+)\.(\d+)\.(\d+)", out)
    assert found, f"cannot read mke2fs's version from {out!r}"
    return tuple(int(x) for x in found.groups())


def test_the_same_packages_give_the_same_bytes_a_day_later(builds, tmp_path):
    a, b, _ = builds
    assert not b.cached
    assert a.manifest["packages"] == b.manifest["packages"]
    epoch = a.manifest["reproducibility"]["sourceDateEpoch"]
    assert epoch == b.manifest["reproducibility"]["sourceDateEpoch"]
    sums_a = {x.kind: x.sha256 for x in a.artifacts if x.kind in FORMATS}
    sums_b = {x.kind: x.sha256 for x in b.artifacts if x.kind in FORMATS}
    assert set(sums_a) == set(FORMATS)
    differ = {k for k in FORMATS if sums_a[k] != sums_b[k]}
    if "qcow2" in differ and _mke2fs_version() < (1, 47, 1):
        # mke2fs -d before 1.47.1 copies each source file's ctime and allocates inodes in readdir order, which
        # differ between two build trees: there the qcow2 is held to identical contents, every file's bytes and
        # metadata. From 1.47.1 (bookworm-backports, which setup installs on Debian 12) the bytes must match.
        qa = next(x.path for x in a.artifacts if x.kind == "qcow2")
        qb = next(x.path for x in b.artifacts if x.kind == "qcow2")
        ta, tb = _disk_tree(qa, tmp_path / "a"), _disk_tree(qb, tmp_path / "b")
        assert len(ta) > 1000
        assert ta == tb, f"the qcow2 filesystems differ: {sorted(k for k in ta.keys() | tb.keys() if ta.get(k) != tb.get(k))[:20]}"
        differ.discard("qcow2")
    assert not differ, f"not reproducible: {sorted(differ)}"


def test_one_more_package_changes_only_its_files_and_dpkg_state(builds):
    _, b, c = builds
    before = _tree(next(x.path for x in b.artifacts if x.kind == "rootfs"))
    after = _tree(next(x.path for x in c.artifacts if x.kind == "rootfs"))
    listed = after.get(f"var/lib/dpkg/info/{EXTRA}.list")
    assert listed, f"{EXTRA} is not installed in build C"
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    assert changed, "adding a package changed nothing"
    package_files = {line.lstrip("/") for line in subprocess.run(
        ["sh", "-c", f"zstd -dcq {c.artifacts[0].path} | tar -xO ./var/lib/dpkg/info/{EXTRA}.list"],
        capture_output=True, text=True, check=True).stdout.splitlines() if line.strip("/")}
    dpkg_state = {"var/lib/dpkg/status", "var/lib/dpkg/status-old"} | {
        p for p in changed if p.startswith(f"var/lib/dpkg/info/{EXTRA}.")}
    unexpected = sorted(changed - package_files - dpkg_state)
    assert not unexpected, f"files changed that {EXTRA} does not own: {unexpected[:20]}"
    assert package_files & changed, f"none of {EXTRA}'s files are in the difference"
