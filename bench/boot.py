"""Boot-to-login time of an image under QEMU, as the image tests boot it.

    .venv/bin/python bench/boot.py [ISO_OR_QCOW2] [--runs N] [--timeout S]

Without an image it builds bench/recipes/ssh.yaml (the engine's caches make that quick after
bench/run.py) and boots the ISO.
Prints, per run: accelerator, seconds from QEMU start to the login prompt, to the guest agent
answering, and to sshd's banner on the forwarded port. Target under TCG on 2 cores: < 60 s to login.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.engine.testing.qga import AgentError, GuestAgent  # noqa: E402
from app.engine.testing.vm import VM  # noqa: E402


def ssh_banner(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
                s.settimeout(3)
                if s.recv(64).startswith(b"SSH-"):
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def one_boot(image: Path, fmt: str, timeout: float, work: Path) -> dict:
    with VM(image, fmt, work, forward=[("tcp", 22)]) as vm:
        outcome = vm.wait_boot(timeout)
        row = {"accel": vm.accel_used, "login": outcome.seconds if outcome.booted else None,
               "reason": outcome.reason, "agent": None, "ssh": None}
        if not outcome.booted:
            return row
        with GuestAgent(vm.qga_socket) as agent:
            try:
                agent.wait_ready(60)
                row["agent"] = time.monotonic() - vm.started_at
            except AgentError:
                pass
        if ssh_banner(vm.host_port(22), time.monotonic() + 30):
            row["ssh"] = time.monotonic() - vm.started_at
        return row


def build_reference_iso(out: Path) -> Path:
    from app.engine.pipeline import build
    from app.engine.recipe import parse_recipe_text
    from app.engine.settings import EngineSettings

    recipe = parse_recipe_text((Path(__file__).parent / "recipes" / "ssh.yaml").read_text())
    print(f"building {recipe['name']} (iso) to boot it...", flush=True)
    result = build(recipe, out, ["iso"], settings=EngineSettings.from_config(os.environ))
    return next(a.path for a in result.artifacts if a.kind == "iso")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", type=Path, nargs="?")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    if args.image is not None and not args.image.is_file():
        parser.error(f"{args.image} does not exist")
    logins = []
    with tempfile.TemporaryDirectory(prefix="kiln-bench-boot-", dir="/var/tmp") as tmp:
        if args.image is None:
            args.image = build_reference_iso(Path(tmp) / "out")
        fmt = "qcow2" if args.image.suffix in (".qcow2", ".img") else "iso"
        for i in range(args.runs):
            row = one_boot(args.image, fmt, args.timeout, Path(tmp))
            fmt_s = lambda v: "-" if v is None else f"{v:.1f} s"  # noqa: E731
            print(f"run {i + 1}: {row['accel']}: login {fmt_s(row['login'])}, guest agent {fmt_s(row['agent'])}, "
                  f"ssh banner {fmt_s(row['ssh'])}" + (f" ({row['reason']})" if row["reason"] else ""), flush=True)
            if row["login"] is not None:
                logins.append(row["login"])
    if not logins:
        print("the image never reached a login prompt")
        return 1
    print(f"boot-to-login: median {statistics.median(logins):.1f} s over {len(logins)} run(s) (target < 60 s under TCG)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
