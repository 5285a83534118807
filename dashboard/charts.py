"""Charts drawn as inline SVG on the server: weekly lines and bars, and a referral's stages on a timeline.

No script and no external asset: the pages work on machines without internet access, and
every mark carries a <title> so its value shows on hover and reaches screen readers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup, escape

from layout.axis import time_ticks

WIDTH, HEIGHT = 640, 230
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 44, 30
PALETTE = {
    "blue": "#1d4e89",
    "sky": "#6aa6d8",
    "green": "#2e7d32",
    "amber": "#c77700",
    "red": "#b3261e",
    "grey": "#8a8f98",
}


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    color: str


def _nice_ceiling(value: float) -> float:
    """The axis maximum: 1, 2 or 5 times a power of ten, at or above `value`."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def _number(value: float) -> str:
    if value == int(value) or value >= 10:
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 1 else f"{value:.2g}"


def _axis_top(values: Sequence[float], counts: bool) -> float:
    """The y axis maximum; for counts, a multiple of the four gridlines, so every tick is a whole number."""
    top = _nice_ceiling(max(values))
    return float(max(4, math.ceil(top / 4) * 4)) if counts else top


def _frame(title: str, labels: Sequence[str], top: float, unit: str, series: Sequence[Series]) -> list[str]:
    """The chart's title, y axis with gridlines, x labels and legend."""
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="{LEFT}" y="16" class="chart-title">{escape(title)}</text>',
    ]
    for tick in range(5):
        value = top * tick / 4
        y = TOP + plot_h - plot_h * tick / 4
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{_number(value)}{escape(unit)}</text>')
    step = (WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    every = max(1, math.ceil(len(labels) / 8))  # at most eight labels fit
    for index, label in enumerate(labels):
        if index % every == 0:
            x = LEFT + step * (index + 0.5)
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" class="tick" text-anchor="middle">{escape(label)}</text>')
    x = WIDTH - RIGHT
    for item in reversed(series):
        width = 14 + 7 * len(item.name)
        x -= width
        parts.append(
            f'<rect x="{x:.0f}" y="22" width="10" height="10" fill="{PALETTE.get(item.color, item.color)}"/>'
            f'<text x="{x + 13:.0f}" y="31" class="legend">{escape(item.name)}</text>'
        )
    return parts


def _empty(title: str) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} 60" role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        f'<text x="{LEFT}" y="16" class="chart-title">{escape(title)}</text>'
        f'<text x="{LEFT}" y="42" class="tick">No data in this period yet.</text></svg>'
    )


def _with_figures(chart: str, title: str, labels: Sequence[str], series: Sequence[Series], unit: str, axis: str) -> Markup:
    """The chart with its figures as a table under a disclosure: what a screen reader or a printout reads instead."""
    head = "".join(f'<th scope="col">{escape(s.name)}</th>' for s in series)
    rows = "".join(
        f'<tr><th scope="row">{escape(label)}</th>'
        + "".join(f"<td>{'' if s.values[i] is None else _number(s.values[i]) + escape(unit)}</td>" for s in series)
        + "</tr>"
        for i, label in enumerate(labels)
    )
    return Markup(f'<figure class="chart-figure">{chart}<details class="chart-data"><summary>{escape(title)}: the figures'
                  f'</summary><table tabindex="0"><thead><tr><th scope="col">{escape(axis)}</th>{head}</tr></thead>'
                  f"<tbody>{rows}</tbody></table></details></figure>")


def line_chart(title: str, labels: Sequence[str], series: Sequence[Series], unit: str = "", axis: str = "Week") -> Markup:
    """One line per series over the labels (weeks); a missing value breaks the line."""
    values = [v for s in series for v in s.values if v is not None]
    if not labels or not values:
        return _empty(title)
    top = _axis_top(values, counts=False)
    plot_h = HEIGHT - TOP - BOTTOM
    step = (WIDTH - LEFT - RIGHT) / len(labels)
    parts = _frame(title, labels, top, unit, series)
    for item in series:
        color = PALETTE.get(item.color, item.color)
        points = []
        for index, value in enumerate(item.values):
            if value is None:
                continue
            x, y = LEFT + step * (index + 0.5), TOP + plot_h - plot_h * value / top
            points.append(f"{x:.1f},{y:.1f}")
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color}">'
                f"<title>{escape(item.name)}, {escape(labels[index])}: {_number(value)}{escape(unit)}</title></circle>"
            )
        if len(points) > 1:
            parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{color}" stroke-width="2"/>')
    parts.append("</svg>")
    return _with_figures("".join(parts), title, labels, series, unit, axis)


def bar_chart(
    title: str, labels: Sequence[str], series: Sequence[Series], unit: str = "", stacked: bool = True, axis: str = "Week"
) -> Markup:
    """Counts as bars per label: stacked (parts of a whole) or side by side."""
    if not labels or not any(v for s in series for v in s.values):
        return _empty(title)
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(labels))]
    top = _axis_top(totals if stacked else [v or 0 for s in series for v in s.values], counts=True)
    plot_h = HEIGHT - TOP - BOTTOM
    step = (WIDTH - LEFT - RIGHT) / len(labels)
    bar = step * 0.7 / (1 if stacked else len(series))
    parts = _frame(title, labels, top, unit, series)
    for index, label in enumerate(labels):
        base = 0.0
        for number, item in enumerate(series):
            value = item.values[index] or 0
            if not value:
                continue
            x = LEFT + step * index + step * 0.15 + (0 if stacked else bar * number)
            height = plot_h * value / top
            y = TOP + plot_h - plot_h * base / top - height
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{height:.1f}" '
                f'fill="{PALETTE.get(item.color, item.color)}">'
                f"<title>{escape(item.name)}, {escape(label)}: {_number(value)}{escape(unit)}</title></rect>"
            )
            if stacked:
                base += value
    parts.append("</svg>")
    return _with_figures("".join(parts), title, labels, series, unit, axis)


@dataclass(frozen=True)
class Band:
    """A stretch of time on the timeline: a stay in a stage."""

    label: str
    start: datetime
    end: datetime
    late_from: datetime | None = None


@dataclass(frozen=True)
class Mark:
    """A moment on the timeline: a decision, an escalation, an action's deadline."""

    at: datetime
    kind: str  # decision | escalation | acknowledged | deadline
    label: str


MARK_SHAPES = {
    "decision": ("circle", "blue"),
    "escalation": ("triangle", "red"),
    "acknowledged": ("triangle", "green"),
    "deadline": ("diamond", "amber"),
}
# Each shape's row on the timeline, top to bottom around the bands; marks closer than MARK_GAP share no lane.
MARK_ROWS = ("triangle", "circle", "diamond")
MARK_GAP = 12.0
LANE = 13
BAND_HEIGHT = 26


def lanes(xs: Sequence[float], gap: float = MARK_GAP) -> list[int]:
    """A lane for each mark, in order along the axis: the first lane where it keeps `gap` from the last mark there,
    so marks minutes apart on a chart of weeks stand side by side, never on top of each other."""
    ends: list[float] = []
    chosen = [0] * len(xs)
    for index in sorted(range(len(xs)), key=lambda i: xs[i]):
        lane = next((n for n, last in enumerate(ends) if xs[index] - last >= gap), len(ends))
        if lane == len(ends):
            ends.append(xs[index])
        ends[lane] = xs[index]
        chosen[index] = lane
    return chosen


def timeline(bands: Sequence[Band], marks: Sequence[Mark], start: datetime, end: datetime) -> Markup:
    """Stages as bands across time (the late part hatched), with decisions, escalations and deadlines around them.

    The axis is labelled at whole London minutes, hours or days (however near or far apart the events), and marks
    too close to tell apart are set in lanes of their own, so a referral decided minutes apart is as legible as
    one that took weeks.
    """
    end = max(end, start + timedelta(minutes=1))
    span = (end - start).total_seconds()

    def x(at: datetime) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * max(0.0, min(1.0, (at - start).total_seconds() / span))

    by_row = {row: [m for m in marks if MARK_SHAPES[m.kind][0] == row] for row in MARK_ROWS}
    lane_of = {row: lanes([x(m.at) for m in row_marks]) for row, row_marks in by_row.items()}
    depth = {row: 1 + max(lane_of[row], default=0) for row in MARK_ROWS}
    # Top to bottom: the axis's labels, escalations, decisions, the bands, deadlines.
    axis_y = 14
    tops = {"triangle": axis_y + 10}
    tops["circle"] = tops["triangle"] + LANE * depth["triangle"]
    band_y = tops["circle"] + LANE * depth["circle"] + 4
    tops["diamond"] = band_y + BAND_HEIGHT + 6
    height = tops["diamond"] + LANE * depth["diamond"] + 4
    ticks, fmt = time_ticks(start, end)
    parts = [
        f'<svg class="chart timeline" viewBox="0 0 {WIDTH} {height}" role="img" '
        'aria-label="Timeline of stages, decisions and escalations" xmlns="http://www.w3.org/2000/svg">'
        "<title>Timeline of stages, decisions and escalations</title>",
        '<defs><pattern id="late" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        f'<rect width="3" height="6" fill="{PALETTE["red"]}" opacity="0.45"/></pattern></defs>',
    ]
    for tick in ticks:
        tx = x(tick)
        # A label at either end of the axis is kept inside the chart.
        anchor = "end" if tx > WIDTH - RIGHT - 40 else "start" if tx < LEFT + 40 else "middle"
        parts.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{axis_y + 3}" y2="{height}" class="grid"/>'
                     f'<text x="{tx:.1f}" y="{axis_y}" class="tick" text-anchor="{anchor}">{tick:{fmt}}</text>')
    colors = ["sky", "blue"]
    for number, band in enumerate(bands):
        x0, x1 = x(band.start), max(x(band.end), x(band.start) + 2)
        parts.append(
            f'<rect x="{x0:.1f}" y="{band_y}" width="{x1 - x0:.1f}" height="{BAND_HEIGHT}" '
            f'fill="{PALETTE[colors[number % 2]]}">'
            f"<title>{escape(band.label)}: {band.start:%d %b %H:%M} to {band.end:%d %b %H:%M}</title></rect>"
        )
        if band.late_from is not None and band.late_from < band.end:
            late_x = x(max(band.late_from, band.start))
            parts.append(f'<rect x="{late_x:.1f}" y="{band_y}" width="{x1 - late_x:.1f}" height="{BAND_HEIGHT}" '
                         'fill="url(#late)"/>')
        if x1 - x0 > 8 * len(band.label) * 0.8:
            parts.append(f'<text x="{x0 + 4:.1f}" y="{band_y + 17}" class="band-label">{escape(band.label)}</text>')
    for row, row_marks in by_row.items():
        for mark, lane in zip(row_marks, lane_of[row]):
            shape, color = MARK_SHAPES[mark.kind]
            cx, cy, fill = x(mark.at), tops[row] + LANE * lane + LANE / 2, PALETTE[color]
            tip = f"<title>{escape(mark.label)} ({mark.at:%d %b %H:%M})</title>"
            if shape == "circle":
                parts.append(f'<circle class="mark" cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="{fill}">{tip}</circle>')
            elif shape == "triangle":
                parts.append(f'<path class="mark" data-x="{cx:.1f}" data-y="{cy:.1f}" '
                             f'd="M{cx:.1f},{cy - 5.5:.1f} l6,11 h-12 z" fill="{fill}">{tip}</path>')
            else:
                parts.append(f'<path class="mark" data-x="{cx:.1f}" data-y="{cy:.1f}" '
                             f'd="M{cx:.1f},{cy - 6:.1f} l5,6 l-5,6 l-5,-6 z" fill="{fill}">{tip}</path>')
    parts.append("</svg>")
    return Markup("".join(parts))
