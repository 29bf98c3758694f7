"""Boot time and boot flake rate of an image under QEMU, booted the way the image tests boot it.

    .venv/bin/python bench/boot.py [ISO_OR_QCOW2] [--runs N] [--until login|init] [--parallel K]
                                   [--vm KEY=VALUE,...]... [--consoles DIR] [--timeout S]

Without an image it builds bench/recipes/ssh.yaml (the engine's caches make that quick after
bench/run.py) and boots the ISO.

Every run starts a fresh VM. A run fails when the guest never gets to the goal: a kernel panic, an
emergency shell, QEMU dying, or the timeout. `--until login` (default) waits for the login prompt and
prints, per run, seconds from QEMU start to the prompt, to the guest agent answering and to sshd's
banner. `--until init` stops each VM when the init system prints its first line: past the kernel
and the initramfs, where the TCG boot panics of issue 20 happened (~6 s of kernel time), in about
half the time; `--until kernel` stops once the kernel's clock passes --kernel-seconds (default 20).

`--vm` runs a variant of the QEMU command line (repeat it to compare several; runs alternate between
variants so each sees the same load): thread=multi|single, cpu=MODEL (e.g. max, qemu64,+rdrand),
machine=pc|q35, rng=on|off, cdrom=ide|scsi, cpus=N, icount=shift=auto (or off; needs thread=single). Without it the image tests' own settings are used.
`--parallel K` boots K VMs at once, as a busy CI machine does.

Prints the flake rate (failures out of N boots) next to the boot times; failing consoles are kept
in --consoles (default: printed, last 40 lines). Without an image, and with --until login, it also
prints "build to tested image": the build of the reference ISO plus the image tests a build runs on
it (filesystem checks and one boot). Targets on 2 cores: <= 45 s to login under TCG (< 10 s under
KVM) and no failures in 30 boots (`make bench` runs 5; run `--runs 30 --parallel 2` for issue 20's count).
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.engine.testing import console as consolelib  # noqa: E402
from app.engine.testing.qga import AgentError, GuestAgent  # noqa: E402
from app.engine.testing.vm import VM, VMError, VMSettings  # noqa: E402

VM_KEYS = {"thread": "tcg_thread", "cpu": "cpu_model", "machine": "machine", "rng": "rng", "icount": "icount", "cdrom": "cdrom", "cpus": "cpus"}
print_lock = threading.Lock()
live_vms: set[VM] = set()  # running VMs, stopped if the bench is stopped


def stop_all(*_: object) -> None:
    """SIGTERM: stop every running VM, then exit (boots run in threads, so unwinding alone would wait for them
    and a killed bench left QEMU processes behind)."""
    for vm in list(live_vms):
        vm.stop()
    os._exit(143)


def say(line: str) -> None:
    with print_lock:
        print(line, flush=True)


def parse_variant(text: str) -> dict:
    """'thread=single,cpu=max' -> VM keyword arguments. A CPU model may itself hold commas (qemu64,+rdrand)."""
    kwargs: dict = {}
    key = None
    for part in text.split(","):
        if "=" in part:
            key, value = part.split("=", 1)
            if key not in VM_KEYS:
                raise argparse.ArgumentTypeError(f"unknown VM setting {key!r}; use {', '.join(VM_KEYS)}")
            kwargs[VM_KEYS[key]] = value
        elif key == "icount" and part:
            kwargs["icount"] += "," + part
        elif key == "cpu" and part:
            kwargs["cpu_model"] += "," + part
        else:
            raise argparse.ArgumentTypeError(f"{text!r}: write KEY=VALUE pairs separated by commas")
    if "rng" in kwargs:
        if kwargs["rng"] not in ("on", "off"):
            raise argparse.ArgumentTypeError("rng is on or off")
        kwargs["rng"] = kwargs["rng"] == "on"
    if kwargs.get("icount") == "off":
        kwargs["icount"] = ""
    if "cpus" in kwargs:
        if not kwargs["cpus"].isdigit() or int(kwargs["cpus"]) < 1:
            raise argparse.ArgumentTypeError("cpus is a whole number of at least 1")
        kwargs["cpus"] = int(kwargs["cpus"])
    return kwargs


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


KERNEL_TIME_RE = re.compile(r"^\[\s*(\d+)\.\d+\]", re.M)


def wait_init(vm: VM, timeout: float, kernel_seconds: float | None = None) -> tuple[bool, str, float]:
    """Watch the console until the init system's first line, or (kernel_seconds) until the kernel's own
    clock passes that many seconds: (reached, why not, seconds)."""
    while True:
        text = vm.console_text()
        state = consolelib.parse_console(text)
        elapsed = time.monotonic() - vm.started_at
        if state.fatal:
            return False, state.fatal, elapsed
        if kernel_seconds is not None:
            stamps = KERNEL_TIME_RE.findall(consolelib.clean(text))
            if stamps and int(stamps[-1]) >= kernel_seconds:
                return True, "", elapsed
        if state.init:
            return True, "", elapsed
        if not vm.running():
            err = vm.stderr().strip().splitlines()
            return False, f"QEMU exited ({err[-1] if err else 'no message'})", elapsed
        if elapsed > timeout:
            return False, f"timed out after {timeout:.0f} s", elapsed
        time.sleep(0.25)


def one_boot(image: Path, fmt: str, until: str, timeout: float, work: Path, variant: dict,
             kernel_seconds: float = 20, settings: VMSettings | None = None) -> dict:
    row = {"accel": "-", "ok": False, "init": None, "login": None, "agent": None, "ssh": None, "reason": "",
           "console": ""}
    try:
        vm = VM(image, fmt, work, forward=[("tcp", 22)], settings=settings, **variant)
        live_vms.add(vm)
        vm.__enter__()
    except VMError as err:
        live_vms.discard(vm)
        row["reason"] = str(err)
        return row
    try:
        row["accel"] = vm.accel_used
        if until in ("init", "kernel"):
            row["ok"], row["reason"], seconds = wait_init(vm, timeout, kernel_seconds if until == "kernel" else None)
            row["init"] = seconds if row["ok"] else None
        else:
            outcome = vm.wait_boot(timeout)
            row["ok"], row["reason"] = outcome.booted, outcome.reason
            row["login"] = outcome.seconds if outcome.booted else None
            if outcome.booted:
                with GuestAgent(vm.qga_socket) as agent:
                    try:
                        agent.wait_ready(60)
                        row["agent"] = time.monotonic() - vm.started_at
                    except AgentError:
                        pass
                if ssh_banner(vm.host_port(22), time.monotonic() + 30):
                    row["ssh"] = time.monotonic() - vm.started_at
        if not row["ok"]:
            row["console"] = vm.console_text()
        row["console_log"] = vm.console_log
        return row
    finally:
        vm.stop()
        live_vms.discard(vm)


def reference_recipe() -> dict:
    from app.engine.recipe import parse_recipe_text
    return parse_recipe_text((Path(__file__).parent / "recipes" / "ssh.yaml").read_text())


def build_reference_iso(out: Path, recipe: dict) -> tuple[Path, float]:
    from app.engine.pipeline import build
    from app.engine.settings import EngineSettings

    print(f"building {recipe['name']} (iso) to boot it...", flush=True)
    start = time.monotonic()
    result = build(recipe, out, ["iso"], settings=EngineSettings.from_config(os.environ))
    return next(a.path for a in result.artifacts if a.kind == "iso"), time.monotonic() - start


def image_tests(iso: Path, recipe: dict, work: Path, settings: VMSettings) -> tuple[bool, float, str]:
    """The image tests a build runs on its ISO (filesystem checks and one boot): (passed, seconds, summary)."""
    from app.engine.testing import run_image_tests

    start = time.monotonic()
    report = run_image_tests(iso, "iso", recipe, work_dir=work, vm_settings=settings)
    failures = "; ".join(f"{d}: {a.message}" for d, a in report.failures())
    return report.passed, time.monotonic() - start, failures


def spread(values: list[float]) -> str:
    """min / median / max of the boots that got there."""
    if not values:
        return "-"
    return f"min {min(values):.1f} s, median {statistics.median(values):.1f} s, max {max(values):.1f} s"


def seconds(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} s"


def median(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} s" if values else "-"


def main() -> int:
    signal.signal(signal.SIGTERM, stop_all)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", type=Path, nargs="?")
    parser.add_argument("--runs", type=int, default=30, help="boots per variant (default 30)")
    parser.add_argument("--until", choices=("login", "init", "kernel"), default="login",
                        help="login prompt (default), the init system's first line, or --kernel-seconds of kernel time")
    parser.add_argument("--kernel-seconds", type=float, default=20,
                        help="with --until kernel: stop once the kernel log passes this many seconds (default 20)")
    parser.add_argument("--parallel", type=int, default=1, help="VMs booting at once (default 1)")
    parser.add_argument("--vm", action="append", type=parse_variant, default=[], metavar="KEY=VALUE,...",
                        help="a variant of the QEMU command line (repeatable)")
    parser.add_argument("--consoles", type=Path, help="keep the console of every failing boot here")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    if args.image is not None and not args.image.is_file():
        parser.error(f"{args.image} does not exist")
    if args.runs < 1 or args.parallel < 1:
        parser.error("--runs and --parallel are at least 1")
    # The bench is an edge like the CLI: the image tests' VM settings from its environment; --vm overrides them.
    try:
        base = VMSettings.from_config(os.environ)
    except ValueError as err:
        parser.error(str(err))
    variants = args.vm or [{}]
    names = [",".join(f"{k}={v}" for k, v in v.items()) or "image tests' settings" for v in variants]
    rows: dict[int, list[dict]] = {i: [] for i in range(len(variants))}
    if args.consoles:
        args.consoles.mkdir(parents=True, exist_ok=True)
    tested = ""
    with tempfile.TemporaryDirectory(prefix="kiln-bench-boot-", dir="/var/tmp") as tmp:
        if args.image is None:
            recipe = reference_recipe()
            args.image, build_seconds = build_reference_iso(Path(tmp) / "out", recipe)
            if args.until == "login":
                # What a user waits for after "Build": the build (warm here) and the image tests the worker runs.
                passed, test_seconds, failures = image_tests(args.image, recipe, Path(tmp) / "tests", base)
                tested = (f"build to tested image ({recipe['name']} iso): {build_seconds + test_seconds:.1f} s "
                          f"(build {build_seconds:.1f} s + image tests {test_seconds:.1f} s)"
                          + ("" if passed else f"; the image tests FAILED: {failures}"))
                print(tested, flush=True)
        fmt = "qcow2" if args.image.suffix in (".qcow2", ".img") else "iso"
        # Alternate the variants so each sees the same load over time.
        trials = [(n, v) for n in range(args.runs) for v in range(len(variants))]

        def trial(item: tuple[int, int]) -> None:
            n, v = item
            row = one_boot(args.image, fmt, args.until, args.timeout, Path(tmp), variants[v], args.kernel_seconds,
                           settings=base)
            rows[v].append(row)
            label = f"[{names[v]}] " if len(variants) > 1 else ""
            if args.until != "login":
                timing = f"{args.until} {seconds(row['init'])}"
            else:
                timing = (f"login {seconds(row['login'])}, guest agent {seconds(row['agent'])}, "
                          f"ssh banner {seconds(row['ssh'])}")
            say(f"{label}run {n + 1}: {row['accel']}: {timing}" + (f" FAILED: {row['reason']}" if not row["ok"] else ""))
            if not row["ok"] and row["console"]:
                if args.consoles:
                    kept = args.consoles / f"failed-{v}-{n + 1}-{row['console_log'].name}"
                    kept.write_text(row["console"])
                    say(f"    console kept in {kept}")
                else:
                    say("    console (last 40 lines):\n      "
                        + consolelib.tail(row["console"], 40).replace("\n", "\n      "))

        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            list(pool.map(trial, trials))

    print()
    failed_any = False
    for v, name in enumerate(names):
        done = rows[v]
        failures = [r for r in done if not r["ok"]]
        failed_any = failed_any or bool(failures)
        panics = sum(1 for r in failures if r["reason"].startswith("kernel panic"))
        accels = ",".join(sorted({r["accel"] for r in done}))
        if args.until != "login":
            timing = f"to {args.until}: {spread([r['init'] for r in done if r['init'] is not None])}"
        else:
            timing = (f"boot to login: {spread([r['login'] for r in done if r['login'] is not None])}; "
                      f"ssh banner median {median([r['ssh'] for r in done if r['ssh'] is not None])}")
        print(f"{name} ({accels}, {len(done)} boots, {args.parallel} at once): {timing}; "
              f"boot flake rate {len(failures)}/{len(done)} failed ({panics} kernel panics)"
              + (" [" + "; ".join(sorted({r['reason'] for r in failures})) + "]" if failures else ""))
    if tested:
        print(tested)
    if args.until == "login":
        print("targets on 2 cores: <= 45 s to login under TCG (< 10 s under KVM), 0 failures in 30 boots")
    return 1 if failed_any else 0


if __name__ == "__main__":
    sys.exit(main())
