"""Pictures of the work as small server-side SVG: builds per day, a build's stage timeline, duration sparklines.

Plain functions from numbers to markup (no Flask, no database). Each picture carries its meaning in words
too (a <title>, an aria-label, and the words the page prints beside it), and the chart tells statuses apart
by pattern as well as colour, so nothing depends on seeing colour.
"""
from __future__ import annotations

from datetime import date, datetime

from markupsafe import Markup, escape

from app.models.base import utcnow

# Chart groups of build statuses, in stacking order (bottom first), with a fill and a pattern each.
STATUS_GROUPS = {
    "succeeded": ("succeeded", "#15803d", None),
    "failed": ("failed", "#b91c1c", "hatch"),
    "cancelled": ("cancelled", "#64748b", "dots"),
    "running": ("in progress", "#1d4ed8", "stripes"),
}
GROUP_OF = {"succeeded": "succeeded", "failed": "failed", "cancelled": "cancelled", "pending": "running",
            "queued": "running", "building": "running", "testing": "running"}


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _patterns(prefix: str) -> str:
    """<defs> with one pattern per status group that has one: white marks over the group's colour."""
    defs = []
    for group, (_label, colour, pattern) in STATUS_GROUPS.items():
        if pattern is None:
            continue
        if pattern == "hatch":
            marks = '<path d="M-1,1 l2,-2 M0,6 l6,-6 M5,7 l2,-2" stroke="#fff" stroke-width="1.4"/>'
        elif pattern == "dots":
            marks = '<circle cx="3" cy="3" r="1.2" fill="#fff"/>'
        else:
            marks = '<rect x="0" y="0" width="6" height="1.5" fill="#fff" fill-opacity=".75"/>'
        defs.append(f'<pattern id="{prefix}-{group}" width="6" height="6" patternUnits="userSpaceOnUse">'
                    f'<rect width="6" height="6" fill="{colour}"/>{marks}</pattern>')
    return "<defs>" + "".join(defs) + "</defs>"


def _fill(prefix: str, group: str) -> str:
    _label, colour, pattern = STATUS_GROUPS[group]
    return f"url(#{prefix}-{group})" if pattern else colour


def swatch(group: str) -> Markup:
    """A legend square drawn like the chart's bars for `group`."""
    prefix = f"swatch-{group}"
    return Markup(f'<svg class="swatch" width="14" height="14" viewBox="0 0 14 14" aria-hidden="true" '
                  f'focusable="false">{_patterns(prefix)}<rect width="14" height="14" rx="2" '
                  f'fill="{_fill(prefix, group)}"/></svg>')


def day_counts(rows, days: list[date]) -> list[dict]:
    """[(created_at, status), ...] -> one {"day", "counts": {group: n}, "total"} per day in `days`."""
    by_day = {day: dict.fromkeys(STATUS_GROUPS, 0) for day in days}
    for created_at, status in rows:
        day = created_at.date() if isinstance(created_at, datetime) else created_at
        if day in by_day:
            by_day[day][GROUP_OF.get(status, "running")] += 1
    return [{"day": day, "counts": counts, "total": sum(counts.values())} for day, counts in by_day.items()]


def _day_words(entry: dict) -> str:
    parts = [f"{n} {STATUS_GROUPS[g][0]}" for g, n in entry["counts"].items() if n]
    return f"{entry['day']:%a %d %b}: " + (", ".join(parts) if parts else "no builds")


def builds_per_day(series: list[dict], *, prefix: str = "bpd") -> Markup:
    """Stacked bars, one per day (oldest left). The page prints the axis labels and a table in words."""
    width, height, gap = 600, 160, 2
    step = width / max(1, len(series))
    top = max([entry["total"] for entry in series] + [1])
    bars = []
    for index, entry in enumerate(series):
        x = index * step + gap / 2
        y = height
        shapes = []
        for group, count in entry["counts"].items():
            if not count:
                continue
            h = height * count / top
            y -= h
            shapes.append(f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(step - gap)}" height="{_num(h)}" '
                          f'fill="{_fill(prefix, group)}" class="bar-{group}"/>')
        bars.append(f'<g><title>{escape(_day_words(entry))}</title>'
                    f'<rect x="{_num(index * step)}" y="0" width="{_num(step)}" height="{height}" fill="transparent"/>'
                    + "".join(shapes) + "</g>")
    grid = "".join(f'<line x1="0" x2="{width}" y1="{_num(height * f)}" y2="{_num(height * f)}" class="grid"/>'
                   for f in (0, .5))
    total = sum(entry["total"] for entry in series)
    label = f"Builds per day over the last {len(series)} days: {total} in all, at most {top} on one day."
    return Markup(f'<svg class="chart builds-per-day" viewBox="0 0 {width} {height + 1}" preserveAspectRatio="none" '
                  f'role="img" aria-label="{escape(label)}">{_patterns(prefix)}{grid}{"".join(bars)}'
                  f'<line x1="0" x2="{width}" y1="{height}" y2="{height}" class="axis"/></svg>')


def stage_bar(offset: float, length: float, status: str, cached: bool) -> Markup:
    """One stage's bar on the build's time axis (both in percent of the build's run time)."""
    offset = max(0.0, min(100.0, offset))
    length = max(0.8, min(100.0 - offset, length)) if length > 0 else 0.8
    offset = min(offset, 100.0 - length)
    kind = "cached" if cached else status
    return Markup(f'<svg class="stage-bar" viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true" '
                  f'focusable="false"><rect class="track" x="0" y="0" width="100" height="10"/>'
                  f'<rect class="bar bar-{kind}" x="{_num(offset)}" y="0" width="{_num(length)}" height="10"/></svg>')


def stage_rows(build, now: datetime | None = None) -> list[dict]:
    """Each stage with where its bar starts and how long it is, in percent of the build's run so far."""
    now = now or utcnow()
    start = build.started_at
    end = build.finished_at or now
    span = (end - start).total_seconds() if start else 0.0
    rows = []
    for stage in build.stages:
        seconds = stage.duration
        if seconds is None and stage.status == "running" and stage.started_at:
            seconds = (now - stage.started_at).total_seconds()
        cached = stage.status == "skipped"
        offset = length = 0.0
        if span > 0 and stage.started_at is not None:
            offset = 100 * (stage.started_at - start).total_seconds() / span
            length = 100 * (seconds or 0) / span
        drawn = stage.started_at is not None or cached
        rows.append({"name": stage.name, "cached": cached, "seconds": seconds,
                     "bar": stage_bar(offset, length, stage.status, cached) if drawn and span > 0 else None})
    return rows


def sparkline(points: list[tuple[float, str]], *, label: str) -> Markup:
    """Durations oldest to newest; a failed build is drawn as a cross, a succeeded one as a dot."""
    width, height, pad = 160, 32, 4
    if not points:
        return Markup("")
    top = max(seconds for seconds, _ in points) or 1
    step = (width - 2 * pad) / max(1, len(points) - 1)
    coords = []
    for index, (seconds, _status) in enumerate(points):
        x = pad + index * step if len(points) > 1 else width / 2
        y = height - pad - (height - 2 * pad) * seconds / top
        coords.append((x, y))
    marks = []
    for (x, y), (_seconds, status) in zip(coords, points):
        if status == "succeeded":
            marks.append(f'<circle cx="{_num(x)}" cy="{_num(y)}" r="2.2" class="mark-ok"/>')
        else:
            marks.append(f'<path d="M{_num(x - 2.5)},{_num(y - 2.5)} l5,5 m0,-5 l-5,5" class="mark-bad"/>')
    line = " ".join(f"{_num(x)},{_num(y)}" for x, y in coords)
    return Markup(f'<svg class="sparkline" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
                  f'role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>'
                  f'<polyline points="{line}" class="line"/>{"".join(marks)}</svg>')


def balance_chart(points: list[tuple[date, int]], *, label: str) -> Markup:
    """A balance per day as a line over a zero baseline, with the first and last day and the highest value
    written on it (the page lists the transactions in words)."""
    width, height, pad, left = 320, 96, 6, 48
    if not points:
        return Markup("")
    values = [value for _, value in points]
    top, bottom = max(max(values), 1), min(min(values), 0)
    span = top - bottom or 1
    step = (width - left - pad) / max(1, len(points) - 1)

    def y(value: float) -> float:
        return pad + (height - 2 * pad - 14) * (top - value) / span

    coords = " ".join(f"{_num(left + i * step)},{_num(y(v))}" for i, v in enumerate(values))
    zero = y(0)
    words = f"{label}: from {values[0]:,} on {points[0][0].isoformat()} to {values[-1]:,} on {points[-1][0].isoformat()}"
    return Markup(
        f'<svg class="balance-chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(words)}">'
        f'<title>{escape(words)}</title>'
        f'<line x1="{left}" y1="{_num(zero)}" x2="{width - pad}" y2="{_num(zero)}" class="axis"/>'
        f'<text x="{left - 4}" y="{_num(y(top) + 4)}" class="tick" text-anchor="end">{top:,}</text>'
        f'<text x="{left - 4}" y="{_num(zero + 4)}" class="tick" text-anchor="end">0</text>'
        f'<polyline points="{coords}" class="line"/>'
        f'<text x="{left}" y="{height - 2}" class="tick">{points[0][0].strftime("%b %d")}</text>'
        f'<text x="{width - pad}" y="{height - 2}" class="tick" text-anchor="end">{points[-1][0].strftime("%b %d")}</text>'
        f'</svg>')
