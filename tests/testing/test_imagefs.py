"""Reading artifacts: the same tree packed by the real tools must read back the same, and the
runner must report boot-time checks of non-bootable formats as skipped."""
from pathlib import Path

import pytest

from app.engine.testing import ImageReadError, open_image, run_filesystem_checks, run_image_tests

CHECKS = [
    {"type": "package_installed", "params": {"package": "openssh-server"}},
    {"type": "file_contains", "params": {"path": "/etc/os-release", "text": "trixie"}},
    {"type": "user_exists", "params": {"user": "admin", "groups": ["sudo"]}},
    {"type": "service_enabled", "params": {"service": "sshd"}},
    {"type": "file_exists", "params": {"path": "/lib/systemd/system/nginx.service"}},
]


@pytest.mark.parametrize("fmt", ["rootfs", "iso", "qcow2", "oci"])
def test_each_artifact_kind_reads_like_the_tree(packed_images, fmt, tmp_path):
    if fmt not in packed_images:
        pytest.skip("umoci is not installed")
    with open_image(packed_images[fmt], fmt, tmp_path) as fs:
        results = run_filesystem_checks(fs, CHECKS)
        assert [r.result for r in results] == ["passed"] * len(CHECKS), [r.message for r in results]
        assert fs.readlink("/lib") == "usr/lib"
        root = fs.root
        assert root.is_dir()
    assert not root.exists(), "the unpacked tree must be removed on close"
    assert list(tmp_path.iterdir()) == []


def test_oci_layers_apply_in_order_with_whiteouts(packed_images, tmp_path):
    if "oci" not in packed_images:
        pytest.skip("umoci is not installed")
    with open_image(packed_images["oci"], "oci", tmp_path) as fs:
        assert fs.read_text("/etc/layer2") == "second layer\n"
        assert not fs.exists("/etc/motd"), "the upper layer deleted /etc/motd"


def test_unreadable_artifacts_give_clear_errors(tmp_path):
    junk = tmp_path / "junk.iso"
    junk.write_bytes(b"not an iso" * 100)
    with pytest.raises(ImageReadError, match="squashfs|xorriso"):
        open_image(junk, "iso", tmp_path / "w")
    with pytest.raises(ImageReadError, match="does not exist"):
        open_image(tmp_path / "missing.qcow2", "qcow2", tmp_path / "w")
    with pytest.raises(ImageReadError, match="unknown image format 'vmdk'"):
        open_image(junk, "vmdk", tmp_path / "w")
    with pytest.raises(ImageReadError, match="rootfs tarball"):
        open_image(junk, "rootfs", tmp_path / "w")
    assert list((tmp_path / "w").iterdir()) == []


RECIPE = {
    "packages": ["openssh-server", "nginx"],
    "services": {"enable": ["ssh"]},
    "tests": [{"type": "file_contains", "params": {"path": "/etc/motd", "text": "kiln"}},
              {"type": "port_open", "params": {"port": 80}}],
}


def test_rootfs_runs_filesystem_checks_and_skips_boot_checks(packed_images, tmp_path):
    report = run_image_tests(packed_images["rootfs"], "rootfs", RECIPE,
                             extra_assertions=[{"type": "command_succeeds", "params": {"command": "true"}}],
                             work_dir=tmp_path)
    doc = report.to_dict()
    assert [t["description"] for t in doc["tests"]] == [
        "Service check: ssh", "Package installation check", "SSH reachable", "Recipe tests", "Requested checks"]
    by_name = {t["description"]: t for t in doc["tests"]}
    assert [a["result"] for a in by_name["Service check: ssh"]["assertions"]] == ["passed"]
    packages = by_name["Package installation check"]["assertions"]
    assert [(a["params"]["package"], a["result"]) for a in packages] == [("openssh-server", "passed"), ("nginx", "failed")]
    assert packages[1]["message"] == "package nginx is not installed"
    ssh = by_name["SSH reachable"]
    assert ssh["status"] == "skipped"
    assert all(a["result"] == "skipped" and "rootfs images do not boot" in a["message"] for a in ssh["assertions"])
    assert [a["result"] for a in by_name["Recipe tests"]["assertions"]] == ["passed", "skipped"]
    assert by_name["Requested checks"]["status"] == "skipped"
    assert doc["status"] == "failed" and doc["consoleLog"] is None
    assert by_name["Package installation check"]["status"] == "failed"
    assert list(tmp_path.iterdir()) == [], "the unpacked tree is removed after the run"


def test_build_time_tree_and_invalid_recipe_tests(packed_images, tmp_path):
    recipe = {"packages": ["bash"], "tests": [{"type": "port_open", "params": {"port": "eighty"}},
                                              {"type": "no_such_check", "params": {}}]}
    report = run_image_tests(Path("/nonexistent.tar.zst"), "oci", recipe, tree=packed_images["tree"], work_dir=tmp_path)
    recipe_tests = report.tests[-1]
    assert recipe_tests.description == "Recipe tests"
    assert [a.result for a in recipe_tests.assertions] == ["error", "error"]
    assert "port" in recipe_tests.assertions[0].message and "no_such_check" in recipe_tests.assertions[1].message
    assert report.status == "failed"
    assert packed_images["tree"].joinpath("etc/motd").exists(), "a caller's tree is never deleted"


def test_unknown_format_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="unknown image format 'vmdk'"):
        run_image_tests(tmp_path, "vmdk", {}, work_dir=tmp_path)


def test_unreadable_artifact_is_reported_not_raised(tmp_path):
    junk = tmp_path / "junk.tar.zst"
    junk.write_bytes(b"junk")
    report = run_image_tests(junk, "rootfs", {"packages": ["bash"]}, work_dir=tmp_path / "w")
    [case] = report.tests
    assert case.assertions[0].result == "error" and "cannot read the image" in case.assertions[0].message


def test_failed_filesystem_check_fails_fast_without_booting(packed_images, tmp_path):
    """The files already decide the verdict: no VM is started and every boot-time check says why."""
    report = run_image_tests(packed_images["iso"], "iso", {"packages": ["nginx"], "services": {"enable": ["ssh"]}},
                             work_dir=tmp_path)
    cases = {t.description: t for t in report.tests}
    assert cases["Package installation check"].status == "failed"
    assert [a.result for a in cases["Service check: ssh"].assertions] == ["passed", "skipped"]
    skipped = [a for t in report.tests for a in t.assertions if a.result == "skipped"]
    assert {a.type for a in skipped} == {"boots", "service_running", "port_open"}
    assert all(a.message.startswith("not booted: the image already failed 1 filesystem check(s), first "
                                    "Package installation check: package nginx is not installed") for a in skipped)
    assert report.status == "failed" and report.console_log is None and report.boot_attempts == []
    assert list(tmp_path.iterdir()) == [], "no console log: no VM was started"
