"""Booted-VM snapshots without booting: the key, the setting, and the cache entries (store, lookup, discard, LRU)."""
from __future__ import annotations

import dataclasses
import os

import pytest

from app.engine.cache import cache_usage, evict
from app.engine.settings import EngineSettings
from app.engine.testing.snapshots import STATE_FILE, SnapshotStore
from app.engine.testing.vm import VM, VMSettings

SHA = "ab" * 32


@pytest.fixture
def blank(tmp_path):
    image = tmp_path / "blank.iso"
    image.write_bytes(b"")
    return image


def _key(image, tmp_path, accel="tcg", fmt="iso", forward=None, **settings) -> str:
    vm = VM(image, fmt, tmp_path, forward=forward, settings=dataclasses.replace(VMSettings(), **settings),
            savable=True)
    try:
        return vm.snapshot_key(SHA, accel)
    finally:
        vm.stop()


def test_the_key_is_the_images_sha256_and_the_vm_not_its_ports_or_paths(blank, tmp_path):
    first = _key(blank, tmp_path / "a", forward=[("tcp", 22)])
    # Another VM of the same image and settings: its own id, run dir, console log and guest ports to forward.
    again = _key(blank, tmp_path / "b", forward=[("tcp", 22), ("tcp", 80)])
    assert first == again
    assert first.startswith(SHA + "-")


@pytest.mark.parametrize("change", [
    {"memory_mb": 1024}, {"cpus": 1}, {"machine": "q35"}, {"cpu_model": "max"}, {"cdrom": "ide"},
    {"icount": "shift=auto"}, {"tcg_thread": "single"}, {"firmware": "uefi"},
])
def test_the_key_changes_with_the_vm_settings(blank, tmp_path, change):
    if change.get("firmware") == "uefi" and not os.path.exists("/usr/share/OVMF/OVMF_CODE.fd"):
        pytest.skip("no OVMF on this host")
    assert _key(blank, tmp_path / "a") != _key(blank, tmp_path / "b", **change)


def test_the_key_changes_with_the_accelerator_and_the_image(blank, tmp_path):
    assert _key(blank, tmp_path / "a", accel="tcg") != _key(blank, tmp_path / "b", accel="kvm")
    vm = VM(blank, "iso", tmp_path / "c", savable=True)
    try:
        assert vm.snapshot_key("cd" * 32, "tcg").split("-")[1] == _key(blank, tmp_path / "d").split("-")[1]
        assert vm.snapshot_key("cd" * 32, "tcg") != vm.snapshot_key(SHA, "tcg")
    finally:
        vm.stop()


def test_a_saved_iso_vm_has_a_state_disk_the_guest_does_not_see(blank, tmp_path):
    vm = VM(blank, "iso", tmp_path, savable=True)
    plain = VM(blank, "iso", tmp_path)
    try:
        argv = vm._argv("tcg")
        state = argv[argv.index(f"file={vm.state_file},format=qcow2,if=none,id=vmstate") - 1]
        assert state == "-drive"  # if=none: a block backend with no device, so the guest's hardware is unchanged
        assert [a for a in argv if a.startswith("-device")] == [a for a in plain._argv("tcg") if a.startswith("-device")]
        assert "-qmp" in argv and "-qmp" not in plain._argv("tcg")
    finally:
        vm.stop()
        plain.stop()


@pytest.mark.parametrize("value,expected", [("", True), ("on", True), ("1", True), ("off", False), ("no", False)])
def test_the_setting_turns_snapshots_off(value, expected):
    assert VMSettings.from_config({"KILN_TEST_VM_SNAPSHOTS": value}).snapshots is expected


def test_a_bad_setting_is_refused_by_name():
    with pytest.raises(ValueError, match="KILN_TEST_VM_SNAPSHOTS must be on or off, got 'maybe'"):
        VMSettings.from_config({"KILN_TEST_VM_SNAPSHOTS": "maybe"})


def _stored(store: SnapshotStore, key: str, size: int) -> bool:
    staging = store.staging(key)
    (staging / STATE_FILE).write_bytes(b"\0" * size)
    return store.store(key, staging, boot_seconds=61.26, accel="tcg")


def test_store_lookup_and_discard(tmp_path):
    store = SnapshotStore(EngineSettings(data_dir=tmp_path))
    assert store.lookup("k1") is None
    assert _stored(store, "k1", 1000)
    assert not _stored(store, "k1", 2000)  # a second run storing the same key at once: the first one stays
    found = store.lookup("k1")
    assert found.boot_seconds == 61.3 and found.accel == "tcg" and found.path.stat().st_size == 1000
    assert [p.name for p in store.root.iterdir()] == ["k1"]  # no staging directory left behind
    store.discard(found)
    assert store.lookup("k1") is None and list(store.root.iterdir()) == []


def test_discard_keeps_an_entry_replaced_since_it_was_looked_up(tmp_path):
    store = SnapshotStore(EngineSettings(data_dir=tmp_path))
    _stored(store, "k1", 10)
    stale = store.lookup("k1")
    store.discard(stale)
    _stored(store, "k1", 20)
    store.discard(stale)
    assert store.lookup("k1").path.stat().st_size == 20


def test_snapshots_count_in_the_cache_limit_and_the_least_recently_used_goes_first(tmp_path):
    settings = EngineSettings(data_dir=tmp_path, cache_max_bytes=10**9)
    store = SnapshotStore(settings)
    _stored(store, "old", 400)
    _stored(store, "new", 400)
    os.utime(store.root / "old" / "meta.json", (1, 1))
    assert cache_usage(settings) >= 800
    removed = evict(dataclasses.replace(settings, cache_max_bytes=700))
    assert removed == [store.root / "old"]
    assert store.lookup("old") is None and store.lookup("new") is not None


def test_a_dead_runs_snapshot_staging_is_reclaimed_and_a_live_ones_kept(tmp_path):
    """A worker killed while saving leaves a staging dir of a few hundred MiB; the next worker start takes it."""
    import multiprocessing

    from app.engine.cache import reclaim_staging
    from app.engine.settings import EngineSettings
    from app.engine.testing.snapshots import SnapshotStore

    settings = EngineSettings(data_dir=tmp_path)
    live = SnapshotStore(settings).staging("k" * 16)

    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()

    def save_and_hang():
        SnapshotStore(settings).staging("d" * 16)
        ready.set()
        while True:
            pass

    proc = ctx.Process(target=save_and_hang)
    proc.start()
    try:
        assert ready.wait(30)
    finally:
        proc.kill()
        proc.join()
    dead = [p for p in (tmp_path / "cache" / "boot-snapshots").iterdir() if "d" * 16 in p.name]
    assert len(dead) == 1
    reclaimed, problems = reclaim_staging(settings)
    assert reclaimed == dead and problems == []
    assert live.is_dir()
