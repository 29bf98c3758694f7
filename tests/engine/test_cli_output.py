"""The CLI's terminal output (rich): bars per stage follow the engine's events, the summary names every stage."""
from __future__ import annotations

import io

from rich.console import Console

from app.engine.pipeline import stage_names
from app.engine.richout import RichEvents, interactive


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=110, color_system=None), out


def test_stage_bars_follow_the_engine_events_and_the_summary_lists_every_stage():
    console, out = _console()
    events = RichEvents(console=console)
    with events:
        events.stage("resolve", "running")
        events.progress("resolve", 0, "Package Resolver")
        events.log("resolve", "info", "checking 1 package(s) against Debian trixie")
        events.stage("resolve", "succeeded")
        events.stage("bootstrap", "running")
        events.progress("bootstrap", 30, "base layer")
        # The engine reports overall percent; the bootstrap bar shows its own share (5..55 -> 50 %).
        assert events.bars.tasks[events.tasks["bootstrap"]].completed == 50
        events.stage("bootstrap", "failed")
    events.summary()
    text = out.getvalue()
    assert "checking 1 package(s) against Debian trixie" in text
    summary = text[text.index("Build summary"):]
    for _name, display in stage_names():
        assert display in summary
    assert "succeeded" in summary and "failed" in summary and "pending" in summary


def test_a_cached_build_says_so_in_the_summary():
    console, out = _console()
    events = RichEvents(console=console)
    with events:
        events.progress("evidence", 100, "done (cached)")
    events.summary(cached=True)
    assert "Build summary (cached result)" in out.getvalue() and "cached" in out.getvalue().split("summary")[-1]


def test_plain_lines_when_not_a_terminal():
    assert interactive(io.StringIO()) is False
