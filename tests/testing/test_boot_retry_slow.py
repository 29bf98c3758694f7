"""Whose fault is a boot that dies before the init system: the image's only when a fresh VM dies the same way.

Real boots of the session's SSH ISO under QEMU: one with QEMU killed mid-boot (the emulator's fault:
retried, passes), one of a copy whose initramfs is zeroed (the image's fault: fails twice, blamed).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from app.engine.testing import boot_and_check, run_image_tests

from tests.fixtures.images import SSH_RECIPE

pytestmark = pytest.mark.slow

BOOT_TIMEOUT = float(os.environ.get("KILN_TEST_BOOT_TIMEOUT", "900"))


@pytest.fixture(scope="module")
def zeroed_initrd_iso(built_artifacts, tmp_path_factory):
    """A copy of the built ISO whose /live/initrd.img bytes are all zero (same size, boot records intact)."""
    iso = tmp_path_factory.mktemp("broken-initrd") / "kiln-ssh-no-initramfs.iso"
    shutil.copyfile(built_artifacts["iso"], iso)
    report = subprocess.run(["xorriso", "-indev", str(iso), "-find", "/live/initrd.img", "-exec", "report_lba", "--"],
                            capture_output=True, text=True, check=True)
    m = re.search(r"File data lba:\s*\d+\s*,\s*(\d+)\s*,\s*\d+\s*,\s*(\d+)\s*,\s*'/live/initrd.img'",
                  report.stdout + report.stderr)
    assert m, report.stdout + report.stderr
    lba, size = int(m.group(1)), int(m.group(2))
    with open(iso, "r+b") as f:
        f.seek(lba * 2048)
        f.write(b"\0" * size)
    return iso


def test_an_image_that_panics_before_init_twice_is_blamed_after_the_retry(zeroed_initrd_iso, tmp_path):
    run = boot_and_check(zeroed_initrd_iso, "iso", [{"type": "boots", "params": {}},
                                                    {"type": "service_running", "params": {"service": "ssh"}}],
                         work_dir=tmp_path, boot_timeout=BOOT_TIMEOUT)
    boot, ssh = run.results
    assert [a.outcome for a in run.attempts] == ["died-before-init", "died-before-init"]
    for attempt in run.attempts:
        assert attempt.reason.startswith("kernel panic: VFS: Unable to mount root fs"), attempt.reason
        assert "Kernel panic - not syncing" in attempt.console_tail
    assert run.attempts[0].console_log != run.attempts[1].console_log
    assert boot.result == "failed"
    assert boot.message.startswith("died before its init system on two fresh VMs, the same way: kernel panic: "
                                   "VFS: Unable to mount root fs"), boot.message
    assert "so the image is at fault, not the emulator" in boot.message
    assert ssh.result == "skipped" and run.boot_seconds is None


def test_qemu_killed_mid_boot_once_passes_on_the_retry_with_both_attempts_recorded(built_artifacts, tmp_path,
                                                                                   kill_first_vm):
    # Killed once the kernel is running, before the init system: exactly where the TCG panics struck.
    log = kill_first_vm(lambda console: "Linux version" in console, tmp_path)
    # The boot limit is the slow-test one: this test is about whose fault, not about speed.
    checks = [{"type": "boots", "params": {"timeoutSeconds": int(BOOT_TIMEOUT)}},
              {"type": "service_running", "params": {"service": "ssh"}}]
    report = run_image_tests(built_artifacts["iso"], "iso", SSH_RECIPE, extra_assertions=checks,
                             include_defaults=False, work_dir=tmp_path, log=log, boot_timeout=BOOT_TIMEOUT)
    assert len(log.started) == 2
    boot, ssh = next(t for t in report.tests if t.description == "Requested checks").assertions
    assert report.status == "passed", report.failures()
    assert boot.result == "passed" and ssh.result == "passed"
    assert "on a second VM; the first failed before its init system" in boot.message, boot.message
    assert "QEMU was killed by signal 9" in boot.message
    doc = report.to_dict()
    assert doc["bootRetries"] == 1
    first, second = doc["bootAttempts"]
    assert (first["attempt"], first["outcome"], second["attempt"], second["outcome"]) == \
        (1, "qemu-error", 2, "booted")
    # The first VM's console (its last lines) shows the kernel it was running when QEMU died.
    assert re.search(r"^\[\s*\d+\.\d+\] ", first["console"], re.M), first["console"]
    assert first["consoleLog"] != second["consoleLog"]
    assert second["consoleLog"] == doc["consoleLog"] and doc["bootSeconds"] == round(second["seconds"], 1)
