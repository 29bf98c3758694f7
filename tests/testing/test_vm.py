"""The QEMU launcher with real QEMU, on images that never reach an OS (fast): ports, timeouts, teardown."""
import dataclasses
import threading
import time

import pytest

from app.engine.testing import VMError, boot_and_check
from app.engine.testing.vm import VM, VMSettings, free_ports


def test_free_ports_are_distinct_loopback_ports():
    ports = free_ports(5)
    assert len(set(ports)) == 5 and all(1024 < p < 65536 for p in ports)


@pytest.fixture
def blank_iso(packed_images):
    # Boots nowhere: no boot record, so SeaBIOS never hands over and the console stays silent.
    return packed_images["iso"]


def test_two_vms_run_at_once_on_different_ports_and_are_torn_down(blank_iso, tmp_path):
    with VM(blank_iso, "iso", tmp_path, forward=[("tcp", 22), ("tcp", 80)], accel="tcg") as a, \
         VM(blank_iso, "iso", tmp_path, forward=[("tcp", 22), ("tcp", 80)], accel="tcg") as b:
        assert a.running() and b.running()
        assert set(a.ports.values()).isdisjoint(b.ports.values())
        assert len({a.host_port(22), a.host_port(80)}) == 2
        run_dirs = [a.run_dir, b.run_dir]
        procs = [a.proc, b.proc]
    for proc in procs:
        assert proc.poll() is not None, "QEMU was killed"
    assert not any(d.exists() for d in run_dirs), "sockets and overlays are removed"
    assert len(list(tmp_path.glob("console-iso-*.log"))) == 2, "console logs are kept"


def test_qcow2_boots_from_a_throwaway_overlay(packed_images, tmp_path):
    image = packed_images["qcow2"]
    before = image.read_bytes()
    with VM(image, "qcow2", tmp_path, accel="tcg") as vm:
        overlay = vm.run_dir / "overlay.qcow2"
        assert overlay.exists()
        assert any(f"file={overlay}" in arg for arg in vm.proc.args)
    assert not overlay.exists()
    assert image.read_bytes() == before


@pytest.fixture
def tcg():
    # Skip the KVM probe: these VMs never run an OS, so the accelerator does not matter.
    return VMSettings(accel="tcg")


def test_boot_timeout_is_reported_and_vm_torn_down(blank_iso, tmp_path, tcg):
    started = time.monotonic()
    run = boot_and_check(
        blank_iso, "iso", [{"type": "boots", "params": {}},
                           {"type": "service_running", "params": {"service": "ssh"}}],
        work_dir=tmp_path, boot_timeout=3, vm_settings=tcg)
    results = run.results
    assert time.monotonic() - started < 30
    assert results[0].result == "failed" and "timed out after 3 s without a login prompt" in results[0].message
    assert results[1].result == "skipped" and "did not boot" in results[1].message
    assert run.boot_seconds is None and run.console_log and run.console_log.endswith(".log")
    # A hang is not a death before init: it is not retried.
    assert [a.outcome for a in run.attempts] == ["timed-out"]
    assert not list(tmp_path.glob("*/qga.sock"))


def test_cancel_stops_the_boot(blank_iso, tmp_path, tcg):
    cancel = threading.Event()
    threading.Timer(1.0, cancel.set).start()
    started = time.monotonic()
    run = boot_and_check(blank_iso, "iso", [{"type": "boots", "params": {}}],
                         work_dir=tmp_path, cancel=cancel, boot_timeout=120, vm_settings=tcg)
    assert time.monotonic() - started < 20
    assert run.results[0].result == "failed" and "cancelled" in run.results[0].message
    assert [a.outcome for a in run.attempts] == ["cancelled"]


def test_bad_images_raise_vm_errors(tmp_path, packed_images):
    with pytest.raises(VMError, match="does not exist"):
        VM(tmp_path / "nope.iso", "iso", tmp_path)
    with pytest.raises(VMError, match="does not boot"):
        VM(packed_images["rootfs"], "rootfs", tmp_path)
    junk = tmp_path / "junk.qcow2"
    junk.write_bytes(b"junk")
    with pytest.raises(VMError, match="overlay"):
        with VM(junk, "qcow2", tmp_path, accel="tcg"):
            pass


def test_qemu_killed_before_init_is_retried_on_a_fresh_vm(blank_iso, tmp_path, tcg, kill_first_vm):
    log = kill_first_vm(lambda console: True, tmp_path, delay=1.0)
    run = boot_and_check(blank_iso, "iso", [{"type": "boots", "params": {}}], work_dir=tmp_path, log=log,
                         boot_timeout=4, vm_settings=tcg)
    assert len(log.started) == 2 and log.started[0] != log.started[1]
    first, second = run.attempts
    assert (first.outcome, second.outcome) == ("qemu-error", "timed-out")
    assert "QEMU was killed by signal 9" in first.reason
    assert first.console_log != second.console_log and run.console_log == second.console_log
    [boot] = run.results
    assert boot.result == "failed"
    assert boot.message.startswith("the first VM failed before its init system (the VM stopped before reaching a "
                                   "login prompt (QEMU was killed by signal 9)) and was retried on a fresh one; "
                                   "the retry: timed out after 4 s"), boot.message


def test_qemu_failing_twice_is_an_error_not_the_images_fault(blank_iso, tmp_path, tcg):
    run = boot_and_check(blank_iso, "iso", [{"type": "boots", "params": {}},
                                            {"type": "service_running", "params": {"service": "ssh"}}],
                         work_dir=tmp_path, boot_timeout=30,
                         vm_settings=dataclasses.replace(tcg, machine="no-such-machine"))
    assert [a.outcome for a in run.attempts] == ["qemu-error", "qemu-error"]
    assert [r.result for r in run.results] == ["error", "error"]
    assert run.results[0].message.startswith("QEMU failed on two fresh VMs, so the image could not be tested")
    assert run.results[0].message.count("unsupported machine type") == 1, run.results[0].message
