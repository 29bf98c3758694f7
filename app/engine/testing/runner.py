"""Putting it together: which tests an image gets, and running them against an artifact."""
from __future__ import annotations

import hashlib
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from app.engine.process import CommandCancelled
from app.engine.recipe import BOOTABLE_FORMATS as BOOTABLE, FORMATS
from app.engine.testing import console as consolelib
from app.engine.testing.assertions import BOOT_TYPES, FILESYSTEM_TYPES, describe, validate_assertion
from app.engine.testing.fschecks import FS_CHECKS, CheckFailed, dpkg_packages
from app.engine.testing.guestchecks import GUEST_CHECKS, Guest, failed_units, unit_failure_details
from app.engine.testing.imagefs import ImageReadError, ImageTree, open_image
from app.engine.testing.qga import AgentError, GuestAgent
from app.engine.testing.results import (BOOTED, CANCELLED, DIED_BEFORE_INIT, ERROR, FAILED, FAILED_AFTER_INIT, PASSED,
                                        QEMU_ERROR, RETRIED_OUTCOMES, SKIPPED, TIMED_OUT, AssertionResult, BootAttempt,
                                        TestCase, TestReport)
from app.engine.testing.snapshots import STATE_FILE, Snapshot, SnapshotStore
from app.engine.testing.vm import VM, BootOutcome, QemuStartError, VMError, VMSettings, choose_accel

LogFn = Callable[[str, str], None]
AGENT_WAIT = 120.0
BOOT_SETTLE = 3.0
STARTUP_WAIT = 120.0
# A guest that dies before its init system gets one more fresh VM before the image is blamed.
BOOT_ATTEMPTS = 2
# A restored VM's agent answers within seconds of QEMU loading the snapshot; longer means the snapshot is bad.
RESTORE_AGENT_WAIT = 60.0
CONSOLE_TAIL_LINES = 40


def _quiet(level: str, message: str) -> None:
    pass


# -- which tests ---------------------------------------------------------------------------

def _manifest_packages(manifest: dict | None) -> set[str]:
    """Package names from an engine manifest, tolerant of its exact shape."""
    if not manifest:
        return set()
    pkgs = manifest.get("packages")
    names: set[str] = set()
    if isinstance(pkgs, dict):
        names.update(pkgs)
    elif isinstance(pkgs, list):
        for p in pkgs:
            if isinstance(p, str):
                names.add(p.split("=", 1)[0])
            elif isinstance(p, dict) and (p.get("name") or p.get("package")):
                names.add(p.get("name") or p.get("package"))
    return names


def default_tests(recipe: dict, manifest: dict | None, fmt: str) -> list[dict]:
    """The tests every build gets beside the recipe's own: [{"description", "assertions": [...]}]."""
    tests: list[dict] = []
    bootable = fmt in BOOTABLE
    if bootable:
        tests.append({"description": "Boot verification", "assertions": [{"type": "boots", "params": {}}]})
    for service in (recipe.get("services") or {}).get("enable") or []:
        assertions = [{"type": "service_enabled", "params": {"service": service}}]
        if bootable:
            assertions.append({"type": "service_running", "params": {"service": service}})
        tests.append({"description": f"Service check: {service}", "assertions": assertions})
    packages = list(dict.fromkeys(recipe.get("packages") or []))
    if packages:
        tests.append({"description": "Package installation check",
                      "assertions": [{"type": "package_installed", "params": {"package": p}} for p in packages]})
    in_image = _manifest_packages(manifest) or set(packages)
    if "openssh-server" in in_image:
        tests.append({"description": "SSH reachable", "assertions": [
            {"type": "service_running", "params": {"service": "ssh"}},
            {"type": "port_open", "params": {"port": 22, "protocol": "tcp"}},
        ]})
    return tests


def _planned(tests: list[dict]) -> list[tuple[str, list[Any]]]:
    """Validate every assertion up front; invalid ones become error results, not a crash."""
    plan = []
    for test in tests:
        items: list[Any] = []
        for spec in test.get("assertions") or []:
            try:
                items.append(validate_assertion(spec))
            except ValueError as err:
                kind = spec.get("type") if isinstance(spec, dict) else None
                params = spec.get("params") if isinstance(spec, dict) and isinstance(spec.get("params"), dict) else {}
                items.append(AssertionResult(str(kind or "invalid"), params, ERROR, str(err)))
        plan.append((test["description"], items))
    return plan


# -- filesystem ----------------------------------------------------------------------------

def _timed(kind: str, params: dict, fn: Callable[[], str]) -> AssertionResult:
    start = time.monotonic()
    try:
        message = fn()
        result = PASSED
    except CheckFailed as err:
        message, result = str(err), FAILED
    except CommandCancelled:
        raise
    except Exception as err:  # a check must never take the whole run down
        message, result = f"{type(err).__name__}: {err}", ERROR
    return AssertionResult(kind, params, result, message, time.monotonic() - start)


def run_filesystem_checks(fs: ImageTree | Path, assertions: list[dict]) -> list[AssertionResult]:
    """Run filesystem assertions over an image tree (a directory, e.g. during the build)."""
    tree = fs if isinstance(fs, ImageTree) else ImageTree(Path(fs))
    results = []
    for spec in assertions:
        try:
            a = validate_assertion(spec)
        except ValueError as err:
            results.append(AssertionResult(str(spec.get("type") if isinstance(spec, dict) else "invalid"),
                                           {}, ERROR, str(err)))
            continue
        check = FS_CHECKS.get(a["type"])
        if check is None:
            results.append(AssertionResult(a["type"], a["params"], SKIPPED, f"{a['type']} is not a filesystem check"))
            continue
        results.append(_timed(a["type"], a["params"], lambda: check(tree, a["params"])))
    return results


# -- the VM ----------------------------------------------------------------------------------

def _forwards(assertions: list[dict]) -> list[tuple[str, int]]:
    ports = {("tcp", 22)}
    for a in assertions:
        if a["type"] == "port_open" and a["params"].get("protocol", "tcp") == "tcp":
            ports.add(("tcp", a["params"]["port"]))
        elif a["type"] == "http_responds":
            u = urllib.parse.urlsplit(a["params"]["url"])
            if u.hostname in ("localhost", "127.0.0.1") and u.scheme == "http":
                ports.add(("tcp", u.port or 80))
    return sorted(ports)


@dataclass
class BootRun:
    """What boot_and_check found: results in the order of the assertions, the last VM's console log,
    seconds to login (None when it did not boot) and every VM started (two when the first was retried)."""
    results: list[AssertionResult]
    console_log: str | None
    boot_seconds: float | None
    attempts: list[BootAttempt]


def _attempt_record(n: int, outcome: BootOutcome, vm: VM) -> BootAttempt:
    """Classify how one VM's boot ended: before or after the init system, and by whose fault."""
    if outcome.booted:
        kind = BOOTED
    elif outcome.reason == "cancelled":
        kind = CANCELLED
    elif outcome.exit_code is not None and outcome.exit_code != 0:
        # Crashed, killed, or an error of its own: QEMU's failure whatever the guest was doing. (With
        # -no-reboot a guest that resets or powers off makes QEMU exit with status 0.)
        kind = QEMU_ERROR
    elif outcome.state.init:
        kind = FAILED_AFTER_INIT
    elif outcome.state.fatal or outcome.exit_code is not None:
        kind = DIED_BEFORE_INIT
    else:
        kind = TIMED_OUT
    console = "" if kind == BOOTED else consolelib.tail(vm.console_text(), CONSOLE_TAIL_LINES)
    return BootAttempt(n, kind, outcome.reason, outcome.seconds, str(vm.console_log), console)


def _signature(attempt: BootAttempt) -> str:
    """How a boot failed, without what differs between runs of the same failure (pids)."""
    return attempt.outcome + ":" + re.sub(r"\s*from pid \d+", "", attempt.reason)


def _start_vm(n: int, image: Path, fmt: str, work_dir: Path, forward: list[tuple[str, int]], wait: float,
              log: LogFn, cancel: threading.Event | None, settings: VMSettings,
              savable: bool = False) -> tuple[VM | None, BootOutcome | None, BootAttempt]:
    """Start one fresh VM and wait for its boot. VMError for a problem with the image's file (no VM)."""
    vm = VM(image, fmt, work_dir, forward=forward, log=log, settings=settings, savable=savable)
    try:
        vm.__enter__()
    except QemuStartError as err:
        log("error", str(err))
        return None, None, BootAttempt(n, QEMU_ERROR, str(err), 0.0, str(vm.console_log), vm.stderr()[-2000:])
    try:
        outcome = vm.wait_boot(wait, cancel=cancel, settle=BOOT_SETTLE)
    except BaseException:
        vm.stop()
        raise
    attempt = _attempt_record(n, outcome, vm)
    log("info" if outcome.booted else "error",
        f"test VM {'reached a login prompt' if outcome.booted else 'did not boot'} after {outcome.seconds:.1f} s"
        + (" (cold boot)" if outcome.booted else "")
        + ("" if outcome.booted else f": {outcome.reason}")
        + ("" if outcome.booted or attempt.outcome not in RETRIED_OUTCOMES else " (before its init system)"))
    return vm, outcome, attempt


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _set_guest_clock(agent: GuestAgent) -> None:
    """A restored guest's clock still reads the time its snapshot was taken: set it to now. guest-set-time sets the
    system clock and then the hardware clock with hwclock, which a minimal image may lack; date does the former."""
    now = time.time_ns()
    try:
        agent.command("guest-set-time", {"time": now})
    except AgentError:
        res = agent.exec(["date", "-u", "-s", f"@{now / 1e9:.3f}"], timeout=20)
        if res.exitcode != 0:
            raise AgentError(f"could not set the guest's clock: {(res.stderr or res.stdout).strip() or res.exitcode}")


def _restore_vm(image: Path, fmt: str, work_dir: Path, forward: list[tuple[str, int]], log: LogFn,
                cancel: threading.Event | None, settings: VMSettings, store: SnapshotStore,
                sha256: str) -> tuple[VM, GuestAgent, Snapshot, float] | None:
    """Resume a snapshot of an earlier boot of this image, when there is one; None to boot instead.

    A snapshot that QEMU refuses, or whose guest agent does not answer soon, is removed: it would fail the
    same way again. The run then boots normally; a bad snapshot never fails a test run."""
    accel = choose_accel(settings)
    vm = VM(image, fmt, work_dir, forward=forward, log=log, settings=settings, accel=accel, restore=True)
    snapshot = store.lookup(vm.snapshot_key(sha256, accel))
    if snapshot is None:
        vm.stop()
        return None
    agent = GuestAgent(vm.qga_socket)
    try:
        vm.adopt_snapshot(snapshot.path)
        vm.start()
        if vm.accel_used != snapshot.accel:
            vm.stop()
            log("warning", f"not resuming the saved boot: QEMU runs under {vm.accel_used} here, the snapshot was "
                           f"taken under {snapshot.accel}")
            return None
        deadline = time.monotonic() + RESTORE_AGENT_WAIT
        while True:
            if not vm.running():
                raise VMError(f"QEMU stopped while loading it ({vm.exit_description()})")
            if cancel is not None and cancel.is_set():
                raise AgentError("cancelled")
            try:
                agent.sync(timeout=2.0)
                break
            except AgentError as err:
                agent.close()
                if time.monotonic() > deadline:
                    raise AgentError(f"the guest agent did not answer within {RESTORE_AGENT_WAIT:.0f} s ({err})")
                time.sleep(0.2)
        seconds = time.monotonic() - vm.started_at
        _set_guest_clock(agent)
        agent.sync(timeout=10.0)
    except (VMError, AgentError) as err:
        agent.close()
        vm.stop()
        if cancel is not None and cancel.is_set():
            return None
        store.discard(snapshot)
        log("warning", f"could not resume the snapshot of an earlier boot of this image ({err}); it is removed "
                       "and the image is booted normally")
        return None
    except BaseException:
        agent.close()
        vm.stop()
        raise
    log("info", f"test VM booted from a snapshot of an earlier boot of this image: its guest agent answered "
                f"{seconds:.1f} s after QEMU started (a cold boot took {snapshot.boot_seconds:.1f} s to a login "
                f"prompt, {snapshot.accel})")
    return vm, agent, snapshot, seconds


def _save_snapshot(vm: VM, store: SnapshotStore, sha256: str, boot_seconds: float, log: LogFn) -> None:
    """Keep this VM, booted and settled, for later runs of the same image. Never fails the run."""
    key = vm.snapshot_key(sha256, vm.accel_used)
    if store.lookup(key) is not None:
        return
    started = time.monotonic()
    staging = store.staging(key)
    try:
        vm.save_snapshot(staging / STATE_FILE)
        size = (staging / STATE_FILE).stat().st_size
    except (VMError, OSError) as err:
        store.discard_staging(staging)
        log("warning", f"could not save the booted VM for later test runs: {err}")
        return
    except BaseException:  # cancelled mid-save: nothing half-written stays, and the staging lock is let go
        store.discard_staging(staging)
        raise
    if store.store(key, staging, boot_seconds=boot_seconds, accel=vm.accel_used):
        log("info", f"saved the booted VM in {time.monotonic() - started:.1f} s ({size / 1024**2:.0f} MiB): later "
                    "test runs of this image resume it instead of booting")


def _boot_verdict(attempts: list[BootAttempt]) -> tuple[str, str]:
    """(result, message) for `boots` when the last VM did not boot."""
    last = attempts[-1]
    console = "; console: " + " | ".join(last.console_tail.splitlines()[-8:]) if last.console_tail else ""
    if len(attempts) == 2 and attempts[0].outcome in RETRIED_OUTCOMES and last.outcome in RETRIED_OUTCOMES:
        if attempts[0].outcome == last.outcome == QEMU_ERROR:
            reasons = attempts[0].reason if attempts[0].reason == last.reason else f"{attempts[0].reason}; then {last.reason}"
            return ERROR, f"QEMU failed on two fresh VMs, so the image could not be tested: {reasons}"
        if _signature(attempts[0]) == _signature(last):
            return FAILED, (f"died before its init system on two fresh VMs, the same way: {last.reason}; "
                            f"so the image is at fault, not the emulator{console}")
        return ERROR, (f"the test VM died before its init system twice, differently ({attempts[0].reason}; then "
                       f"{last.reason}); that points at the emulator or the host, not the image{console}")
    prefix = ""
    if len(attempts) == 2:
        prefix = f"the first VM failed before its init system ({attempts[0].reason}) and was retried on a fresh one; the retry: "
    return FAILED, prefix + last.reason + console


def boot_and_check(image: Path, fmt: str, assertions: list[dict], *, work_dir: Path, log: LogFn | None = None,
                   cancel: threading.Event | None = None, boot_timeout: float = 300,
                   vm_settings: VMSettings | None = None, snapshots: SnapshotStore | None = None) -> BootRun:
    """Boot the image and answer `boots` and the in-guest assertions in order.

    With a snapshot store (and vm_settings.snapshots on), a VM saved after an earlier boot of an image with the
    same bytes is resumed instead of booting; the boot it was taken from answers `boots`. A cold boot that
    reached its login prompt with no failed unit is saved there for the next run, before any assertion runs.

    A guest that dies before its init system starts (a panic in the kernel or the initramfs, QEMU
    crashing or killed, QEMU failing to start) can be the emulator's fault, so that boot is retried
    once on a fresh VM; the image is blamed only when the retry dies the same way. A failure after
    the init system started is the image's and is never retried. Every VM is torn down before this
    returns, whatever happened.
    """
    log = log or _quiet
    vm_settings = vm_settings or VMSettings()
    checks = [validate_assertion(a) for a in assertions]
    # The schema fills timeoutSeconds=300 by default; only a limit the caller wrote overrides boot_timeout.
    explicit = [spec["params"]["timeoutSeconds"] for spec in assertions
                if spec.get("type") in BOOT_TYPES and isinstance(spec.get("params"), dict)
                and spec["params"].get("timeoutSeconds")]
    wait = max([boot_timeout] + explicit)
    results: list[AssertionResult | None] = [None] * len(checks)
    attempts: list[BootAttempt] = []
    vm: VM | None = None
    outcome: BootOutcome | None = None
    store = snapshots if vm_settings.snapshots and Path(image).is_file() else None
    sha256 = _sha256(Path(image)) if store is not None else ""
    restored: tuple[VM, GuestAgent, Snapshot, float] | None = None
    try:
        if store is not None:
            restored = _restore_vm(Path(image), fmt, work_dir, _forwards(checks), log, cancel, vm_settings, store,
                                   sha256)
        if restored is not None:
            vm, _, _, seconds = restored
            outcome = BootOutcome(True, "", seconds)
            attempts.append(BootAttempt(1, BOOTED, "", seconds, str(vm.console_log), from_snapshot=True))
        for n in range(1, BOOT_ATTEMPTS + 1) if restored is None else ():
            if vm is not None:
                vm.stop()
            vm, outcome, attempt = _start_vm(n, image, fmt, work_dir, _forwards(checks), wait, log, cancel,
                                             vm_settings, savable=store is not None)
            attempts.append(attempt)
            if attempt.outcome not in RETRIED_OUTCOMES or n == BOOT_ATTEMPTS or (cancel is not None and cancel.is_set()):
                break
            log("warning", f"the test VM died before its init system ({attempt.reason}); that can be the emulator's "
                           "fault, so the boot is retried once on a fresh VM")
    except VMError as err:  # the image's file cannot be booted at all (missing, not an image): nothing to retry
        log("error", str(err))
        if vm is not None:
            vm.stop()
        return BootRun([AssertionResult(a["type"], a["params"], ERROR, str(err)) for a in checks], None, None, attempts)
    if vm is None or outcome is None:  # QEMU would not start, twice
        result, message = _boot_verdict(attempts)
        return BootRun([AssertionResult(a["type"], a["params"], ERROR, message) for a in checks], None, None, attempts)
    retried = ("" if len(attempts) == 1 else
               f" on a second VM; the first failed before its init system ({attempts[0].reason}), not the image's fault")
    try:
        boot_seconds = outcome.seconds if outcome.booted else None
        agent: GuestAgent | None = None
        agent_problem = ""
        failed: list[str] = list(outcome.state.failed_units)
        failure_details = ""
        if restored is not None:
            agent = restored[1]
        elif outcome.booted:
            agent = GuestAgent(vm.qga_socket)
            try:
                agent.wait_ready(AGENT_WAIT, cancel=cancel)
            except AgentError as err:
                agent_problem = f"qemu-guest-agent did not answer ({err}); is qemu-guest-agent in the image?"
                log("warning", agent_problem)
                agent.close()
                agent = None
        guest = Guest(vm, agent, agent_problem, cancel)
        try:
            if agent is not None and restored is None:
                try:
                    # Let start-up finish (it continues past the login prompt) so checks and the
                    # failed-unit list see the settled system; "degraded" means some unit failed.
                    res = guest.sh(f"timeout {int(STARTUP_WAIT)} systemctl is-system-running --wait",
                                   timeout=STARTUP_WAIT + 10)
                    log("info", f"system state after start-up: {res.stdout.strip() or res.stderr.strip() or '?'}")
                    for unit in failed_units(guest):
                        if unit not in failed:
                            failed.append(unit)
                    details = [f"{u}: {d}" for u in failed if u.endswith(".service")
                               and (d := unit_failure_details(guest, u))]
                    failure_details = f" ({'; '.join(details)})" if details else ""
                    if store is not None and not failed and not (cancel is not None and cancel.is_set()):
                        _save_snapshot(vm, store, sha256, outcome.seconds, log)
                except CheckFailed as err:
                    log("warning", f"could not list failed units: {err}")
            for i, a in enumerate(checks):
                if a["type"] not in BOOT_TYPES:
                    continue
                limit = (assertions[i].get("params") or {}).get("timeoutSeconds") or wait
                if restored is not None:
                    snapshot = restored[2]
                    proven = (f"booted from a snapshot of an earlier boot of this image (resumed in {outcome.seconds:.1f} s); "
                              f"that boot reached a login prompt after {snapshot.boot_seconds:.1f} s ({snapshot.accel}) "
                              "with no failed units, which is what the snapshot was taken after")
                    over = snapshot.boot_seconds > limit
                    results[i] = AssertionResult("boots", a["params"], FAILED if over else PASSED,
                                                 proven + (f", over the {limit} s limit" if over else ""),
                                                 outcome.seconds)
                elif not outcome.booted:
                    result, msg = _boot_verdict(attempts)
                    results[i] = AssertionResult("boots", a["params"], result, msg, outcome.seconds)
                elif failed:
                    results[i] = AssertionResult("boots", a["params"], FAILED,
                                                 f"reached a login prompt after {outcome.seconds:.1f} s but units failed: "
                                                 + ", ".join(failed) + failure_details + retried, outcome.seconds)
                elif outcome.seconds > limit:
                    results[i] = AssertionResult("boots", a["params"], FAILED,
                                                 f"booted after {outcome.seconds:.1f} s, over the {limit} s limit" + retried,
                                                 outcome.seconds)
                else:
                    results[i] = AssertionResult("boots", a["params"], PASSED,
                                                 f"reached a login prompt after {outcome.seconds:.1f} s ({vm.accel_used})"
                                                 + retried, outcome.seconds)
            for i, a in enumerate(checks):
                if results[i] is not None:
                    continue
                if cancel is not None and cancel.is_set():
                    results[i] = AssertionResult(a["type"], a["params"], SKIPPED, "cancelled")
                elif not outcome.booted:
                    results[i] = AssertionResult(a["type"], a["params"], SKIPPED, f"the image did not boot: {outcome.reason}")
                elif a["type"] in GUEST_CHECKS:
                    check = GUEST_CHECKS[a["type"]]
                    results[i] = _timed(a["type"], a["params"], lambda: check(guest, a["params"]))
                    log("info" if results[i].result == PASSED else "warning",
                        f"{describe(a)}: {results[i].result}: {results[i].message}")
                else:
                    results[i] = AssertionResult(a["type"], a["params"], SKIPPED, f"{a['type']} is not checked in the VM")
        finally:
            if agent is not None:
                agent.close()
    finally:
        vm.stop()
    return BootRun([r for r in results if r is not None], str(vm.console_log), boot_seconds, attempts)


# -- the whole run -------------------------------------------------------------------------

def run_image_tests(artifact_path: Path, fmt: str, recipe: dict, *, extra_assertions: list[dict] | None = None,
                    include_defaults: bool = True, tree: Path | None = None, work_dir: Path,
                    log: LogFn | None = None, cancel: threading.Event | None = None,
                    boot_timeout: float = 300, vm_settings: VMSettings | None = None,
                    snapshots: SnapshotStore | None = None) -> TestReport:
    """Test one artifact: filesystem checks, then (iso/qcow2) one boot for everything that needs the VM.

    The boot is skipped when a filesystem check already failed: the verdict is known without it.

    `tree` is the image's root directory when the caller still has it (during a build); otherwise the
    artifact is unpacked under work_dir. `snapshots` lets the boot resume a VM saved by an earlier run of the same
    image (see boot_and_check). Never raises for a failing image; the report says what failed.
    """
    log = log or _quiet
    if fmt not in FORMATS:
        raise ValueError(f"unknown image format {fmt!r}; one of: {', '.join(FORMATS)}")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    recipe = recipe or {}
    report = TestReport()

    fs: ImageTree | None = None
    fs_problem = ""
    try:
        fs = ImageTree(Path(tree)) if tree is not None else open_image(Path(artifact_path), fmt, work_dir, cancel=cancel)
    except ImageReadError as err:
        fs_problem = str(err)
        log("error", f"cannot read the image's files: {err}")
    try:
        manifest = None
        if fs is not None:
            try:
                manifest = {"packages": sorted(dpkg_packages(fs))}
            except CheckFailed:
                manifest = None
        tests: list[dict] = default_tests(recipe, manifest, fmt) if include_defaults else []
        if recipe.get("tests"):
            tests.append({"description": "Recipe tests", "assertions": list(recipe["tests"])})
        if extra_assertions:
            tests.append({"description": "Requested checks", "assertions": list(extra_assertions)})
        plan = _planned(tests)

        # One result slot per planned assertion; filesystem checks first (cheap), the VM after.
        slots: list[list[AssertionResult | None]] = [[x if isinstance(x, AssertionResult) else None for x in items]
                                                      for _, items in plan]
        vm_jobs: list[tuple[int, int, dict]] = []
        for ti, (_, items) in enumerate(plan):
            for ai, a in enumerate(items):
                if isinstance(a, AssertionResult):
                    continue
                if a["type"] in FILESYSTEM_TYPES:
                    if fs is None:
                        slots[ti][ai] = AssertionResult(a["type"], a["params"], ERROR, f"cannot read the image: {fs_problem}")
                    else:
                        slots[ti][ai] = _timed(a["type"], a["params"], lambda: FS_CHECKS[a["type"]](fs, a["params"]))
                elif fmt not in BOOTABLE:
                    slots[ti][ai] = AssertionResult(a["type"], a["params"], SKIPPED,
                                                    f"{fmt} images do not boot; {a['type']} needs a running system")
                else:
                    vm_jobs.append((ti, ai, a))
    finally:
        if fs is not None and tree is None:
            fs.close()

    # Fail fast: an image whose files already fail a check has failed; a boot (a minute or more under TCG)
    # would only delay the verdict, so the checks that need the VM are skipped and say why.
    fs_failed = [(plan[ti][0], r) for ti, results in enumerate(slots) for r in results
                 if r is not None and r.result == FAILED]
    if vm_jobs and fs_failed:
        description, first = fs_failed[0]
        why = (f"not booted: the image already failed {len(fs_failed)} filesystem check(s), first "
               f"{description}: {first.message}")
        log("warning", why)
        for ti, ai, a in vm_jobs:
            slots[ti][ai] = AssertionResult(a["type"], a["params"], SKIPPED, why)
    elif vm_jobs:
        if tree is not None and not Path(artifact_path).is_file():
            for ti, ai, a in vm_jobs:
                slots[ti][ai] = AssertionResult(a["type"], a["params"], ERROR, f"artifact {artifact_path} does not exist")
        else:
            # Every VM check needs the boot to be judged; make sure there is a `boots` to carry it.
            jobs = [a for _, _, a in vm_jobs]
            if not any(a["type"] == "boots" for a in jobs):
                jobs = [{"type": "boots", "params": {}}] + jobs
                boot = boot_and_check(
                    Path(artifact_path), fmt, jobs, work_dir=work_dir, log=log, cancel=cancel, boot_timeout=boot_timeout,
                    vm_settings=vm_settings, snapshots=snapshots)
                boot_result, vm_results = boot.results[0], boot.results[1:]
                if boot_result.result != PASSED:
                    report.tests.insert(0, TestCase("Boot verification", [boot_result]))
            else:
                boot = boot_and_check(
                    Path(artifact_path), fmt, jobs, work_dir=work_dir, log=log, cancel=cancel, boot_timeout=boot_timeout,
                    vm_settings=vm_settings, snapshots=snapshots)
                vm_results = boot.results
            for (ti, ai, _), result in zip(vm_jobs, vm_results):
                slots[ti][ai] = result
            report.console_log, report.boot_seconds = boot.console_log, boot.boot_seconds
            report.boot_attempts = boot.attempts

    for (description, _), results in zip(plan, slots):
        report.tests.append(TestCase(description, [r for r in results if r is not None]))
    log("info" if report.passed else "error",
        f"image tests {report.status}: " + (", ".join(f"{d}: {a.message}" for d, a in report.failures()) or "all passed"))
    return report
