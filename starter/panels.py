"""The panel sitting workflow's client: its ID from the panel and date, a sitting opened once, its decisions (a grade forwarded to the live case), and each panel's cadence as a Temporal Schedule."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from runtime.temporal import ensure_schedule
from starter.workflow_client import WorkflowClient
from workflows.calendar import local_moment
from workflows.missing import MissingEpisodeWorkflow
from workflows.missing_models import EpisodeRegrade
from workflows.models import SITTING_ID_PATTERN, Decision, MissingGrade, RiskGrade, RiskRegrade, SlaPolicy, panel_sitting_id
from workflows.panel import PanelOpeningWorkflow, PanelSittingWorkflow
from workflows.panel_models import (
    Cadence,
    ForwardedRegrade,
    Panel,
    PanelCaseOutcome,
    PanelOpening,
    SittingStart,
    SittingState,
    is_episode,
)
from workflows.referral import ReferralWorkflow

SITTING_ID = re.compile(rf"^{SITTING_ID_PATTERN}$")
SCHEDULE_PREFIX = "panel-"
# The agenda of a sitting is built at 07:00 London, `agenda_days_before` ahead of the sitting.
AGENDA_AT = time(7, 0)
FORTNIGHT = timedelta(days=14)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class PanelSittings(WorkflowClient[SittingState]):
    workflow = PanelSittingWorkflow
    field = "sitting_id"
    noun = "panel sitting"
    closed = "sitting_id: the sitting is over: its minutes are made and its actions done"
    id_pattern = SITTING_ID
    example_id = panel_sitting_id("CSENORTH", date(2026, 12, 1))
    state_type = SittingState

    @staticmethod
    def workflow_id(panel_id: str, day: date) -> str:
        return panel_sitting_id(panel_id, day)

    async def open(self, panel: Panel, day: date, policy: SlaPolicy, task_queue: str) -> tuple[SittingState, bool]:
        """Open the panel's sitting on `day` (as its schedule does); one already open is found, never opened twice."""
        sitting_id = self.workflow_id(panel.panel_id, day)
        try:
            await self.client.start_workflow(
                PanelSittingWorkflow.run,
                SittingStart(panel=panel, day=day, policy=policy),
                id=sitting_id,
                task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
            created = True
        except WorkflowAlreadyStartedError:
            created = False
        return await self.state(sitting_id), created

    async def minutes(self, sitting_id: str) -> Any:
        with self.reaching(sitting_id):
            return await self.client.get_workflow_handle(sitting_id).query(PanelSittingWorkflow.minutes)

    async def decide(self, workflow_id: str, decision: Decision, key: str | None = None) -> SittingState:
        """A case's outcome carries its grade on, as the live case's own regrade (signed with it by the API)."""
        if isinstance(decision, PanelCaseOutcome) and decision.grade is not None and decision.forwarded is None:
            decision = decision.model_copy(update={"forwarded": forwarded_regrade(workflow_id, decision)})
        return await super().decide(workflow_id, decision, key)


def forwarded_regrade(sitting_id: str, outcome: PanelCaseOutcome) -> ForwardedRegrade:
    """The live case's regrade for the panel's grade; one update ID per sitting and case, so it is applied once."""
    assert outcome.grade is not None
    reason = f"graded at panel sitting {sitting_id}"
    regrade: RiskRegrade | EpisodeRegrade
    if is_episode(outcome.case_id):
        regrade, update = EpisodeRegrade(actor=outcome.actor, grade=MissingGrade(outcome.grade.value), reason=reason), MissingEpisodeWorkflow.regrade
    else:
        regrade, update = RiskRegrade(actor=outcome.actor, risk=RiskGrade(outcome.grade.value), reason=reason), ReferralWorkflow.regrade_risk
    return ForwardedRegrade(
        workflow_id=outcome.case_id,
        update=update.__name__,
        update_id=f"{sitting_id}/{outcome.case_id}/grade",
        decision=regrade,
    )


# --- each panel's cadence: a Temporal Schedule ---------------------------------------------------


def schedule_id(panel_id: str) -> str:
    return f"{SCHEDULE_PREFIX}{panel_id}"


def agenda_day(panel: Panel) -> date:
    """The day the first sitting's agenda is built: the cadence of agenda days runs on from it."""
    return panel.first_sitting - timedelta(days=panel.agenda_days_before)


def cadence_spec(panel: Panel, policy: SlaPolicy) -> ScheduleSpec:
    """Monthly on the agenda day's day of the month, or every fourteen days from it; at 07:00 London."""
    first = agenda_day(panel)
    if panel.cadence is Cadence.MONTHLY:
        if first.day > 28:
            raise ValueError("first_sitting: a monthly panel's agenda day must fall on the 1st to the 28th of a month")
        return ScheduleSpec(
            calendars=[ScheduleCalendarSpec(
                day_of_month=[ScheduleRange(first.day)],
                hour=[ScheduleRange(AGENDA_AT.hour)],
                minute=[ScheduleRange(AGENDA_AT.minute)],
                second=[ScheduleRange(0)],
                comment=f"monthly: the agenda {panel.agenda_days_before} days before each sitting",
            )],
            time_zone_name=policy.timezone,
        )
    offset = (local_moment(first, AGENDA_AT, policy.timezone) - EPOCH) % FORTNIGHT
    return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=FORTNIGHT, offset=offset)])


def panel_schedule(panel: Panel, policy: SlaPolicy, task_queue: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            PanelOpeningWorkflow.run,
            PanelOpening(panel=panel, policy=policy),
            id=schedule_id(panel.panel_id),
            task_queue=task_queue,
        ),
        spec=cadence_spec(panel, policy),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(hours=12)),
    )


async def ensure_panel_schedule(client: Client, panel: Panel, policy: SlaPolicy, task_queue: str) -> str:
    """Create the panel's schedule, or bring it up to date (its members, criteria, bank holidays)."""
    return await ensure_schedule(client, schedule_id(panel.panel_id), panel_schedule(panel, policy, task_queue))


async def panel_of(client: Client, panel_id: str) -> tuple[Panel, list[datetime]] | None:
    """The panel as its schedule holds it with its next agenda times, or None when it has no cadence."""
    try:
        described = await client.get_schedule_handle(schedule_id(panel_id)).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    action = described.schedule.action
    if not isinstance(action, ScheduleActionStartWorkflow) or action.workflow != PanelOpeningWorkflow.__name__:
        return None
    (opening,) = await client.data_converter.decode(action.args, [PanelOpening])
    return opening.panel, list(described.info.next_action_times)


async def panels(client: Client) -> list[tuple[Panel, list[datetime]]]:
    """Every panel whose cadence is scheduled, with the next times its agendas are built."""
    found = []
    async for listed in await client.list_schedules():
        if listed.id.startswith(SCHEDULE_PREFIX):
            panel = await panel_of(client, listed.id.removeprefix(SCHEDULE_PREFIX))
            if panel is not None:
                found.append(panel)
    return sorted(found, key=lambda pair: pair[0].panel_id)
