"""DailyTriageWorkflow: one working day's triage of standard- and medium-risk domestic abuse with children present.

The day's list is built from the read model by an activity: every such referral received
since the last working day began (a Monday's list takes the weekend's too), each with its
family's history, so no incident is discussed in isolation. The meeting records a decision
on each listed referral, with its rationale; a referral still undecided when the decision is
due (by default the end of the triage day, bank holidays skipped) climbs the escalation
ladder by itself. `TriageOpeningWorkflow` is what the daily Temporal Schedule starts: on a
working day it opens that day's triage, whose workflow ID is the date alone.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.triage import TriageRecords
    from workflows.alerting import AlertDispatch
    from workflows.authority import TRIAGE_DECIDERS, reject, require
    from workflows.calendar import add_working_days, is_working_day, local_date, previous_working_day, start_of_day
    from workflows.escalation import EscalationBook, EscalationLadder
    from workflows.facts import FactPayload, RecordedEvent, TriageDecided, TriageListed
    from workflows.models import (
        SYSTEM_ACTOR,
        Actor,
        Escalation,
        EscalationAcknowledgement,
        RiskGrade,
        triage_id,
    )
    from workflows.recording import Outbox
    from workflows.triage_models import (
        TriageDecision,
        TriageItem,
        TriageListQuery,
        TriageOpened,
        TriageOpening,
        TriageStart,
        TriageState,
    )

LIST_TIMEOUT = timedelta(minutes=2)
# Who is alerted when a listed referral is late: the MASH's chain of command.
TRIAGE_TEAM = "MASH"
# The late step an escalation names.
TRIAGE_SUBJECT = "triage"


@workflow.defn
class DailyTriageWorkflow:
    @workflow.init
    def __init__(self, start: TriageStart) -> None:
        self._id = workflow.info().workflow_id
        self._day = start.day
        self._policy = start.policy
        holidays = frozenset(start.policy.bank_holidays)
        tz = start.policy.timezone
        self._working_day = is_working_day(start.day, holidays)
        # Received since the last working day began, up to the start of the triage day.
        self._since = start_of_day(previous_working_day(start.day, holidays), tz)
        self._until = start_of_day(start.day, tz)
        self._due_at = add_working_days(self._until, start.policy.triage_decision_working_days, holidays, tz)
        self._outbox = Outbox(stream=self._id, reference=self._id, on_quarantined=self._recording_failed)
        self._alerts = AlertDispatch(self._outbox)
        self._listed = False
        self._items: dict[str, TriageItem] = {}
        self._ladders: dict[str, EscalationLadder] = {}
        # Each escalation is about one listed referral: recorded under its reference.
        self._escalations = EscalationBook(
            self._id, self._alerts, record=lambda payload, actor, escalation: self._fact(payload, actor, escalation.reference)
        )

    @workflow.run
    async def run(self, start: TriageStart) -> TriageState:
        if not self._working_day:
            return self.state()
        writer = asyncio.create_task(self._outbox.drain_forever())
        listing = await workflow.execute_activity_method(
            TriageRecords.triage_list,
            TriageListQuery(
                since=self._since, until=self._until, history_window_days=self._policy.repeat_referral_window_days
            ),
            start_to_close_timeout=LIST_TIMEOUT,
        )
        for candidate in listing.candidates:
            item = TriageItem(**candidate.model_dump(), listed_at=workflow.now(), due_at=self._due_at)
            self._items[item.reference] = item
            self._ladders[item.reference] = EscalationLadder(self._policy)
            self._fact(
                TriageListed(day=self._day, due_at=item.due_at, prior_referrals=len(item.history.prior_referrals)),
                SYSTEM_ACTOR,
                item.reference,
                item.risk,
            )
        self._listed = True
        await asyncio.gather(*(self._watch(reference) for reference in self._items))
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._alerts.delivered()
        await self._outbox.settled()
        writer.cancel()
        return self.state()

    async def _watch(self, reference: str) -> None:
        item = self._items[reference]
        await self._ladders[reference].watch(
            done=lambda: item.decided,
            deadline=lambda: item.due_at,
            raise_rung=lambda rung, due_at: self._raise_overdue(reference, rung, due_at),
        )

    # --- queries ---------------------------------------------------------------------

    @workflow.query
    def state(self) -> TriageState:
        return TriageState(
            triage_id=self._id,
            day=self._day,
            working_day=self._working_day,
            listed=self._listed,
            received_since=self._since,
            received_until=self._until,
            items=list(self._items.values()),
            escalations=list(self._escalations.escalations),
        )

    # --- the meeting's decisions -----------------------------------------------------

    @workflow.update
    async def decide(self, decision: TriageDecision) -> TriageState:
        item = self._items[decision.reference]
        item.outcome = decision.outcome
        item.decided_by = decision.actor.id
        item.decided_at = workflow.now()
        self._fact(TriageDecided(day=self._day, outcome=decision.outcome, rationale=decision.rationale),
                   decision.actor, item.reference, item.risk)
        # A referral triaged late needs no more acknowledgements: its open escalations are settled by the decision.
        self._escalations.resolve(self._escalations.awaiting_acknowledgement(item.reference), "triaged")
        self._ladders[item.reference].nudge()
        return await self._recorded_state()

    @decide.validator
    def _check_decide(self, decision: TriageDecision) -> None:
        require(decision.actor, TRIAGE_DECIDERS, "record a triage decision")
        if not self._listed:
            raise reject("reference: the day's triage list is still being built; try again shortly")
        item = self._items.get(decision.reference)
        if item is None:
            raise reject("reference: not on this day's triage list")
        if item.outcome is not None:
            raise reject(f"reference: already triaged ({item.outcome.value})")

    @workflow.update
    async def acknowledge_escalation(self, ack: EscalationAcknowledgement) -> TriageState:
        escalation = self._escalations.acknowledge(ack, "triage")
        ladder = self._ladders.get(escalation.reference)
        if ladder is not None:
            ladder.nudge()
        return await self._recorded_state()

    @acknowledge_escalation.validator
    def _check_acknowledge(self, ack: EscalationAcknowledgement) -> None:
        self._escalations.check_acknowledgement(ack, "triage")

    # --- the mechanics -------------------------------------------------------------

    def _fact(self, payload: FactPayload, actor: Actor, reference: str, risk: RiskGrade | None = None) -> None:
        """Each fact is about one listed referral: recorded under its reference, on this triage's stream."""
        self._outbox.add(payload, actor, risk=risk, reference=reference)

    def _raise_overdue(self, reference: str, rung: int, due_at: datetime) -> Escalation:
        rank = self._ladders[reference].rank(rung)
        return self._escalations.raise_escalation(
            reference=reference,
            subject=TRIAGE_SUBJECT,
            rung=rung,
            rank=rank,
            addressed_to=f"{rank.value}, {TRIAGE_TEAM}",
            due_at=due_at,
            policy=self._policy,
            team=TRIAGE_TEAM,
        )

    def _recording_failed(self, event: RecordedEvent) -> None:
        self._escalations.recording_failed(event, self._policy)

    async def _recorded_state(self) -> TriageState:
        await self._outbox.recorded()
        return self.state()


@workflow.defn
class TriageOpeningWorkflow:
    """Started by the daily schedule: opens today's triage (London date) when today is a working day."""

    @workflow.run
    async def run(self, opening: TriageOpening) -> TriageOpened:
        today = local_date(workflow.now(), opening.policy.timezone)
        if not is_working_day(today, frozenset(opening.policy.bank_holidays)):
            return TriageOpened(reason=f"{today.isoformat()} is not a working day")
        triage = triage_id(today)
        try:
            await workflow.start_child_workflow(
                DailyTriageWorkflow.run,
                TriageStart(day=today, policy=opening.policy),
                id=triage,
                parent_close_policy=ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            return TriageOpened(triage_id=triage, reason="already opened")
        return TriageOpened(triage_id=triage)


if __name__ == "__main__":
    raise SystemExit("DailyTriageWorkflow runs inside a worker: start one with `python worker.py`")
