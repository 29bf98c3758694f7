"""VMSettings: the test VMs' settings, read from a config mapping and passed into the library."""
from __future__ import annotations

import os
import subprocess

import pytest

from app.config import load_config
from app.engine.testing.vm import VM, VMSettings, _confinement, qemu_release


def test_from_config_reads_every_key():
    settings = VMSettings.from_config({
        "KILN_TEST_VM_MEMORY_MB": "1024", "KILN_TEST_VM_CPUS": "3", "KILN_TEST_VM_USER": "kiln-vm",
        "KILN_QEMU_ACCEL": "TCG", "KILN_TEST_VM_MACHINE": "q35", "KILN_TEST_VM_CPU_MODEL": "max",
        "KILN_TEST_VM_TCG_THREAD": "single", "KILN_TEST_VM_ICOUNT": "shift=auto", "KILN_TEST_VM_FIRMWARE": "uefi"})
    assert settings == VMSettings(memory_mb=1024, cpus=3, run_as="kiln-vm", accel="tcg", machine="q35",
                                  cpu_model="max", tcg_thread="single", icount="shift=auto", firmware="uefi")


def test_missing_or_empty_keys_take_the_defaults():
    assert VMSettings.from_config({}) == VMSettings.from_config({"KILN_TEST_VM_CPUS": "", "KILN_QEMU_ACCEL": ""}) \
        == VMSettings(memory_mb=1792, cpus=min(2, os.cpu_count() or 1), run_as="nobody", accel="", machine="pc",
                      cpu_model="qemu64,+rdrand", tcg_thread="multi", icount="", firmware="bios")


@pytest.mark.parametrize("key,value,message", [
    ("KILN_TEST_VM_MEMORY_MB", "lots", "KILN_TEST_VM_MEMORY_MB must be a whole number, got 'lots'"),
    ("KILN_TEST_VM_CPUS", "0", "KILN_TEST_VM_CPUS must be greater than 0, got 0"),
    ("KILN_QEMU_ACCEL", "hvf", "KILN_QEMU_ACCEL must be one of"),
    ("KILN_TEST_VM_FIRMWARE", "coreboot", "KILN_TEST_VM_FIRMWARE must be one of bios, uefi, got 'coreboot'"),
])
def test_a_bad_value_is_refused_by_name(key, value, message):
    with pytest.raises(ValueError) as err:
        VMSettings.from_config({key: value})
    assert str(err.value).startswith(message)


def test_the_apps_defaults_give_the_same_qemu_command_line_as_the_librarys(tmp_path):
    image = tmp_path / "blank.iso"
    image.write_bytes(b"")
    app_settings = VMSettings.from_config(load_config(tmp_path, {"SECRET_KEY": "test"}))
    assert app_settings == VMSettings()
    vm, default = VM(image, "iso", tmp_path, settings=app_settings), VM(image, "iso", tmp_path)
    try:
        argv = vm._argv("tcg")
        assert [a for a in argv if vm.id not in a] == [a for a in default._argv("tcg") if default.id not in a]
        for flag, value in (("-m", "1792"), ("-machine", "pc"), ("-accel", "tcg,thread=multi"),
                            ("-cpu", "qemu64,+rdrand")):
            assert argv[argv.index(flag) + 1] == value
        assert "-icount" not in argv and "-bios" not in argv
    finally:
        vm.stop()
        default.stop()


def test_the_confinement_flags_are_ones_this_qemu_accepts():
    """-runas is gone from QEMU 10 (it is -run-with user= since 9.1): the flags must start the QEMU on PATH."""
    argv = ["qemu-system-x86_64", "-machine", "none", "-display", "none", "-nodefaults", "-S",
            *_confinement("nobody")]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        return  # still running, paused before the first instruction: every flag was accepted
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
    pytest.fail(f"QEMU refused {argv}: {err.strip()}")


def test_qemu_release_reads_the_version_line_of_the_qemu_on_path():
    line = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout
    assert qemu_release() >= (7, 0)
    assert f"version {qemu_release()[0]}.{qemu_release()[1]}" in line
