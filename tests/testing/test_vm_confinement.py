"""QEMU is confined: seccomp sandbox, an unprivileged user when the worker is root, a restricted network."""
import os
import pwd
import time
from pathlib import Path

from app.engine.testing.vm import VM


def _status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def test_qemu_runs_unprivileged_under_seccomp_with_a_restricted_network(packed_images, tmp_path):
    with VM(packed_images["iso"], "iso", tmp_path, forward=[("tcp", 22)], accel="tcg") as vm:
        assert vm.running(), vm.stderr()
        # QEMU drops to its user and installs its filter once its setup is done, just before the guest runs:
        # moments after start on a quiet host, seconds on a loaded one. Read its state once it is there.
        deadline = time.monotonic() + 60
        status = _status(vm.proc.pid)
        while (status["Seccomp"] != "2" or status["Uid"].split()[0] == "0") and time.monotonic() < deadline:
            assert vm.running(), vm.stderr()
            time.sleep(0.2)
            status = _status(vm.proc.pid)
        args = vm.proc.args
    assert status["Seccomp"] == "2"  # -sandbox on installed its filter
    if os.geteuid() == 0:
        assert int(status["Uid"].split()[0]) == pwd.getpwnam(vm.settings.run_as).pw_uid != 0
    [netdev] = [args[i + 1] for i, a in enumerate(args) if a == "-netdev"]
    assert netdev.startswith("user,id=n0,restrict=on,") and netdev.count("hostfwd=") == 1
