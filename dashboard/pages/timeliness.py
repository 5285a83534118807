"""The timeliness page: weekly time in stage, deadlines met, conference attendance and actions on time."""

# No `from __future__ import annotations`: FastAPI reads the dependencies from the evaluated annotations.

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from dashboard.board import (
    CASE_READERS,
    LONDON,
    PREFIX,
    STAGE_ORDER,
    Board,
    SignedIn,
    local,
    words,
)
from dashboard.charts import Series, bar_chart, line_chart
from readmodel.oversight import OversightReadModel

# A chart's time unit: the largest in which its longest value is at least one.
HOUR_UNITS = (("h", 1.0), ("min", 60.0), ("s", 3600.0))
WEEKS_SHOWN = 12

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/timeliness", response_class=HTMLResponse)
async def timeliness(request: Request, board: Board, caller: SignedIn) -> Response:
    if caller.actor.role not in CASE_READERS:
        return board.forbidden(request, caller, "timeliness figures")
    now = await board.clock()
    weeks = weeks_ending(now)
    since = datetime.combine(weeks[0], datetime.min.time(), LONDON)
    charts, met_by_stage = await timeliness_charts(board.oversight, weeks, since, now)
    return board.page(
        request, "timeliness.html", caller, charts=charts, met_by_stage=met_by_stage,
        since=local(since), now=local(now),
    )


@dataclass(frozen=True)
class Weeks:
    """The weeks a chart shows, oldest first, and how read-model rows fall into them."""

    weeks: list[date]

    @property
    def labels(self) -> list[str]:
        return [week_label(w) for w in self.weeks]

    def values(self, rows: list[asyncpg.Record], column: str, **match: str) -> list[float | None]:
        """`column` of the rows that match, week by week; None for a week without one."""
        index = {week: n for n, week in enumerate(self.weeks)}
        values: list[float | None] = [None] * len(self.weeks)
        for row in rows:
            if row["week"] in index and all(row[k] == v for k, v in match.items()):
                values[index[row["week"]]] = float(row[column])
        return values


async def timeliness_charts(
    oversight: OversightReadModel, weeks: list[date], since: datetime, now: datetime
) -> tuple[list[Any], list[dict[str, Any]]]:
    shown = Weeks(weeks)
    judged = await oversight.deadlines_met(since, now, now)
    charts = stage_time_charts(shown, await oversight.time_in_stage(since, now))
    charts.append(deadlines_met_chart(shown, judged))
    charts.append(
        bar_chart(
            "ICPC: police attendance or report in lieu, by week booked",
            shown.labels,
            series_of(shown, await oversight.conference_attendance(since, now),
                      [("attend", "attend", "blue"), ("report in lieu", "report_in_lieu", "sky")]),
        )
    )
    charts.append(
        bar_chart(
            "Agreed actions by week due: on time, late, still overdue",
            shown.labels,
            series_of(shown, await oversight.actions_on_time(since, now, now),
                      [("on time", "on_time", "green"), ("late", "late", "amber"), ("overdue", "overdue", "red")]),
        )
    )
    return charts, met_by_stage(judged)


def series_of(shown: Weeks, rows: list[asyncpg.Record], columns: list[tuple[str, str, str]]) -> list[Series]:
    """One weekly series per (name, column, colour)."""
    return [Series(name, shown.values(rows, column), colour) for name, column, colour in columns]


def stage_time_charts(shown: Weeks, stays: list[asyncpg.Record]) -> list[Any]:
    """Per open stage, the weekly median and 90th percentile of time spent in it, in the unit that suits it."""
    charts = []
    for stage in STAGE_ORDER:
        median = shown.values(stays, "median_hours", stage=stage.value)
        p90 = shown.values(stays, "p90_hours", stage=stage.value)
        longest = max((v for v in p90 if v is not None), default=None)
        if longest is None:
            continue
        unit, per_hour = next((u, f) for u, f in HOUR_UNITS if longest * f >= 1 or u == "s")
        charts.append(
            line_chart(
                f"Time in {words(stage.value)}, by week entered",
                shown.labels,
                [Series("median", [v * per_hour if v is not None else None for v in median], "blue"),
                 Series("90th percentile", [v * per_hour if v is not None else None for v in p90], "amber")],
                unit=unit,
            )
        )
    return charts or [line_chart("Time in each stage, by week entered", shown.labels, [])]


def deadlines_met_chart(shown: Weeks, judged: list[asyncpg.Record]) -> Any:
    """The share of stage deadlines met, week by week entered."""
    met_share: list[float | None] = [None] * len(shown.weeks)
    for n, week in enumerate(shown.weeks):
        rows = [r for r in judged if r["week"] == week]
        total = sum(r["met"] + r["missed"] for r in rows)
        if total:
            met_share[n] = 100 * sum(r["met"] for r in rows) / total
    return line_chart(
        "Stage deadlines met (%), by week entered", shown.labels, [Series("met", met_share, "green")], "%"
    )


def met_by_stage(judged: list[asyncpg.Record]) -> list[dict[str, Any]]:
    """Per open stage, the deadlines met and missed over the whole period."""
    rows_by_stage = []
    for stage in STAGE_ORDER:
        rows = [r for r in judged if r["stage"] == stage.value]
        met, missed = sum(r["met"] for r in rows), sum(r["missed"] for r in rows)
        if met + missed:
            rows_by_stage.append({"stage": words(stage.value), "met": met, "missed": missed,
                                  "share": round(100 * met / (met + missed))})
    return rows_by_stage


def week_label(week: date) -> str:
    return week.strftime("%d %b")


def weeks_ending(now: datetime) -> list[date]:
    monday = now.astimezone(LONDON).date() - timedelta(days=now.astimezone(LONDON).weekday())
    return [monday - timedelta(weeks=n) for n in reversed(range(WEEKS_SHOWN))]
