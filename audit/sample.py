"""The monthly quality-assurance sample: drawn on demand, or by a Temporal Schedule on the first working day of each month."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
)

from activities.audit import AuditRecords, QuotasDiffer
from runtime.settings import Settings
from runtime.temporal import ensure_schedule
from workflows.audit_models import AuditWorklist, MonthlySampleStart, SampleCategory, SampleRequest
from workflows.audit_sample import MonthlySampleWorkflow
from workflows.models import SlaPolicy

SCHEDULE_ID = "audit-monthly-sample"
# The first working day is at most the 5th (Easter on the 1st to the 4th, a jubilee); a week
# leaves room for a special bank holiday. The workflow itself skips the other days.
FIRST_DAYS = ScheduleRange(start=1, end=7)


async def monthly_sample(
    pool: asyncpg.Pool,
    month: str,
    seed: int = 0,
    quotas: dict[SampleCategory, int] | None = None,
    drawn_by: str = "system",
    redraw: bool = False,
) -> AuditWorklist:
    """Draw (or find, if already drawn) the month's sample worklist; `QuotasDiffer` when it was drawn under other
    quotas and `redraw` is not asked."""
    records = AuditRecords(pool)
    existing = await records.worklist(month, seed)
    if existing is not None and not redraw:
        # No quotas asked for: the month as drawn, whatever its quotas were; others only on a redraw.
        if quotas is not None and existing.quotas != quotas:
            raise QuotasDiffer(existing)
        return existing
    request = SampleRequest(month=month, seed=seed, drawn_by=drawn_by, redraw=redraw,
                            **({"quotas": quotas} if quotas else {}))
    return await records.draw_monthly_sample(request)


def monthly_sample_schedule(settings: Settings, policy: SlaPolicy, seed: int = 0) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            MonthlySampleWorkflow.run,
            MonthlySampleStart(bank_holidays=policy.bank_holidays, timezone=policy.timezone, seed=seed),
            id=SCHEDULE_ID,
            task_queue=settings.task_queue,
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    day_of_month=[FIRST_DAYS],
                    hour=[ScheduleRange(7)],
                    minute=[ScheduleRange(0)],
                    second=[ScheduleRange(0)],
                    comment="07:00 on the first seven days; the workflow acts on the first working day",
                )
            ],
            time_zone_name=policy.timezone,
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(days=1)),
    )


async def ensure_monthly_sample_schedule(client: Client, settings: Settings, policy: SlaPolicy, seed: int = 0) -> str:
    """Create the schedule, or bring an existing one up to date (its bank holidays above all).

    Run it at each deployment: the bank holidays it carries cover last year to three years ahead.
    """
    return await ensure_schedule(client, SCHEDULE_ID, monthly_sample_schedule(settings, policy, seed))
