"""Seconds from QEMU start to the guest agent answering: a cold boot against resuming a saved boot.

    .venv/bin/python bench/snapshot.py ISO_OR_QCOW2 [--runs N] [--timeout S]

The image tests save a booted VM (savevm) after a cold boot has settled, and a later test run of an image with
the same bytes resumes it (-loadvm) instead of booting (app/engine/testing/snapshots.py). This boots the image
cold N times and resumes a snapshot of its first boot N times, alternating, so both see the same host load;
each VM is started the way the image tests start it. Not part of `make bench` (the cold boots take minutes).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.engine.testing.qga import AgentError, GuestAgent  # noqa: E402
from app.engine.testing.vm import VM, VMSettings  # noqa: E402


def to_agent(vm: VM, timeout: float) -> float:
    """Seconds from QEMU start until the guest agent answers guest-sync."""
    agent = GuestAgent(vm.qga_socket)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if not vm.running():
                raise SystemExit(f"QEMU stopped: {vm.exit_description()}")
            try:
                agent.sync(timeout=2.0)
                return time.monotonic() - vm.started_at
            except AgentError:
                agent.close()
                if time.monotonic() > deadline:
                    raise SystemExit(f"the guest agent did not answer within {timeout:.0f} s") from None
                time.sleep(0.2)
    finally:
        agent.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    fmt = "qcow2" if args.image.suffix == ".qcow2" else "iso"
    settings = VMSettings()
    cold: list[float] = []
    restored: list[float] = []
    with tempfile.TemporaryDirectory(prefix="kiln-bench-snapshot-") as tmp:
        work, saved = Path(tmp), Path(tmp) / "saved.qcow2"
        for n in range(1, args.runs + 1):
            with VM(args.image, fmt, work, forward=[("tcp", 22)], settings=settings, savable=True) as vm:
                cold.append(to_agent(vm, args.timeout))
                print(f"cold boot {n}: agent answered {cold[-1]:.1f} s after QEMU started", flush=True)
                if not saved.exists():  # saved as the image tests save it: once start-up has settled
                    with GuestAgent(vm.qga_socket) as agent:
                        agent.shell("systemctl is-system-running --wait", timeout=300)
                    started = time.monotonic()
                    vm.save_snapshot(saved)
                    print(f"  saved the booted VM in {time.monotonic() - started:.1f} s "
                          f"({saved.stat().st_size / 1024**2:.0f} MiB)", flush=True)
            vm = VM(args.image, fmt, work, forward=[("tcp", 22)], settings=settings, restore=True)
            try:
                vm.adopt_snapshot(saved)
                vm.start()
                restored.append(to_agent(vm, args.timeout))
            finally:
                vm.stop()
            print(f"restore {n}: agent answered {restored[-1]:.1f} s after QEMU started", flush=True)
    for name, values in (("cold boot", cold), ("restored", restored)):
        print(f"{name:10} min {min(values):6.1f} s  median {statistics.median(values):6.1f} s  "
              f"max {max(values):6.1f} s  ({', '.join(f'{v:.1f}' for v in values)})")


if __name__ == "__main__":
    main()
