"""The dashboard's charts: each with its figures as a table a screen reader can read, and a referral's timeline
legible whether its events are minutes or weeks apart."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from itertools import combinations
from zoneinfo import ZoneInfo

from dashboard.charts import LEFT, MARK_GAP, RIGHT, WIDTH, Band, Mark, Series, bar_chart, line_chart, timeline

LONDON = ZoneInfo("Europe/London")


def test_a_chart_carries_its_figures_as_a_table():
    labels = ["02 Nov", "09 Nov"]
    for chart in (line_chart("Time in review", labels, [Series("median", [1.5, None], "blue")], unit="h"),
                  bar_chart("Actions", labels, [Series("on time", [3, 0], "green"), Series("late", [1, 2], "red")])):
        table = re.search(r'<details class="chart-data">.*?<table.*?</table>', str(chart), re.S).group()
        rows = re.findall(r"<tr>(.*?)</tr>", table)
        assert len(rows) == 1 + len(labels)
        assert '<th scope="row">02 Nov</th>' in rows[1]
    assert re.findall(r"<td>(.*?)</td>", str(line_chart("T", labels, [Series("median", [1.5, None], "blue")], "h"))) \
        == ["1.5h", ""]


def drawn_marks(svg: str) -> list[tuple[float, float, str]]:
    """Each mark's centre and its label, as the chart drew it."""
    marks = [(float(x), float(y), label) for x, y, label in
             re.findall(r'<circle class="mark" cx="([\d.]+)" cy="([\d.]+)"[^>]*><title>([^<]*)</title>', svg)]
    return marks + [(float(x), float(y), label) for x, y, label in
                    re.findall(r'<path class="mark" data-x="([\d.]+)" data-y="([\d.]+)"[^>]*><title>([^<]*)</title>', svg)]


def assert_legible(svg: str, marks: list[Mark]) -> list[str]:
    """Every mark drawn inside the plot, none on top of another, the axis labelled at distinct times; its labels."""
    drawn = drawn_marks(svg)
    assert sorted(label.rsplit(" (", 1)[0] for *_, label in drawn) == sorted(m.label for m in marks)
    assert all(LEFT <= x <= WIDTH - RIGHT for x, _, _ in drawn)
    for (x1, y1, a), (x2, y2, b) in combinations(drawn, 2):
        assert abs(x1 - x2) >= MARK_GAP or abs(y1 - y2) >= 11, f"{a} and {b} drawn on top of each other"
    ticks = re.findall(r'<text x="[\d.]+" y="\d+" class="tick" text-anchor="\w+">([^<]+)</text>', svg)
    assert len(ticks) >= 3 and len(set(ticks)) == len(ticks)
    return ticks


def test_a_referral_decided_minutes_apart_has_every_decision_in_sight_on_an_axis_of_minutes():
    start = datetime(2026, 11, 24, 9, 0, tzinfo=LONDON)
    at = [start + timedelta(minutes=m) for m in (0, 1, 2, 4, 7)]
    bands = [Band("supervisor review", at[0], at[1], at[0] + timedelta(hours=24)),
             Band("screening", at[1], at[4], at[1] + timedelta(hours=4))]
    marks = [Mark(at[1], "decision", "reviewed"), Mark(at[2], "decision", "override asked"),
             Mark(at[2] + timedelta(seconds=20), "decision", "override granted"), Mark(at[4], "decision", "screened"),
             Mark(at[3], "escalation", "E1"), Mark(at[3] + timedelta(seconds=5), "escalation", "E2")]
    svg = str(timeline(bands, marks, at[0], at[4]))
    ticks = assert_legible(svg, marks)
    assert all(re.fullmatch(r"24 Nov 09:0\d", tick) for tick in ticks)  # whole minutes, London time
    assert "No data" not in svg and svg.count("<rect x=") >= 2


def test_a_referral_that_took_weeks_keeps_its_cluster_of_early_decisions_apart_on_an_axis_of_days():
    start = datetime(2026, 10, 5, 9, 0, tzinfo=LONDON)
    closed = start + timedelta(weeks=6)
    bands = [Band("supervisor review", start, start + timedelta(minutes=3)),
             Band("screening", start + timedelta(minutes=3), start + timedelta(minutes=9)),
             Band("conference", start + timedelta(minutes=9), closed, start + timedelta(weeks=3))]
    marks = [Mark(start + timedelta(minutes=m), "decision", f"decision {m}") for m in (3, 9, 10)]
    marks += [Mark(start + timedelta(weeks=w), "deadline", f"A{w} due") for w in (2, 4)]
    marks += [Mark(closed, "decision", "closed")]
    svg = str(timeline(bands, marks, start, closed))
    ticks = assert_legible(svg, marks)
    assert all(re.fullmatch(r"\d\d (Oct|Nov)", tick) for tick in ticks)  # whole days across the weeks
    # The three decisions minutes apart stand in lanes of their own, not as one dot.
    early = [y for x, y, label in drawn_marks(svg) if label.startswith("decision")]
    assert len(set(early)) == 3
