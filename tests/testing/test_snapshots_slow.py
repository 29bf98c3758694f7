"""Booted-VM snapshots with real QEMU: a bad snapshot costs a cold boot, never the run; a good one skips the boot.

One cold boot for the module (the fallback from a planted corrupt snapshot, which saves a good one) and one
restore of the snapshot it saved.
"""
from __future__ import annotations

import hashlib
import os
import time

import pytest

from app.engine.testing import run_image_tests
from app.engine.testing.snapshots import STATE_FILE, SnapshotStore
from app.engine.testing.vm import VM, VMSettings, choose_accel

pytestmark = pytest.mark.slow

BOOT_TIMEOUT = float(os.environ.get("KILN_TEST_BOOT_TIMEOUT", "900"))


def _checks(now: int) -> list[dict]:
    """ssh runs and answers, the guest writes a file, and its clock is not behind the run's start: a restored
    guest's clock would still read the time its snapshot was taken (minutes earlier) had it not been set."""
    return [{"type": "service_running", "params": {"service": "ssh"}},
            {"type": "port_open", "params": {"port": 22}},
            {"type": "command_succeeds", "params": {
                "command": f"echo written > /root/probe && grep -qx written /root/probe && test $(date +%s) -ge {now - 5}"}}]


@pytest.fixture(scope="module")
def iso(built_artifacts):
    return built_artifacts["iso"]


@pytest.fixture(scope="module")
def store(engine_settings):
    return SnapshotStore(engine_settings)


@pytest.fixture(scope="module")
def key(iso, tmp_path_factory):
    settings = VMSettings()
    vm = VM(iso, "iso", tmp_path_factory.mktemp("key"), settings=settings, savable=True)
    try:
        return vm.snapshot_key(hashlib.sha256(iso.read_bytes()).hexdigest(), choose_accel(settings))
    finally:
        vm.stop()


def _run(iso, store, tmp_path, lines):
    report = run_image_tests(iso, "iso", {}, extra_assertions=_checks(int(time.time())), include_defaults=False,
                             work_dir=tmp_path, log=lambda level, message: lines.append(message),
                             boot_timeout=BOOT_TIMEOUT, vm_settings=VMSettings(), snapshots=store)
    print("\n".join(lines))
    return report


@pytest.fixture(scope="module")
def fallback(iso, store, key, tmp_path_factory):
    """A run that finds a corrupt snapshot under its key."""
    existing = store.lookup(key)
    if existing is not None:
        store.discard(existing)
    staging = store.staging(key)
    (staging / STATE_FILE).write_bytes(b"QFI\xfb" + os.urandom(1 << 16))
    assert store.store(key, staging, boot_seconds=60.0, accel=choose_accel(VMSettings()))
    lines: list[str] = []
    return _run(iso, store, tmp_path_factory.mktemp("fallback"), lines), lines


def test_a_corrupt_snapshot_falls_back_to_a_cold_boot_that_passes_and_saves_a_good_one(fallback, store, key):
    report, lines = fallback
    assert report.passed, report.to_dict()
    assert [a.from_snapshot for a in report.boot_attempts] == [False]
    assert any(line.startswith("could not resume the snapshot of an earlier boot of this image") for line in lines)
    assert any("(cold boot)" in line for line in lines)
    assert any(line.startswith("saved the booted VM") for line in lines)
    saved = store.lookup(key)
    assert saved is not None and saved.path.stat().st_size > 1 << 20 and saved.boot_seconds > 0


def test_a_later_run_of_the_same_image_resumes_the_snapshot(fallback, iso, store, key, tmp_path):
    lines: list[str] = []
    report = _run(iso, store, tmp_path, lines)
    assert report.passed, report.to_dict()
    assert [a.from_snapshot for a in report.boot_attempts] == [True]
    assert report.to_dict()["bootAttempts"][0]["fromSnapshot"] is True
    assert any(line.startswith("test VM booted from a snapshot of an earlier boot of this image") for line in lines)
    assert not any("(cold boot)" in line or line.startswith("saved the booted VM") for line in lines)
    assert [a.result for t in report.tests for a in t.assertions] == ["passed"] * 3
    # The snapshot stays for the next run.
    assert store.lookup(key) is not None


def test_the_kiln_test_cli_resumes_the_saved_boot_from_the_engine_cache(fallback, iso, store, key, engine_settings,
                                                                       monkeypatch):
    """`kiln test` keeps its saved boots where the engine keeps its caches (KILN_DATA_DIR), so a second run of the
    CLI on the same image resumes instead of booting."""
    from click.testing import CliRunner

    from app.engine.cli import kiln

    assert store.lookup(key) is not None  # saved by the fallback run's cold boot
    monkeypatch.setenv("KILN_DATA_DIR", str(engine_settings.data_dir))
    result = CliRunner().invoke(kiln, ["test", str(iso), "--no-defaults", "--assert", "service_running:service=ssh",
                                       "--boot-timeout", str(BOOT_TIMEOUT)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "test VM booted from a snapshot of an earlier boot of this image" in result.output
    assert "passed  service_running(service=ssh)" in result.output
