"""Working-day arithmetic: a pure function of its inputs, safe inside the workflow sandbox.

Working days skip Saturdays, Sundays and the bank holidays of England and Wales, which
arrive as a list of dates in the SLA policy (loaded outside the workflow). A deadline in
working days keeps the local (Europe/London) time of day of its start.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

from workflows.models import Duration, SlaPolicy


@lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def is_working_day(day: date, bank_holidays: Collection[date]) -> bool:
    return day.weekday() < 5 and day not in bank_holidays


def first_working_day(year: int, month: int, bank_holidays: Collection[date]) -> date:
    day = date(year, month, 1)
    while not is_working_day(day, bank_holidays):
        day += timedelta(days=1)
    return day


def previous_working_day(day: date, bank_holidays: Collection[date]) -> date:
    """The last working day before `day`."""
    day -= timedelta(days=1)
    while not is_working_day(day, bank_holidays):
        day -= timedelta(days=1)
    return day


def local_date(moment: datetime, tz: str = "Europe/London") -> date:
    return moment.astimezone(_zone(tz)).date()


def start_of_day(day: date, tz: str = "Europe/London") -> datetime:
    """Local midnight at the start of `day`, in UTC."""
    return datetime.combine(day, datetime.min.time(), tzinfo=_zone(tz)).astimezone(timezone.utc)


def local_moment(day: date, at: time, tz: str = "Europe/London") -> datetime:
    """`day` at the local time of day `at`, in UTC."""
    return datetime.combine(day, at, tzinfo=_zone(tz)).astimezone(timezone.utc)


def add_working_days(start: datetime, days: int, bank_holidays: Collection[date], tz: str = "Europe/London") -> datetime:
    """`days` working days after `start`, at the same local time of day.

    Each working day reached counts, so one working day from Friday 17:00 is Monday
    17:00, and from Saturday 10:00 it is Monday 10:00.
    """
    local = start.astimezone(_zone(tz))
    day = local.date()
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if is_working_day(day, bank_holidays):
            counted += 1
    moved = datetime.combine(day, local.timetz().replace(tzinfo=None), tzinfo=_zone(tz))
    return moved.astimezone(timezone.utc)


def subtract_working_days(end: datetime, days: int, bank_holidays: Collection[date], tz: str = "Europe/London") -> datetime:
    """`days` working days before `end`, at the same local time of day."""
    local = end.astimezone(_zone(tz))
    day = local.date()
    counted = 0
    while counted < days:
        day -= timedelta(days=1)
        if is_working_day(day, bank_holidays):
            counted += 1
    moved = datetime.combine(day, local.timetz().replace(tzinfo=None), tzinfo=_zone(tz))
    return moved.astimezone(timezone.utc)


def add_duration(start: datetime, duration: Duration, policy: SlaPolicy) -> datetime:
    """When a step that started at `start` falls due under `duration`."""
    if duration.hours is not None:
        return start + timedelta(hours=duration.hours)
    return add_working_days(start, duration.working_days or 0, frozenset(policy.bank_holidays), policy.timezone)
