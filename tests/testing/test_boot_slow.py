"""Real boots of images built by the engine (TCG ~1 min each on 2 idle cores): few boots, many checks each."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from app.engine.pipeline import build
from app.engine.testing import boot_and_check, run_image_tests
from app.engine.testing.console import parse_console

from tests.fixtures.images import SSH_RECIPE

pytestmark = pytest.mark.slow

# Generous: a loaded CI machine can triple a TCG boot.
BOOT_TIMEOUT = float(os.environ.get("KILN_TEST_BOOT_TIMEOUT", "900"))

RECIPE_TESTS = [
    {"type": "command_succeeds", "params": {"command": "cat /etc/motd", "stdoutContains": "built by kiln"}},
    {"type": "service_running", "params": {"service": "nginx"}},
    {"type": "user_exists", "params": {"user": "admin", "groups": ["sudo"]}},
]
EXTRA = [
    {"type": "port_open", "params": {"port": 22}},
    {"type": "command_succeeds", "params": {"command": "systemctl is-system-running --wait; hostname",
                                            "stdoutContains": "kiln-test"}},
    {"type": "command_succeeds", "params": {"command": "exit 7"}},
    # The boot path the build trimmed (app/engine/bootpath.py): the first-boot update units were skipped as
    # done, a masked generator did not run, and live-boot's network step was off.
    {"type": "command_succeeds", "params": {"command": (
        "systemctl show -P ConditionResult ldconfig.service systemd-journal-catalog-update.service | sort -u"
        " | grep -qx no && test -L /etc/systemd/system-generators/systemd-ssh-generator"
        " && ! systemctl list-units --all --plain --no-legend 'sshd-vsock*' | grep -q . "
        " && grep -qw nonetworking /proc/cmdline && echo trimmed"), "stdoutContains": "trimmed"}},
]


def qemu_running(vm_id: str) -> bool:
    return subprocess.run(["pgrep", "-f", f"kiln-test-{vm_id}"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def iso_report(built_artifacts, tmp_path_factory):
    recipe = dict(SSH_RECIPE, tests=RECIPE_TESTS)
    work = tmp_path_factory.mktemp("iso-test")
    report = run_image_tests(built_artifacts["iso"], "iso", recipe, extra_assertions=EXTRA, work_dir=work,
                             boot_timeout=BOOT_TIMEOUT)
    print(json.dumps(report.to_dict(), indent=1))
    return report


def results(report, description):
    return {(a.type, json.dumps(a.params, sort_keys=True)): a for t in report.tests if t.description == description
            for a in t.assertions}


def by_type(report, description, kind):
    return [a for t in report.tests if t.description == description for a in t.assertions if a.type == kind]


def test_iso_boots_to_a_login_prompt(iso_report):
    [boot] = by_type(iso_report, "Boot verification", "boots")
    assert boot.result == "passed", boot.message
    assert "reached a login prompt" in boot.message and iso_report.boot_seconds > 0


def test_ssh_is_running_and_reachable_from_the_host(iso_report):
    ssh = {t.description: t for t in iso_report.tests}["SSH reachable"]
    assert ssh.status == "passed", [a.message for a in ssh.assertions]
    port = next(a for a in ssh.assertions if a.type == "port_open")
    # sshd's banner, or (when it is slow to send one) the connection seen established inside the guest
    assert "SSH-2.0-OpenSSH" in port.message or "accepts connections" in port.message
    service = {t.description: t for t in iso_report.tests}["Service check: ssh"]
    assert [a.result for a in service.assertions] == ["passed", "passed"]


def test_commands_run_in_the_guest(iso_report):
    motd, nginx, admin = {t.description: t for t in iso_report.tests}["Recipe tests"].assertions
    assert motd.result == "passed", motd.message
    assert admin.result == "passed", admin.message
    port22, hostname, exit7, trimmed = {t.description: t for t in iso_report.tests}["Requested checks"].assertions
    assert port22.result == "passed", port22.message
    assert hostname.result == "passed", hostname.message
    assert exit7.result == "failed" and exit7.message == "`exit 7` exited with status 7"
    assert trimmed.result == "passed", trimmed.message


def test_missing_service_fails_with_a_clear_message(iso_report):
    nginx = {t.description: t for t in iso_report.tests}["Recipe tests"].assertions[1]
    assert nginx.result == "failed"
    assert nginx.message == "service nginx is not installed (unit nginx.service could not be found)"
    assert iso_report.status == "failed"
    failures = {a.message for d, a in iso_report.failures() if d in ("Recipe tests", "Requested checks")}
    assert failures == {nginx.message, "`exit 7` exited with status 7"}


def test_report_document_and_console_log(iso_report):
    doc = iso_report.to_dict()
    assert set(doc) >= {"status", "tests", "consoleLog"}
    for test in doc["tests"]:
        assert set(test) == {"description", "status", "duration", "assertions"}
        for a in test["assertions"]:
            assert set(a) == {"type", "params", "result", "message", "duration"}
    log = open(doc["consoleLog"], errors="replace").read()
    assert parse_console(log).booted
    vm_id = doc["consoleLog"].rsplit("-", 1)[1].removesuffix(".log")
    assert not qemu_running(vm_id), "the VM is torn down after the run"


def test_qcow2_boots_from_an_overlay_and_stays_untouched(built_artifacts, tmp_path):
    image = built_artifacts["qcow2"]
    before = (image.stat().st_size, image.stat().st_mtime_ns)
    checks = boot_and_check(
        image, "qcow2",
        [{"type": "boots", "params": {}},
         {"type": "service_running", "params": {"service": "ssh"}},
         {"type": "command_succeeds", "params": {"command": "findmnt -n -o FSTYPE /", "stdoutContains": "ext4"}}],
        work_dir=tmp_path, boot_timeout=BOOT_TIMEOUT).results
    assert [c.result for c in checks] == ["passed"] * 3, [c.message for c in checks]
    assert (image.stat().st_size, image.stat().st_mtime_ns) == before
    assert subprocess.run(["qemu-img", "check", str(image)], capture_output=True).returncode == 0


@pytest.mark.parametrize("fmt", ["rootfs", "oci"])
def test_non_bootable_formats_check_files_and_skip_boot_checks(built_artifacts, fmt, tmp_path):
    report = run_image_tests(built_artifacts[fmt], fmt, SSH_RECIPE, work_dir=tmp_path)
    cases = {t.description: t for t in report.tests}
    assert "Boot verification" not in cases
    assert cases["Package installation check"].status == "passed"
    assert [(a.type, a.result) for a in cases["Service check: ssh"].assertions] == [("service_enabled", "passed")]
    assert cases["SSH reachable"].status == "skipped"
    assert report.status == "passed", report.failures()


BROKEN_UNIT = ("[Unit]\nDescription=Deliberately broken\n[Service]\nType=oneshot\nExecStart=/bin/false\n"
               "[Install]\nWantedBy=multi-user.target\n")


@pytest.fixture(scope="module")
def broken_iso(engine_settings, tmp_path_factory):
    recipe = json.loads(json.dumps(SSH_RECIPE))
    recipe["name"] = "kiln-broken"
    recipe["files"].append({"path": "/etc/systemd/system/broken.service", "content": BROKEN_UNIT})
    recipe["services"]["enable"].append("broken")
    result = build(recipe, tmp_path_factory.mktemp("built-broken"), ["iso"], settings=engine_settings, timeout=1800)
    return next(a.path for a in result.artifacts if a.kind == "iso")


def test_failing_unit_is_reported_by_name(broken_iso, tmp_path):
    run = boot_and_check(
        broken_iso, "iso", [{"type": "boots", "params": {}},
                            {"type": "service_running", "params": {"service": "broken"}}],
        work_dir=tmp_path, boot_timeout=BOOT_TIMEOUT)
    boot, service = run.results
    # A unit failing after the init system started is the image's: never retried.
    assert [a.outcome for a in run.attempts] == ["booted"]
    assert boot.result == "failed" and "units failed: broken.service" in boot.message, boot.message
    assert service.result == "failed" and service.message.startswith("service broken is failed"), service.message
