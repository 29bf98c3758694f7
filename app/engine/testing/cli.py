"""`flask kiln test ARTIFACT` / `python -m app.engine test ARTIFACT`: test an image artifact."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import click
from rich.console import Console

from app.engine.richout import interactive, print_test_report

FORMAT_BY_SUFFIX = {".iso": "iso", ".qcow2": "qcow2", ".img": "qcow2", ".zst": "rootfs", ".gz": "rootfs",
                    ".xz": "rootfs", ".tar": "rootfs"}


def guess_format(path: Path) -> str | None:
    name = path.name.lower()
    if path.is_dir():
        return "rootfs"
    if "oci" in name and name.endswith((".tar", ".tar.gz", ".oci")):
        return "oci"
    if name.endswith(".oci"):
        return "oci"
    return FORMAT_BY_SUFFIX.get(path.suffix.lower())


@click.command("test")
@click.argument("artifact", type=click.Path(exists=True, path_type=Path))
@click.option("--recipe", "recipe_file", type=click.Path(dir_okay=False, exists=True),
              help="The recipe the image was built from (its services, packages and tests are checked).")
@click.option("--assert", "asserts", multiple=True, metavar="SPEC",
              help="Extra assertion, e.g. 'service_running:service=ssh' or 'port_open:port=22'. Repeatable.")
@click.option("--format", "fmt", type=click.Choice(["iso", "qcow2", "rootfs", "oci"]), default=None,
              help="Artifact format (default: from the file name).")
@click.option("--no-defaults", is_flag=True, help="Only the recipe's and --assert checks, not the default tests.")
@click.option("--boot-timeout", type=float, default=300.0, show_default=True, help="Seconds to wait for a login prompt.")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Scratch directory (default: a temporary one; the console log is copied next to the artifact's name).")
@click.option("--json", "as_json", is_flag=True, help="Print the result document as JSON.")
def test_command(artifact: Path, recipe_file: str | None, asserts: tuple[str, ...], fmt: str | None,
                 no_defaults: bool, boot_timeout: float, work_dir: Path | None, as_json: bool) -> None:
    """Boot ARTIFACT (iso/qcow2) in QEMU and check it; exit 1 when any check fails."""
    from app.engine.recipe import RecipeError, parse_recipe_text
    from app.engine.testing import parse_assertion, run_image_tests
    from app.engine.settings import EngineSettings
    from app.engine.testing.snapshots import SnapshotStore
    from app.engine.testing.vm import VMSettings

    # The CLI is the edge: the test VM's settings come from its environment (KILN_TEST_VM_*, KILN_QEMU_ACCEL), and
    # the saved boots it resumes live in the engine's cache under KILN_DATA_DIR, as the builds' caches do.
    try:
        vm_settings = VMSettings.from_config(os.environ)
        snapshots = SnapshotStore(EngineSettings.from_config(os.environ))
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    fmt = fmt or guess_format(artifact)
    if fmt is None:
        raise click.UsageError(f"cannot tell the format of {artifact.name}; pass --format iso|qcow2|rootfs|oci")
    recipe: dict = {}
    if recipe_file:
        try:
            recipe = parse_recipe_text(Path(recipe_file).read_text())
        except RecipeError as err:
            for field, messages in err.errors.items():
                for message in messages:
                    click.echo(f"{recipe_file}: {field}: {message}", err=True)
            sys.exit(2)
    extra = []
    for spec in asserts:
        try:
            extra.append(parse_assertion(spec))
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--assert") from None

    cancel = threading.Event()

    def on_signal(signum, _frame):
        click.secho("cancelling...", fg="yellow", err=True)
        cancel.set()

    previous = signal.signal(signal.SIGINT, on_signal), signal.signal(signal.SIGTERM, on_signal)
    scratch = work_dir or Path(tempfile.mkdtemp(prefix="kiln-test-"))
    started = time.monotonic()
    # A person at a terminal gets a live status line and a table; pipes and --json get plain lines.
    console = Console() if interactive() and not as_json else None
    status = console.status(f"testing {artifact.name}") if console else contextlib.nullcontext()

    def log(level: str, message: str) -> None:
        if console is not None:
            status.update(f"testing {artifact.name} ({time.monotonic() - started:.0f} s): {message}")
            if level in ("warning", "error"):
                console.print(f"[{'yellow' if level == 'warning' else 'red'}]{message}[/]")
        elif not as_json:
            color = {"warning": "yellow", "error": "red"}.get(level)
            click.secho(f"{time.monotonic() - started:7.1f}s {message}", fg=color, err=False)

    try:
        with status:
            report = run_image_tests(artifact, fmt, recipe, extra_assertions=extra,
                                     include_defaults=not no_defaults, work_dir=scratch, log=log, cancel=cancel,
                                     boot_timeout=boot_timeout, vm_settings=vm_settings, snapshots=snapshots)
        if report.console_log and work_dir is None:
            kept = Path(tempfile.gettempdir()) / f"kiln-console-{artifact.name}-{int(time.time())}.log"
            shutil.copyfile(report.console_log, kept)
            report.console_log = str(kept)
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
        if work_dir is None:
            shutil.rmtree(scratch, ignore_errors=True)

    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    elif console is not None:
        print_test_report(console, report, title=f"{artifact.name} tests")
        if report.console_log:
            console.print(f"console log: {report.console_log}")
    else:
        for case in report.tests:
            click.secho(f"{case.status.upper():8} {case.description} ({case.duration:.1f} s)", bold=True,
                        fg={"passed": "green", "failed": "red"}.get(case.status))
            for a in case.assertions:
                params = ", ".join(f"{k}={v}" for k, v in a.params.items() if v not in (None, [], ""))
                click.secho(f"  {a.result:7} {a.type}({params}): {a.message}",
                            fg={"passed": "green", "skipped": None}.get(a.result, "red"))
        if report.boot_seconds is not None:
            click.echo(f"booted to a login prompt in {report.boot_seconds:.1f} s")
        if report.console_log:
            click.echo(f"console log: {report.console_log}")
        click.secho(f"tests {report.status}", fg="green" if report.passed else "red", bold=True)
    sys.exit(0 if report.passed else 1)
