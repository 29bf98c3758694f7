"""A booted test VM reaches its own services through the forwarded ports, and nothing on the host."""
from __future__ import annotations

import os

import pytest

from app.engine.testing import boot_and_check

pytestmark = pytest.mark.slow

BOOT_TIMEOUT = float(os.environ.get("KILN_TEST_BOOT_TIMEOUT", "900"))


def test_guest_reaches_its_own_services_but_not_the_host(built_artifacts, tmp_path, host_listener):
    port, received = host_listener
    checks = [
        {"type": "boots", "params": {}},
        {"type": "port_open", "params": {"port": 22}},
        {"type": "command_succeeds", "params": {"command": "cat /etc/motd", "stdoutContains": "built by kiln"}},
        # 10.0.2.2 is the host's loopback in QEMU's user-mode network; restrict=on must drop it.
        {"type": "command_succeeds", "params": {"command": f"timeout 10 bash -c 'echo hi > /dev/tcp/10.0.2.2/{port}'"}},
        {"type": "command_succeeds", "params": {"command": "timeout 10 bash -c 'echo hi > /dev/tcp/10.0.2.3/53'"}},
    ]
    run = boot_and_check(built_artifacts["iso"], "iso", checks, work_dir=tmp_path, boot_timeout=BOOT_TIMEOUT)
    boots, ssh, motd, host, dns = run.results
    assert boots.result == "passed", boots.message
    assert ssh.result == "passed", ssh.message
    assert motd.result == "passed", motd.message
    assert host.result == "failed", host.message
    assert received == []
    assert dns.result == "failed", dns.message  # not even QEMU's own DNS forwarder, which would reach out
