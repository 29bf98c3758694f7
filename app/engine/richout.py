"""Terminal output for the engine's CLI when a person watches it: a live bar per stage and summary tables.

Only used when stdout is a terminal (`interactive()`); pipes and logs get the plain lines of ConsoleEvents.
"""
from __future__ import annotations

import sys
import threading
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .context import BuildEvents
from .pipeline import STAGE_START, stage_names

_ORDER = [name for name, _display in stage_names()]


def interactive(stream=None) -> bool:
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


def _stage_span(stage: str) -> tuple[int, int]:
    """The share of the overall percent that belongs to `stage` (the engine reports overall percent)."""
    start = STAGE_START.get(stage, 0)
    later = [STAGE_START[name] for name in _ORDER if STAGE_START[name] > start]
    return start, min(later) if later else 100


class RichEvents(BuildEvents):
    """One progress bar per stage; log lines scroll above the bars; `summary()` prints how each stage went."""

    def __init__(self, console: Console | None = None, verbose: bool = False):
        self.console = console or Console()
        self.verbose = verbose
        self.lock = threading.Lock()
        self.bars = Progress(TextColumn("{task.fields[status_mark]} {task.description:<20}"), BarColumn(),
                                 TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                                 TextColumn("[dim]{task.fields[note]}"), console=self.console, transient=False)
        self.tasks = {name: self.bars.add_task(display, total=100, start=False, status_mark="·", note="")
                      for name, display in stage_names()}
        self.status = dict.fromkeys(_ORDER, "pending")
        self.started_at: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def __enter__(self):
        self.bars.start()
        return self

    def __exit__(self, *exc):
        self.bars.stop()
        return False

    def log(self, stage: str, level: str, message: str) -> None:
        if level == "debug" and not self.verbose:
            return
        style = {"warning": "yellow", "error": "red", "debug": "dim"}.get(level, "")
        with self.lock:
            self.bars.console.print(f"[cyan]{stage:>9}[/] {message}", style=style, markup=True,
                                        highlight=False)

    def progress(self, stage: str, percent: int, message: str = "") -> None:
        if stage not in self.tasks:
            return
        start, end = _stage_span(stage)
        local = 100 * (percent - start) / max(1, end - start)
        with self.lock:
            self.bars.update(self.tasks[stage], completed=max(0.0, min(100.0, local)), note=message)

    def stage(self, stage: str, status: str) -> None:
        if stage not in self.tasks:
            return
        task = self.tasks[stage]
        with self.lock:
            self.status[stage] = status
            if status == "running":
                self.started_at[stage] = time.monotonic()
                self.bars.start_task(task)
                self.bars.update(task, status_mark="[blue]▶[/]")
                return
            if stage in self.started_at:
                self.seconds[stage] = time.monotonic() - self.started_at[stage]
            mark = {"succeeded": "[green]✓[/]", "failed": "[red]✗[/]", "skipped": "[dim]↷[/]"}.get(status, "·")
            self.bars.update(task, status_mark=mark, note=status,
                                 completed=100 if status in ("succeeded", "skipped") else None)
            self.bars.stop_task(task)

    def summary(self, *, cached: bool = False, artifacts=()) -> None:
        """The table a person reads after the bars: every stage, its outcome and time; then the files."""
        table = Table(title="Build summary" + (" (cached result)" if cached else ""), title_justify="left")
        table.add_column("Stage")
        table.add_column("Result")
        table.add_column("Time", justify="right")
        for name, display in stage_names():
            status = self.status[name]
            if cached and status == "pending":
                status = "cached"
            seconds = self.seconds.get(name)
            colour = {"succeeded": "green", "failed": "red"}.get(status, "dim")
            table.add_row(display, f"[{colour}]{status}[/]", f"{seconds:.1f} s" if seconds is not None else "—")
        self.console.print(table)
        if artifacts:
            files = Table(title="Artifacts", title_justify="left")
            files.add_column("Kind")
            files.add_column("File", overflow="fold")
            files.add_column("Size", justify="right")
            files.add_column("SHA-256", overflow="fold")
            for a in artifacts:
                files.add_row(a.kind, str(a.path), f"{a.size / 1024**2:.1f} MiB", a.sha256)
            self.console.print(files)


def print_test_report(console: Console, report, title: str = "Image tests") -> None:
    """A test report (app.engine.testing) as a table: one row per assertion, grouped by case."""
    table = Table(title=f"{title}: {report.status}", title_justify="left")
    table.add_column("Case")
    table.add_column("Check")
    table.add_column("Result")
    table.add_column("Message", overflow="fold")
    for case in report.tests:
        for index, a in enumerate(case.assertions):
            params = ", ".join(f"{k}={v}" for k, v in a.params.items() if v not in (None, [], ""))
            colour = {"passed": "green", "skipped": "dim"}.get(a.result, "red")
            table.add_row(f"{case.description} ({case.duration:.1f} s)" if index == 0 else "",
                          f"{a.type}({params})", f"[{colour}]{a.result}[/]", a.message or "")
    console.print(table)
    if report.boot_seconds is not None:
        console.print(f"booted to a login prompt in {report.boot_seconds:.1f} s")
