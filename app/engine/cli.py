"""Command-line front end of the engine: `python -m app.engine ...` and `flask kiln ...`."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import click

from .pipeline import BuildError, BuildEvents, build, stage_names
from .recipe import FORMATS, RecipeError, parse_recipe_text
from .richout import RichEvents, interactive, print_test_report
from .settings import EngineSettings
from .testing.snapshots import SnapshotStore
from .testing.vm import VMSettings

STAGE_NAMES = dict(stage_names())


class ConsoleEvents(BuildEvents):
    """Prints stage changes, progress and log lines; command output only with --verbose."""

    def __init__(self, verbose: bool = False):
        self.verbose = verbose
        self.started = time.monotonic()
        self.lock = threading.Lock()

    def _echo(self, text: str, **style) -> None:
        with self.lock:
            click.secho(f"{time.monotonic() - self.started:7.1f}s {text}", **style)

    def log(self, stage: str, level: str, message: str) -> None:
        if level == "debug" and not self.verbose:
            return
        color = {"warning": "yellow", "error": "red", "debug": None}.get(level)
        self._echo(f"[{stage}] {message}", fg=color, dim=level == "debug")

    def progress(self, stage: str, percent: int, message: str = "") -> None:
        self._echo(f"[{stage}] {percent:3d}% {message}", fg="cyan")

    def stage(self, stage: str, status: str) -> None:
        color = {"running": "blue", "succeeded": "green", "failed": "red", "skipped": None}[status]
        self._echo(f"== {STAGE_NAMES.get(stage, stage)} ({stage}): {status}", fg=color, bold=True)


def load_recipe_file(path: str) -> dict:
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise click.ClickException(f"cannot read {path}: {err.strerror}") from None
    return parse_recipe_text(text)


def print_recipe_errors(path: str, err: RecipeError) -> None:
    click.secho(f"{path}: {len(err.errors)} problem(s)", fg="red", err=True)
    for field, messages in err.errors.items():
        for message in messages:
            click.echo(f"  {field}: {message}", err=True)


@click.group("kiln", help="Build and check Kiln image recipes.")
def kiln() -> None:
    pass


@kiln.command("validate")
@click.argument("file", type=click.Path(dir_okay=False))
def validate_cmd(file: str) -> None:
    """Check a recipe (YAML or JSON); print every problem and exit non-zero if there is one."""
    try:
        recipe = load_recipe_file(file)
    except RecipeError as err:
        print_recipe_errors(file, err)
        sys.exit(1)
    click.echo(f"{file}: valid recipe '{recipe['name']}' (Debian {recipe['release']}, {recipe['format']}, "
               f"{len(recipe['packages'])} package(s))")


@kiln.command("build")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--format", "formats", default=None,
              help=f"Comma-separated formats ({', '.join(FORMATS)}); default: the recipe's format.")
@click.option("--no-test", is_flag=True, help="Skip the image tests (filesystem checks and a QEMU boot) after packaging.")
@click.option("--timeout", type=float, default=None, help="Give up after this many seconds.")
@click.option("-v", "--verbose", is_flag=True, help="Also print every line of command output.")
def build_cmd(file: str, out_dir: str, formats: str | None, no_test: bool, timeout: float | None,
              verbose: bool) -> None:
    """Build FILE into --out: artifacts, manifest.json, sbom.spdx.json and SHA256SUMS."""
    try:
        recipe = load_recipe_file(file)
    except RecipeError as err:
        print_recipe_errors(file, err)
        sys.exit(2)
    # The CLI is the edge: the test VMs' settings come from its environment (KILN_TEST_VM_*, KILN_QEMU_ACCEL);
    # a bad one is refused before the build, not after it.
    # Its engine settings (KILN_DATA_DIR, KILN_DEBIAN_MIRROR, ...) too; the image tests resume saved boots from the
    # same cache the build uses.
    try:
        vm_settings = VMSettings.from_config(os.environ)
        settings = EngineSettings.from_config(os.environ)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    snapshots = SnapshotStore(settings)
    fancy = interactive()
    events = RichEvents(verbose=verbose) if fancy else ConsoleEvents(verbose=verbose)
    cancel = threading.Event()

    def on_signal(signum, _frame):  # Ctrl-C cancels cleanly: kill the group, unmount, delete temp trees
        click.secho("cancelling...", fg="yellow", err=True)
        cancel.set()

    previous = signal.signal(signal.SIGINT, on_signal)
    previous_term = signal.signal(signal.SIGTERM, on_signal)
    try:
        fmt_list = formats.split(",") if formats else None
        with events if fancy else contextlib.nullcontext():
            result = build(recipe, Path(out_dir), fmt_list, events=events, cancel=cancel, timeout=timeout,
                           settings=settings)
    except BuildError as err:
        if fancy:
            events.summary()
        kind = "error in the recipe" if err.user_error else "build failed"
        click.secho(f"{kind} during {STAGE_NAMES.get(err.stage, err.stage)} ({err.stage}): {err.reason}",
                    fg="red", err=True)
        sys.exit(1)
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)

    if fancy:
        events.summary(cached=result.cached, artifacts=result.artifacts)
        if not no_test:
            sys.exit(run_image_tests(recipe, result, Path(out_dir), cancel, vm_settings, snapshots, fancy=True))
        return
    click.secho("build succeeded" + (" (cached result)" if result.cached else ""), fg="green", bold=True)
    for a in result.artifacts:
        click.echo(f"  {a.kind:9} {a.path}  {a.size / 1024**2:8.1f} MiB  sha256:{a.sha256[:16]}")
    if result.stage_timings:
        click.echo("  timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.stage_timings.items()))
    if not no_test:
        sys.exit(run_image_tests(recipe, result, Path(out_dir), cancel, vm_settings, snapshots))


def run_image_tests(recipe: dict, result, out_dir: Path, cancel: threading.Event, vm_settings: VMSettings,
                    snapshots: SnapshotStore | None = None, fancy: bool = False) -> int:
    """Test every image artifact with app.engine.testing (filesystem checks, QEMU boot); exit status."""
    from .testing import run_image_tests as test_artifact

    if fancy:
        return _run_image_tests_live(recipe, result, out_dir, cancel, test_artifact, vm_settings, snapshots)

    failed = False
    for artifact in result.artifacts:
        if artifact.kind not in FORMATS:
            continue
        click.secho(f"== testing {artifact.path.name}", bold=True)
        work = out_dir / f".test-{artifact.kind}"
        try:
            report = test_artifact(artifact.path, artifact.kind, recipe, work_dir=work, cancel=cancel,
                                   log=lambda level, message: click.echo(f"   [test] {message}"),
                                   vm_settings=vm_settings, snapshots=snapshots)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        for case in report.tests:
            for a in case.assertions:
                color = {"passed": "green", "skipped": None}.get(a.result, "red")
                click.secho(f"   {a.result:7} {case.description}: {a.type} {a.params} {a.message}", fg=color)
        if report.boot_seconds is not None:
            click.echo(f"   booted in {report.boot_seconds:.1f} s")
        click.secho(f"   {artifact.kind}: tests {report.status}", fg="green" if report.passed else "red", bold=True)
        failed |= not report.passed
    return 1 if failed else 0


def _run_image_tests_live(recipe: dict, result, out_dir: Path, cancel: threading.Event, test_artifact,
                          vm_settings: VMSettings, snapshots: SnapshotStore | None) -> int:
    """run_image_tests for a terminal: a live status line per artifact, then a table of the checks."""
    from rich.console import Console

    console = Console()
    failed = False
    for artifact in result.artifacts:
        if artifact.kind not in FORMATS:
            continue
        work = out_dir / f".test-{artifact.kind}"
        with console.status(f"testing {artifact.path.name}") as status:
            def log(level: str, message: str, status=status) -> None:
                status.update(f"testing {artifact.path.name}: {message}")
                if level in ("warning", "error"):
                    console.print(f"[{'yellow' if level == 'warning' else 'red'}]{message}[/]")
            try:
                report = test_artifact(artifact.path, artifact.kind, recipe, work_dir=work, cancel=cancel, log=log,
                                       vm_settings=vm_settings, snapshots=snapshots)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        print_test_report(console, report, title=f"{artifact.kind} tests")
        failed |= not report.passed
    return 1 if failed else 0


# `kiln test ARTIFACT`: lives with the test runner (app/engine/testing/cli.py).
from .testing.cli import test_command  # noqa: E402

kiln.add_command(test_command)
