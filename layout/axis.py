"""A time axis every chart shares, the dashboard's and the audit report's: ticks at whole London minutes, hours or days."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
TICK_STEPS = [
    timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(minutes=30), timedelta(hours=1),
    timedelta(hours=3), timedelta(hours=6), timedelta(hours=12), timedelta(days=1), timedelta(days=2),
    timedelta(days=7), timedelta(days=14), timedelta(days=28), timedelta(days=91), timedelta(days=365),
]


def first_tick(start: datetime, step: timedelta) -> datetime:
    """The first whole step (a whole local minute, hour or day) at or after `start`."""
    local_start = start.astimezone(LONDON)
    if step >= timedelta(days=1):
        floor = local_start.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        midnight = local_start.replace(hour=0, minute=0, second=0, microsecond=0)
        floor = midnight + step * ((local_start - midnight) // step)
    return floor if floor >= local_start else (floor + step).astimezone(LONDON)


def time_ticks(start: datetime, end: datetime, most: int = 8) -> tuple[list[datetime], str]:
    """At most `most` ticks from `start` to `end` at the smallest whole step that fits, in London time, and the
    strftime format naming them: a day's date, a date and time, or (a chart under a minute) its two ends to the second."""
    span = max(end - start, timedelta(minutes=1))
    step = next((s for s in TICK_STEPS if span / s <= most), TICK_STEPS[-1])
    ticks = []
    tick = first_tick(start, step)
    while tick <= end:
        ticks.append(tick)
        tick = (tick + step).astimezone(LONDON)
    # A chart shorter than its smallest step still has its two ends named.
    ticks = ticks if len(ticks) >= 2 else [start.astimezone(LONDON), end.astimezone(LONDON)]
    fmt = "%d %b" if step >= timedelta(days=1) else "%d %b %H:%M" if len(ticks) > 2 else "%H:%M:%S"
    return ticks, fmt
