"""The timeliness page: weekly time in stage, deadlines met, conference attendance and actions on time."""

# No `from __future__ import annotations`: FastAPI reads the dependencies from the evaluated annotations.

from datetime import date, datetime, timedelta
from typing import Any

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from dashboard.board import (
    CASE_READERS,
    LONDON,
    PREFIX,
    Board,
    SignedIn,
    local,
    words,
)
from dashboard.charts import Series, bar_chart, line_chart
from readmodel.oversight import OversightReadModel
from workflows.models import Stage

# A chart's time unit: the largest in which its longest value is at least one.
HOUR_UNITS = (("h", 1.0), ("min", 60.0), ("s", 3600.0))
WEEKS_SHOWN = 12
TIMED_STAGES = [Stage.SUPERVISOR_REVIEW, Stage.RETURNED_TO_OFFICER, Stage.SCREENING, Stage.STRATEGY_DISCUSSION,
                Stage.CONFERENCE, Stage.ACTIONS]

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


async def timeliness_charts(
    oversight: OversightReadModel, weeks: list[date], since: datetime, now: datetime
) -> tuple[list[Any], list[dict[str, Any]]]:
    labels = [week_label(w) for w in weeks]
    index = {week: n for n, week in enumerate(weeks)}

    def weekly(rows: list[asyncpg.Record], column: str, **match: str) -> list[float | None]:
        values: list[float | None] = [None] * len(weeks)
        for row in rows:
            if row["week"] in index and all(row[k] == v for k, v in match.items()):
                values[index[row["week"]]] = float(row[column])
        return values

    stays = await oversight.time_in_stage(since, now)
    charts = []
    for stage in TIMED_STAGES:
        median = weekly(stays, "median_hours", stage=stage.value)
        p90 = weekly(stays, "p90_hours", stage=stage.value)
        longest = max((v for v in p90 if v is not None), default=None)
        if longest is None:
            continue
        unit, per_hour = next((u, f) for u, f in HOUR_UNITS if longest * f >= 1 or u == "s")
        charts.append(
            line_chart(
                f"Time in {words(stage.value)}, by week entered",
                labels,
                [Series("median", [v * per_hour if v is not None else None for v in median], "blue"),
                 Series("90th percentile", [v * per_hour if v is not None else None for v in p90], "amber")],
                unit=unit,
            )
        )
    if not charts:
        charts.append(line_chart("Time in each stage, by week entered", labels, []))

    judged = await oversight.deadlines_met(since, now, now)
    met_share: list[float | None] = [None] * len(weeks)
    for week, n in index.items():
        rows = [r for r in judged if r["week"] == week]
        total = sum(r["met"] + r["missed"] for r in rows)
        if total:
            met_share[n] = 100 * sum(r["met"] for r in rows) / total
    charts.append(line_chart("Stage deadlines met (%), by week entered", labels, [Series("met", met_share, "green")], "%"))
    met_by_stage = []
    for stage in TIMED_STAGES:
        rows = [r for r in judged if r["stage"] == stage.value]
        met, missed = sum(r["met"] for r in rows), sum(r["missed"] for r in rows)
        if met + missed:
            met_by_stage.append({"stage": words(stage.value), "met": met, "missed": missed,
                                 "share": round(100 * met / (met + missed))})

    conferences = await oversight.conference_attendance(since, now)
    charts.append(
        bar_chart(
            "ICPC: police attendance or report in lieu, by week booked",
            labels,
            [Series("attend", weekly(conferences, "attend"), "blue"),
             Series("report in lieu", weekly(conferences, "report_in_lieu"), "sky")],
        )
    )
    on_time = await oversight.actions_on_time(since, now, now)
    charts.append(
        bar_chart(
            "Agreed actions by week due: on time, late, still overdue",
            labels,
            [Series("on time", weekly(on_time, "on_time"), "green"),
             Series("late", weekly(on_time, "late"), "amber"),
             Series("overdue", weekly(on_time, "overdue"), "red")],
        )
    )
    return charts, met_by_stage


def week_label(week: date) -> str:
    return week.strftime("%d %b")


def weeks_ending(now: datetime) -> list[date]:
    monday = now.astimezone(LONDON).date() - timedelta(days=now.astimezone(LONDON).weekday())
    return [monday - timedelta(weeks=n) for n in reversed(range(WEEKS_SHOWN))]
