"""The daily triage workflow's client: its ID from the date, opening a day's triage once, its decisions, its state and its daily schedule."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

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
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from runtime.settings import Settings
from runtime.temporal import ensure_schedule
from starter.workflow_client import WorkflowClient
from workflows.calendar import is_working_day
from workflows.models import TRIAGE_ID_PATTERN, SlaPolicy, triage_id
from workflows.triage import DailyTriageWorkflow, TriageOpeningWorkflow
from workflows.triage_models import TriageOpening, TriageStart, TriageState

TRIAGE_ID = re.compile(rf"^{TRIAGE_ID_PATTERN}$")
SCHEDULE_ID = "daily-triage"
# The meeting's list is built at 07:00 London on weekdays; the opening workflow skips bank holidays.
OPENS_AT_HOUR = 7
WEEKDAYS = ScheduleRange(start=1, end=5)  # Temporal counts the days of the week from Sunday = 0


@dataclass(frozen=True)
class Opened:
    """A day's triage: its state, and whether this call opened it."""

    state: TriageState
    created: bool


class Triages(WorkflowClient[TriageState]):
    workflow = DailyTriageWorkflow
    field = "day"
    noun = "triage"
    closed = "day: the day's triage is finished: every listed referral is decided"
    id_pattern = TRIAGE_ID
    example_id = triage_id(date(2026, 11, 24))
    state_type = TriageState

    @staticmethod
    def workflow_id(day: date) -> str:
        """The triage held on `day`: its date alone names it."""
        return triage_id(day)

    async def open(self, day: date, policy: SlaPolicy, task_queue: str) -> Opened:
        """Open the day's triage (as the schedule does); a day already opened is found, never opened twice."""
        try:
            await self.client.start_workflow(
                DailyTriageWorkflow.run,
                TriageStart(day=day, policy=policy),
                id=self.workflow_id(day),
                task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
            created = True
        except WorkflowAlreadyStartedError:
            created = False
        return Opened(await self.state(self.workflow_id(day)), created)


def opening_problem(day: date, today: date, policy: SlaPolicy) -> str | None:
    """"day: reason" when the day's triage may not be opened by hand today: before its day, or on no working day."""
    if day > today:
        return "day: a triage cannot be opened before its day"
    if not is_working_day(day, frozenset(policy.bank_holidays)):
        return "day: not a working day: no triage is held"
    return None


def daily_triage_schedule(settings: Settings, policy: SlaPolicy) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            TriageOpeningWorkflow.run,
            TriageOpening(policy=policy),
            id=SCHEDULE_ID,
            task_queue=settings.task_queue,
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    day_of_week=[WEEKDAYS],
                    hour=[ScheduleRange(OPENS_AT_HOUR)],
                    minute=[ScheduleRange(0)],
                    second=[ScheduleRange(0)],
                    comment="07:00 on weekdays; the opening skips bank holidays",
                )
            ],
            time_zone_name=policy.timezone,
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(hours=12)),
    )


async def ensure_daily_triage_schedule(client: Client, settings: Settings, policy: SlaPolicy) -> str:
    """Create the schedule, or bring it up to date (its bank holidays above all); run at each deployment."""
    return await ensure_schedule(client, SCHEDULE_ID, daily_triage_schedule(settings, policy))
