"""What the build pages show that the API does not: sizes and durations for people, the stage timeline
with stages still to come, and the failure reason in plain words. Reads builds; never changes them."""
from __future__ import annotations

import re
from collections import deque
from datetime import datetime

from app.models.base import isoformat, utcnow
from app.services.builds import logs

TERMINAL = ("succeeded", "failed", "cancelled")
RUNNING = ("queued", "building", "testing")

_UNKNOWN_PACKAGES = re.compile(r"unknown package\(s\) in Debian (?P<release>[\w.-]+): (?P<names>.+)", re.S)
_RECIPE_COMMAND = re.compile(r"recipe command (?P<n>\d+) failed with exit code (?P<code>-?\d+): (?P<cmd>.+)", re.S)
_INVALID_RECIPE = re.compile(r"invalid recipe: (?P<why>.+)", re.S)

def human_size(size: int | None) -> str:
    if size is None:
        return "—"
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            if unit == "bytes":
                return f"{int(value)} byte{'' if int(value) == 1 else 's'}"
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"  # unreachable: the loop returns at TiB


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0.0, float(seconds))
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def elapsed(start: datetime | None, end: datetime | None = None) -> float | None:
    """Seconds between two timestamps; a running span is measured up to now."""
    if start is None:
        return None
    return ((end or utcnow()) - start).total_seconds()


def is_running(status: str) -> bool:
    return status in RUNNING


# What each failure code means, in words, and whose problem it is (codes set by app.services.builds.run and the reaper).
_CODE_WORDS = {
    "worker_lost": "The worker running this build stopped (worker_lost)",
    "timeout": "The build ran longer than its time limit (timeout)",
    "test_error": "The image tests could not run (test_error)",
    "internal_error": "Kiln hit an internal error (internal_error)",
    "job_failed": "The build job failed on the worker (job_failed)",
    "disk_full": "The worker's disk is full: free space there, then retry the build (disk_full)",
}


def _sentence(reason: str, code: str | None, failure_class: str | None, stage: str | None) -> str:
    """One failure (the build's or an earlier attempt's) in plain words."""
    reason = (reason or "").strip()
    if code in _CODE_WORDS:
        return _CODE_WORDS[code]
    if (m := _UNKNOWN_PACKAGES.search(reason)):
        return f"The recipe asks for a package that does not exist in {m['release']}: {m['names'].strip()}"
    if (m := _RECIPE_COMMAND.search(reason)):
        return f"Command {m['n']} of the recipe failed with exit code {m['code']}: {m['cmd'].strip()}"
    if (m := _INVALID_RECIPE.search(reason)):
        return f"The recipe is not valid: {m['why'].strip()}"
    if code == "tests_failed":
        detail = reason.removeprefix("Image tests failed:").strip()
        return "The image was built, but it failed its tests" + (f": {detail}" if detail else "")
    if failure_class == "user_error":
        return f"The recipe could not be built: {reason}" if reason else "The recipe could not be built"
    where = f" during {stage}" if stage else ""
    return f"Kiln's build machinery failed{where}; this is not a problem with your recipe" + (
        f": {reason}" if reason else "")


def failure_view(build) -> dict | None:
    """For a failed build: {"title", "text", "whose", "detail"}; None for any other build."""
    if build.status != "failed":
        return None
    whose = "user_error" if build.failure_class == "user_error" else "infrastructure"
    stage = stage_name(build, build.failure_stage)
    text = _sentence(build.failure_reason, build.failure_code, build.failure_class, stage)
    if whose == "infrastructure" and build.attempt > 1:
        text += f"; Kiln retried it and gave up after {build.attempt} attempts."
    elif not text.endswith("."):
        text += "."
    reason = (build.failure_reason or "").strip()
    return {
        "title": "The recipe needs a change" if whose == "user_error" else "Kiln could not finish this build",
        "text": text,
        "whose": whose,
        # The recorded reason, when the sentence above only names the failure code (it may name the worker).
        "detail": reason if reason and build.failure_code in _CODE_WORDS and reason not in text else None,
    }


def attempt_notes(build) -> list[str]:
    """Earlier attempts that failed and were retried on this same build, in plain words."""
    history = list(build.attempts or [])
    if build.status == "failed" and history and history[-1].get("attempt") == build.attempt:
        history = history[:-1]  # the last entry is the failure shown above
    notes = []
    for entry in history:
        sentence = _sentence(entry.get("failureReason") or "", entry.get("failureCode"), entry.get("failureClass"),
                             stage_name(build, entry.get("stage")))
        notes.append(f"Attempt {entry.get('attempt')}: {sentence}; Kiln retried it.")
    return notes


def stage_name(build, name: str | None) -> str | None:
    if not name:
        return None
    for stage in build.stages:
        if stage.name == name:
            return stage.display_name
    return name


def stage_timeline(build) -> list[dict]:
    """Every planned stage in order with its status and how long it took (or has taken so far)."""
    rows = []
    for stage in build.stages:
        seconds = stage.duration
        if seconds is None and stage.status == "running":
            seconds = elapsed(stage.started_at)
        rows.append({"name": stage.name, "display_name": stage.display_name, "status": stage.status,
                     "duration": human_duration(seconds) if seconds is not None else ""})
    return rows


def progress_view(build) -> dict:
    """The bar, its label and a line about time, as the progress partial shows them."""
    percent = 100 if build.status == "succeeded" else max(0, min(100, int(build.progress or 0)))
    label = {
        "pending": "Not started",
        "queued": "Waiting for a worker" + (f" (attempt {build.attempt})" if build.attempt > 1 else ""),
        "succeeded": "Finished",
        "failed": f"Failed in {stage_name(build, build.failure_stage)}" if build.failure_stage else "Failed",
        "cancelled": "Cancelled",
    }.get(build.status) or build.stage_display or stage_name(build, build.stage) or "Starting"
    if build.status in TERMINAL and build.started_at:
        timing = f"Ran {human_duration(elapsed(build.started_at, build.finished_at))}"
    elif build.started_at:
        timing = f"Running for {human_duration(elapsed(build.started_at))}"
    elif build.queued_at and build.status == "queued":
        timing = f"Queued {human_duration(elapsed(build.queued_at))} ago"
    elif build.status == "cancelled":
        timing = "Cancelled before it started"
    else:
        timing = "Not queued yet"
    return {"percent": percent, "stage_label": label, "timing": timing}


def build_title(build) -> str:
    formats = ", ".join(build.formats or [])
    release = (build.recipe or {}).get("release")
    return f"{build.name} · {formats}" + (f" · Debian {release}" if release else "")


def list_row(build) -> dict:
    """One row of the builds table."""
    if build.started_at:
        seconds = elapsed(build.started_at, build.finished_at if build.status in TERMINAL else None)
        duration = human_duration(seconds)
    else:
        duration = "—"
    return {
        "id": build.id, "number": build.number, "status": build.status, "title": build_title(build),
        "running": is_running(build.status), "progress": int(build.progress or 0),
        "stage_name": progress_view(build)["stage_label"],
        "started_at": build.started_at,
        "started_iso": isoformat(build.started_at),
        "started_text": build.started_at.strftime("%Y-%m-%d %H:%M UTC") if build.started_at else "",
        "duration": duration,
    }


def artifact_rows(build, download_url) -> list[dict]:
    """Artifacts with people's sizes; `download_url(artifact)` gives each link."""
    return [{"id": a.id, "kind": a.kind, "filename": a.filename, "size": a.size, "size_text": human_size(a.size),
             "sha256": a.sha256, "download_url": download_url(a)} for a in build.artifacts]


TEST_RUN_LABELS = {"default": "Boot and recipe checks", "custom": "Custom assertions"}


def test_run_rows(build) -> list[dict]:
    """Test runs newest first, each case with its assertions (status, message, duration)."""
    runs = []
    for run in reversed(build.test_runs):
        cases = []
        for case in run.cases:
            cases.append({
                "description": case.description, "status": case.status, "duration": human_duration(case.duration),
                "assertions": [{"type": a.get("type", ""), "params": _params_text(a.get("params")),
                                "result": a.get("result", ""), "message": a.get("message") or ""}
                               for a in (case.assertions or [])],
            })
        failed = sum(1 for c in cases if c["status"] != "passed")
        summary = f"{len(cases) - failed} of {len(cases)} passed" if cases else ""
        if run.error:
            summary = (summary + " · " if summary else "") + f"could not run: {run.error}"
        runs.append({"id": run.id, "status": run.status, "label": TEST_RUN_LABELS.get(run.kind, run.kind),
                     "summary": summary, "cases": cases})
    return runs


def _params_text(params) -> str:
    if not params:
        return ""
    if isinstance(params, dict):
        return ", ".join(f"{k}={v}" for k, v in params.items())
    return str(params)


def log_view(build, limit: int = 2000) -> dict:
    """The last `limit` log lines (Redis while it holds them, else the archive) and the cursor after them."""
    last = logs.last_seq(build)
    if last:
        lines = logs.read(build, max(0, last - limit), limit)
        truncated = last > limit
    else:  # the seq counter expired with the stream: only the archive knows where the log ends
        tail: deque = deque(maxlen=limit)
        count = 0
        for line in logs.iter_all(build):
            tail.append(line)
            count += 1
        lines, truncated = list(tail), count > limit
    shown = [{"seq": line["seq"], "level": _level(line.get("level")), "stage": line.get("stage") or "",
              "time": _clock(line.get("timestamp")), "message": line.get("message", "")} for line in lines]
    return {
        "lines": shown,
        "after": shown[-1]["seq"] if shown else 0,
        "truncated": truncated,
        "first_error_seq": next((line["seq"] for line in shown if line["level"] in ("error", "critical")), None),
    }


def _level(level) -> str:
    return re.sub(r"[^a-z]", "", str(level or "info").lower()) or "info"


def _clock(timestamp) -> str:
    m = re.search(r"T(\d\d:\d\d:\d\d)", str(timestamp or ""))
    return m.group(1) if m else ""
