"""Putting it together: which tests an image gets, and running them against an artifact."""
from __future__ import annotations

import threading
import time
import urllib.parse
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
from app.engine.testing.results import ERROR, FAILED, PASSED, SKIPPED, AssertionResult, TestCase, TestReport
from app.engine.testing.vm import VM, VMError

LogFn = Callable[[str, str], None]
AGENT_WAIT = 120.0
BOOT_SETTLE = 3.0
STARTUP_WAIT = 120.0


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


def boot_and_check(image: Path, fmt: str, assertions: list[dict], *, work_dir: Path, log: LogFn | None = None,
                   cancel: threading.Event | None = None, boot_timeout: float = 300) -> tuple[list[AssertionResult], str | None, float | None]:
    """Boot the image once and answer `boots` and the in-guest assertions in order.

    Returns (results in the order of `assertions`, console log path, seconds to login or None).
    The VM is torn down before this returns, whatever happened.
    """
    log = log or _quiet
    checks = [validate_assertion(a) for a in assertions]
    # The schema fills timeoutSeconds=300 by default; only a limit the caller wrote overrides boot_timeout.
    explicit = [spec["params"]["timeoutSeconds"] for spec in assertions
                if spec.get("type") in BOOT_TYPES and isinstance(spec.get("params"), dict)
                and spec["params"].get("timeoutSeconds")]
    wait = max([boot_timeout] + explicit)
    results: list[AssertionResult | None] = [None] * len(checks)
    try:
        vm = VM(image, fmt, work_dir, forward=_forwards(checks), log=log)
        vm.__enter__()
    except VMError as err:
        log("error", str(err))
        return [AssertionResult(a["type"], a["params"], ERROR, str(err)) for a in checks], None, None
    try:
        outcome = vm.wait_boot(wait, cancel=cancel, settle=BOOT_SETTLE)
        boot_seconds = outcome.seconds if outcome.booted else None
        log("info" if outcome.booted else "error",
            f"test VM {'reached a login prompt' if outcome.booted else 'did not boot'} after {outcome.seconds:.1f} s"
            + ("" if outcome.booted else f": {outcome.reason}"))
        agent: GuestAgent | None = None
        agent_problem = ""
        failed: list[str] = list(outcome.state.failed_units)
        failure_details = ""
        if outcome.booted:
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
            if agent is not None:
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
                except CheckFailed as err:
                    log("warning", f"could not list failed units: {err}")
            for i, a in enumerate(checks):
                if a["type"] not in BOOT_TYPES:
                    continue
                limit = (assertions[i].get("params") or {}).get("timeoutSeconds") or wait
                if not outcome.booted:
                    msg = outcome.reason + "; console: " + consolelib.tail(vm.console_text(), 8).replace("\n", " | ")
                    results[i] = AssertionResult("boots", a["params"], FAILED, msg, outcome.seconds)
                elif failed:
                    results[i] = AssertionResult("boots", a["params"], FAILED,
                                                 f"reached a login prompt after {outcome.seconds:.1f} s but units failed: "
                                                 + ", ".join(failed) + failure_details, outcome.seconds)
                elif outcome.seconds > limit:
                    results[i] = AssertionResult("boots", a["params"], FAILED,
                                                 f"booted after {outcome.seconds:.1f} s, over the {limit} s limit", outcome.seconds)
                else:
                    results[i] = AssertionResult("boots", a["params"], PASSED,
                                                 f"reached a login prompt after {outcome.seconds:.1f} s ({vm.accel_used})",
                                                 outcome.seconds)
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
    return [r for r in results if r is not None], str(vm.console_log), boot_seconds


# -- the whole run -------------------------------------------------------------------------

def run_image_tests(artifact_path: Path, fmt: str, recipe: dict, *, extra_assertions: list[dict] | None = None,
                    include_defaults: bool = True, tree: Path | None = None, work_dir: Path,
                    log: LogFn | None = None, cancel: threading.Event | None = None,
                    boot_timeout: float = 300) -> TestReport:
    """Test one artifact: filesystem checks, then (iso/qcow2) one boot for everything that needs the VM.

    `tree` is the image's root directory when the caller still has it (during a build); otherwise the
    artifact is unpacked under work_dir. Never raises for a failing image; the report says what failed.
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

    if vm_jobs:
        if tree is not None and not Path(artifact_path).is_file():
            for ti, ai, a in vm_jobs:
                slots[ti][ai] = AssertionResult(a["type"], a["params"], ERROR, f"artifact {artifact_path} does not exist")
        else:
            # Every VM check needs the boot to be judged; make sure there is a `boots` to carry it.
            jobs = [a for _, _, a in vm_jobs]
            if not any(a["type"] == "boots" for a in jobs):
                jobs = [{"type": "boots", "params": {}}] + jobs
                vm_results, console_log, boot_seconds = boot_and_check(
                    Path(artifact_path), fmt, jobs, work_dir=work_dir, log=log, cancel=cancel, boot_timeout=boot_timeout)
                boot_result, vm_results = vm_results[0], vm_results[1:]
                if boot_result.result != PASSED:
                    report.tests.insert(0, TestCase("Boot verification", [boot_result]))
            else:
                vm_results, console_log, boot_seconds = boot_and_check(
                    Path(artifact_path), fmt, jobs, work_dir=work_dir, log=log, cancel=cancel, boot_timeout=boot_timeout)
            for (ti, ai, _), result in zip(vm_jobs, vm_results):
                slots[ti][ai] = result
            report.console_log, report.boot_seconds = console_log, boot_seconds

    for (description, _), results in zip(plan, slots):
        report.tests.append(TestCase(description, [r for r in results if r is not None]))
    log("info" if report.passed else "error",
        f"image tests {report.status}: " + (", ".join(f"{d}: {a.message}" for d, a in report.failures()) or "all passed"))
    return report
