"""The reproducibility rules on small real trees: the epoch, the normalized tree, the package lock's pieces."""
from __future__ import annotations

import os

import pytest

from app.engine.configure import lock_preferences, snapshot_url
from app.engine.pipeline import cache_key
from app.engine.recipe import recipe_hash, validate_recipe
from app.engine.reproducible import FALLBACK_EPOCH, SSH_KEYGEN_NAME, normalize_tree, source_date_epoch
from app.engine.settings import EngineSettings

EPOCH = 1750000000  # 2025-06-15


def _write(root, path, data="x", mtime=None):
    f = root / path.lstrip("/")
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(data)
    if mtime is not None:
        os.utime(f, (mtime, mtime))
    return f


def test_epoch_is_the_newest_packaged_copyright_file(tmp_path):
    _write(tmp_path, "/usr/share/doc/old/copyright", mtime=1600000000)
    _write(tmp_path, "/usr/share/doc/new/copyright", mtime=1700000000)
    _write(tmp_path, "/usr/share/doc/unlisted/copyright", mtime=1800000000)
    packages = [{"name": "old"}, {"name": "new"}, {"name": "nodoc"}]
    assert source_date_epoch(tmp_path, packages) == 1700000000
    assert source_date_epoch(tmp_path, [{"name": "nodoc"}]) == FALLBACK_EPOCH


def test_normalize_removes_what_records_the_build_and_clamps_times(tmp_path):
    root = tmp_path
    _write(root, "/etc/machine-id", "0123456789abcdef0123456789abcdef\n")
    _write(root, "/etc/ssh/ssh_host_ed25519_key", "secret")
    _write(root, "/etc/ssh/ssh_host_ed25519_key.pub", "public")
    _write(root, "/usr/bin/ssh-keygen", "#!/bin/sh\n")
    _write(root, "/var/lib/systemd/random-seed", "random")
    _write(root, "/var/cache/ldconfig/aux-cache", "inodes")
    _write(root, "/var/lib/apt/lists/deb.debian.org_dists_trixie_InRelease", "Date: today")
    (root / "var/lib/apt/lists/partial").mkdir()
    _write(root, "/var/lib/apt/lists/lock", "")
    _write(root, "/var/log/dpkg.log", "2026-12-01 18:00:00 install hello")
    _write(root, "/usr/lib/python3/dist-packages/x/__pycache__/a.cpython-313.pyc", "pyc")
    _write(root, "/etc/shadow", "root:*:20423:0:99999:7:::\nadmin:!:20424:0:99999:7:::\n")
    os.chmod(root / "etc/shadow", 0o640)
    kept = _write(root, "/usr/share/doc/hello/copyright", mtime=1600000000)

    changed = normalize_tree(root, EPOCH)

    assert (root / "etc/machine-id").read_text() == ""
    assert not (root / "etc/ssh/ssh_host_ed25519_key").exists()
    unit = root / f"etc/systemd/system/{SSH_KEYGEN_NAME}"
    assert "ssh-keygen -q -t $$t" in unit.read_text() and "Before=ssh.service" in unit.read_text()
    assert os.readlink(root / f"etc/systemd/system/ssh.service.wants/{SSH_KEYGEN_NAME}") == f"/{unit.relative_to(root)}"
    assert not (root / "var/lib/systemd/random-seed").exists()
    assert not (root / "var/cache/ldconfig/aux-cache").exists()
    assert sorted(p.name for p in (root / "var/lib/apt/lists").iterdir()) == ["lock", "partial"]
    assert (root / "var/log/dpkg.log").stat().st_size == 0
    assert not (root / "usr/lib/python3/dist-packages/x/__pycache__").exists()
    day = EPOCH // 86400
    assert (root / "etc/shadow").read_text() == f"root:*:{day}:0:99999:7:::\nadmin:!:{day}:0:99999:7:::\n"
    assert (root / "etc/shadow").stat().st_mode & 0o777 == 0o640
    assert kept.stat().st_mtime == 1600000000  # older than the epoch: the package's own time stays
    newest = max(os.lstat(os.path.join(d, n)).st_mtime for d, ds, fs in os.walk(root) for n in ds + fs)
    assert newest == EPOCH and root.stat().st_mtime == EPOCH
    assert any("mtime(s) clamped" in c for c in changed)


def test_normalize_a_second_time_changes_nothing_more(tmp_path):
    _write(tmp_path, "/etc/machine-id", "abc\n")
    normalize_tree(tmp_path, EPOCH)
    again = normalize_tree(tmp_path, EPOCH)
    assert again == ["0 mtime(s) clamped to SOURCE_DATE_EPOCH"]


def test_package_lock_pins_and_keys():
    prefs = lock_preferences({"openssh-server": "1:10.0p1-7", "libc6": "2.41-12"})
    assert prefs.startswith("Package: libc6\nPin: version 2.41-12\nPin-Priority: 1001\n\n")
    assert "Package: openssh-server\nPin: version 1:10.0p1-7\n" in prefs
    recipe = validate_recipe({"name": "web"})
    assert cache_key(recipe, None) == recipe_hash(recipe)
    assert cache_key(recipe, {"libc6": "2.41-12"}) != cache_key(recipe, {"libc6": "2.41-11"}) != recipe_hash(recipe)


def test_snapshot_mirror_setting_and_url():
    assert snapshot_url("https://snapshot.debian.org/archive/debian/", "2026-12-01T18:30:05Z") == \
        "https://snapshot.debian.org/archive/debian/20261201T183005Z"
    with pytest.raises(ValueError):
        snapshot_url("https://snapshot.debian.org/archive/debian", "yesterday")
    settings = EngineSettings.from_config({"KILN_SNAPSHOT_MIRROR": "https://snapshot.debian.org/archive/debian/"})
    assert settings.snapshot_mirror == "https://snapshot.debian.org/archive/debian"
    assert EngineSettings.from_config({}).snapshot_mirror is None
    with pytest.raises(ValueError, match="KILN_SNAPSHOT_MIRROR"):
        EngineSettings.from_config({"KILN_SNAPSHOT_MIRROR": "snapshot.debian.org"})
