"""Each stage's deadline by the SLA policy, each rung of the ladder, regrades, agreed actions and recording failures, in memory."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from starter.synthetic import (
    INSPECTOR,
    OFFICER,
    QUORATE_ATTENDEES,
    SCREENER,
    SERGEANT,
    approval,
    screening,
    strategy_discussion,
    synthetic_vist,
)
from tests.fast.referrals import referral_at
from tests.helpers import LONDON, advance_to, finished, next_local, screened_and_told, start_referral, state_when
from workflows.action import AgreedActionWorkflow
from workflows.alerting import ADMINISTRATORS
from workflows.models import (
    ActionCompletion,
    ActionOwner,
    ActionReassignment,
    Agency,
    ConferenceBooking,
    EscalationAcknowledgement,
    Rank,
    RiskGrade,
    RiskRegrade,
    PoliceAttendance,
    ScreeningOutcome,
    Stage,
    StartReferral,
)
from workflows.referral import RECEIPT_WINDOW, ReferralWorkflow, submission_time


def about(measured: timedelta, expected: timedelta) -> bool:
    """Timers fire within a few milliseconds of their due time."""
    return abs(measured - expected) < timedelta(seconds=1)


@dataclass(frozen=True)
class Due:
    """When a stage falls due: so long after it started, by the clock or (`working_days`) by the local calendar."""

    stage: Stage
    after: timedelta | None
    risk: RiskGrade = RiskGrade.MEDIUM
    working_days: bool = False
    booked: bool = False  # a conference: once booked, its outcome is due the working day after it
    team: str = "MASH"

    def expected(self, started: datetime) -> datetime | None:
        if self.after is None:
            return None
        return started.astimezone(LONDON) + self.after if self.working_days else started + self.after


# Entered on a Friday at 15:00 whose Monday is a bank holiday of the policy passed in: working
# days skip the weekend and that Monday, hours do not.
STAGE_DEADLINES = {
    "supervisor review, standard: 24 hours": Due(Stage.SUPERVISOR_REVIEW, timedelta(hours=24), RiskGrade.STANDARD,
                                                team="Testtown"),
    "supervisor review, medium: 24 hours": Due(Stage.SUPERVISOR_REVIEW, timedelta(hours=24), team="Testtown"),
    "supervisor review, high: 2 hours": Due(Stage.SUPERVISOR_REVIEW, timedelta(hours=2), RiskGrade.HIGH, team="Testtown"),
    "resubmission: 24 hours": Due(Stage.RETURNED_TO_OFFICER, timedelta(hours=24), team="Testtown"),
    "screening: 1 working day, on Tuesday": Due(Stage.SCREENING, timedelta(days=4), working_days=True, team="CRU"),
    "screening, high: 4 hours, that evening": Due(Stage.SCREENING, timedelta(hours=4), RiskGrade.HIGH, team="CRU"),
    "strategy discussion: 3 working days, on Thursday": Due(Stage.STRATEGY_DISCUSSION, timedelta(days=6), working_days=True),
    "strategy discussion, high: 8 hours": Due(Stage.STRATEGY_DISCUSSION, timedelta(hours=8), RiskGrade.HIGH),
    "conference: 15 working days after the discussion": Due(Stage.CONFERENCE, timedelta(days=24), working_days=True),
    "conference booked: its outcome the working day after": Due(
        Stage.CONFERENCE, timedelta(days=4), working_days=True, booked=True),
    "agreed actions: none of the stage's own": Due(Stage.ACTIONS, None),
}


@pytest.mark.parametrize("name", STAGE_DEADLINES)
async def test_each_stage_falls_due_and_escalates_as_the_policy_says(name, fast_env, fast_queue, fakes, sla_policy):
    due = STAGE_DEADLINES[name]
    friday = await next_local(fast_env, weekday=4, hour=15)
    policy = sla_policy.model_copy(update={"bank_holidays": [friday.date() + timedelta(days=3)]})
    await advance_to(fast_env, friday)
    submission = synthetic_vist(rng=random.Random(f"fast:due:{name}"), risk=due.risk)
    _, handle = await referral_at(fast_env, fast_queue, policy, fakes, due.stage, f"due:{name}", submission=submission)
    state = await handle.query(ReferralWorkflow.state)
    started = state.stage_entered_at
    if due.stage is Stage.CONFERENCE:
        (held,) = [f for f in fakes.records.facts_of(handle.id) if f.kind == "strategy_discussion_held"]
        started = datetime.fromisoformat(held.payload["held_at"])
    if due.booked:
        started = friday + timedelta(minutes=2)
        state = await handle.execute_update(ReferralWorkflow.book_conference, ConferenceBooking(
            actor=SCREENER, conference_at=started, police_attendance=PoliceAttendance.ATTEND))
    expected = due.expected(started)
    assert state.deadline == expected
    if expected is None:
        await fast_env.sleep(timedelta(days=30))
        assert (await handle.query(ReferralWorkflow.state)).escalations == []
        return
    await advance_to(fast_env, expected - timedelta(minutes=1))
    assert (await handle.query(ReferralWorkflow.state)).escalations == []
    await advance_to(fast_env, expected + timedelta(minutes=1))
    (first,) = (await state_when(handle, lambda s: len(s.escalations) == 1)).escalations
    assert (first.subject, first.rung, first.due_at, first.addressed_to) == (
        due.stage.value, 0, expected, f"sergeant, {due.team}")


async def test_a_late_screening_climbs_every_rung_and_alerts_each(fast_env, fast_queue, fakes, sla_policy):
    friday = await next_local(fast_env, weekday=4, hour=15, avoiding=sla_policy.bank_holidays)
    await advance_to(fast_env, friday)
    submission, handle = await start_referral(fast_env.client, fast_queue, sla_policy, seed=10)
    state = await handle.execute_update(ReferralWorkflow.review, approval())
    deadline = state.deadline.astimezone(LONDON)
    assert (deadline.weekday(), deadline.hour) == (0, 15)  # one working day: Monday, 15:00

    await advance_to(fast_env, deadline - timedelta(minutes=30))
    assert (await handle.query(ReferralWorkflow.state)).escalations == []
    await advance_to(fast_env, deadline + timedelta(minutes=1))
    first = (await state_when(handle, lambda s: len(s.escalations) == 1)).escalations[0]
    assert (first.rung, first.rank, first.subject, first.due_at) == (0, Rank.SERGEANT, "screening", state.deadline)

    await advance_to(fast_env, first.raised_at + timedelta(hours=4, minutes=1))
    second = (await state_when(handle, lambda s: len(s.escalations) == 2)).escalations[1]
    assert second.rank is Rank.INSPECTOR and about(second.raised_at - first.raised_at, timedelta(hours=4))

    # An acknowledgement gives a fresh grace period before the next rung.
    await fast_env.sleep(timedelta(hours=2))
    acknowledged = await handle.execute_update(
        ReferralWorkflow.acknowledge_escalation,
        EscalationAcknowledgement(actor=INSPECTOR, escalation_id=second.escalation_id),
    )
    ack_at = acknowledged.escalations[1].acknowledged_at
    await advance_to(fast_env, second.raised_at + timedelta(hours=4, minutes=1))
    assert len((await handle.query(ReferralWorkflow.state)).escalations) == 2
    await advance_to(fast_env, ack_at + timedelta(hours=4, minutes=1))
    third = (await state_when(handle, lambda s: len(s.escalations) == 3)).escalations[2]
    assert third.rank is Rank.SUPERINTENDENT and about(third.raised_at - ack_at, timedelta(hours=4))
    await fast_env.sleep(timedelta(days=2))
    assert len((await handle.query(ReferralWorkflow.state)).escalations) == 3  # three rungs, no more

    await screened_and_told(fast_env.client, handle, screening(submission, ScreeningOutcome.EARLY_HELP))
    result = await finished(fast_env, handle)
    assert [a.escalation.rank for a in fakes.alerts.alerts_of(handle.id)] == [
        Rank.SERGEANT, Rank.INSPECTOR, Rank.SUPERINTENDENT]
    # Closure resolves what was never acknowledged, and records that it did.
    assert [(e.acknowledged_by, e.resolution) for e in result.escalations] == [
        (None, "referral_closed"), (INSPECTOR.id, None), (None, "referral_closed")]
    resolved = [f.payload["escalation_id"] for f in fakes.records.facts_of(handle.id) if f.kind == "escalation_resolved"]
    assert resolved == [first.escalation_id, third.escalation_id]


async def test_a_regrade_moves_the_running_deadline_both_ways(fast_env, fast_queue, fakes, sla_policy):
    _, handle = await start_referral(fast_env.client, fast_queue, sla_policy, seed=11)
    state = await handle.query(ReferralWorkflow.state)
    entered = state.stage_entered_at
    assert state.deadline - entered == timedelta(hours=24)  # medium risk: 24 hours for review
    await fast_env.sleep(timedelta(hours=1))
    regraded = await handle.execute_update(
        ReferralWorkflow.regrade_risk, RiskRegrade(actor=SERGEANT, risk=RiskGrade.HIGH, reason="Synthetic."))
    assert regraded.deadline - entered == timedelta(hours=2)  # high risk: 2 hours
    await advance_to(fast_env, entered + timedelta(hours=2, minutes=1))
    state = await state_when(handle, lambda s: len(s.escalations) == 1)
    assert state.escalations[0].due_at == entered + timedelta(hours=2)
    relaxed = await handle.execute_update(
        ReferralWorkflow.regrade_risk, RiskRegrade(actor=SERGEANT, risk=RiskGrade.MEDIUM, reason="Synthetic."))
    assert relaxed.deadline - entered == timedelta(hours=24)
    regrades = [f for f in fakes.records.facts_of(handle.id) if f.kind == "risk_regraded"]
    assert [(f.risk, f.actor.id) for f in regrades] == [(RiskGrade.HIGH, SERGEANT.id), (RiskGrade.MEDIUM, SERGEANT.id)]


async def test_an_agreed_action_is_reminded_escalated_reassigned_and_completed(fast_env, fast_queue, fakes, sla_policy):
    submission, handle = await start_referral(fast_env.client, fast_queue, sla_policy, seed=12)
    await handle.execute_update(ReferralWorkflow.review, approval())
    await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
    held_at = await fast_env.get_current_time()
    state = await handle.execute_update(
        ReferralWorkflow.record_strategy_discussion, strategy_discussion(held_at, section_47=False, actions=1))
    (action,) = state.actions
    stream = action.action_id
    await advance_to(fast_env, action.deadline - timedelta(hours=25))
    assert (await handle.query(ReferralWorkflow.state)).actions[0].reminded_at is None
    await advance_to(fast_env, action.deadline - timedelta(hours=23))
    await state_when(handle, lambda s: s.actions[0].reminded_at is not None)

    await advance_to(fast_env, action.deadline + timedelta(minutes=1))
    state = await state_when(handle, lambda s: len(s.actions[0].escalations) == 1)
    escalation = state.actions[0].escalations[0]
    assert (escalation.addressed_to, escalation.subject) == ("Health Lead Synthetic (health)", stream)
    assert [(a.escalation.escalation_id, a.agency) for a in fakes.alerts.alerts_of(handle.id)] == [
        (escalation.escalation_id, Agency.HEALTH)]

    # A new owner and deadline: a fresh reminder and ladder.
    new_owner = ActionOwner(agency=Agency.CHILDRENS_SOCIAL_CARE, owner="Social Worker Synthetic")
    new_deadline = await fast_env.get_current_time() + timedelta(days=3)
    child = fast_env.client.get_workflow_handle_for(AgreedActionWorkflow.run, stream)
    reassigned = await child.execute_update(
        AgreedActionWorkflow.reassign,
        ActionReassignment(actor=SCREENER, owner=new_owner, reason="Synthetic.", deadline=new_deadline))
    assert (reassigned.owner, reassigned.deadline, reassigned.reassignments, reassigned.reminded_at) == (
        new_owner, new_deadline, 1, None)
    await child.execute_update(AgreedActionWorkflow.complete, ActionCompletion(actor=SCREENER, note="Synthetic."))
    await finished(fast_env, handle)
    assert fakes.records.kinds_of(stream) == [
        "action_agreed", "action_reminded", "escalation_raised", "action_reassigned", "action_completed"]


async def test_an_inquorate_discussion_is_escalated(fast_env, fast_queue, fakes, sla_policy):
    submission, handle = await start_referral(fast_env.client, fast_queue, sla_policy, seed=13)
    await handle.execute_update(ReferralWorkflow.review, approval())
    await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
    no_health = [a for a in QUORATE_ATTENDEES if a.agency is not Agency.HEALTH]
    state = await handle.execute_update(
        ReferralWorkflow.record_strategy_discussion,
        strategy_discussion(await fast_env.get_current_time(), section_47=True, actions=0, attendees=no_health))
    assert state.strategy_discussion_inquorate is True
    assert [e.reason for e in state.escalations] == ["inquorate"]


async def test_a_named_role_missing_makes_the_discussion_inquorate_and_both_present_keep_it_quorate(
    fast_env, fast_queue, fakes, sla_policy
):
    held = []
    for seed, attendees in ((14, [a.model_copy(update={"named_role": None}) for a in QUORATE_ATTENDEES]),
                            (15, QUORATE_ATTENDEES)):
        submission, handle = await start_referral(fast_env.client, fast_queue, sla_policy, seed=seed)
        await handle.execute_update(ReferralWorkflow.review, approval())
        await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
        state = await handle.execute_update(
            ReferralWorkflow.record_strategy_discussion,
            strategy_discussion(await fast_env.get_current_time(), section_47=True, actions=0, attendees=attendees))
        fact = next(f for f in fakes.records.facts_of(handle.id) if f.kind == "strategy_discussion_held")
        held.append((state.strategy_discussion_inquorate, [e.reason for e in state.escalations],
                     fact.payload["missing_roles"]))
    assert held == [(True, ["inquorate"], ["allocated_social_worker", "investigating_officer"]), (False, [], [])]


async def test_a_quarantined_fact_raises_the_recording_failed_escalation(fast_env, fast_queue, fakes, sla_policy):
    fakes.records.refused_kinds.add("supervisor_reviewed")
    submission = synthetic_vist(rng=random.Random("fast:quarantine"))
    _, handle = await start_referral(fast_env.client, fast_queue, sla_policy, submission=submission)
    await handle.execute_update(ReferralWorkflow.review, approval())
    state = await state_when(handle, lambda s: any(e.reason == "recording_failed" for e in s.escalations))
    (failed,) = [e for e in state.escalations if e.reason == "recording_failed"]
    (quarantined,) = [f for f in fakes.records.quarantined if f.reference == handle.id]
    assert quarantined.kind == "supervisor_reviewed"
    assert (failed.addressed_to, failed.subject) == (ADMINISTRATORS, f"{handle.id}#{quarantined.seq}")
    await screened_and_told(fast_env.client, handle, screening(submission, ScreeningOutcome.EARLY_HELP))
    result = await finished(fast_env, handle)
    # The outbox went on past the refused fact; the administrators' escalation stays theirs after closure.
    assert "closed" in [f.kind for f in fakes.records.facts_of(handle.id)]
    assert next(e for e in result.escalations if e.reason == "recording_failed").resolution is None
    assert failed.escalation_id in [a.escalation.escalation_id for a in fakes.alerts.alerts_of(handle.id)]


@pytest.mark.parametrize(
    ("received", "clock_from"),
    [
        (None, "started"),  # a start without a receipt (the demo's, the archive's): Temporal's acceptance
        (timedelta(seconds=-3), "received"),  # a burst: the form waited 3 s for Temporal to accept its start
        (timedelta(minutes=-10), "received"),  # the API retried its start for ten minutes: still the receipt
        (timedelta(minutes=-10, seconds=-1), "started"),  # further back than any retry: a clock that is off
        (timedelta(seconds=2), "started"),  # the API's clock ahead of Temporal's: never after the acceptance
    ],
)
def test_the_sla_clock_runs_from_the_forms_receipt_within_its_window(sla_policy, received, clock_from):
    started_at = datetime(2026, 11, 20, 16, 59, 58, tzinfo=LONDON)
    start = StartReferral(
        submission=synthetic_vist(rng=random.Random("receipt")), submitted_by=OFFICER, sla_policy=sla_policy,
        received_at=None if received is None else started_at + received,
    )
    expected = started_at if clock_from == "started" else started_at + received
    assert submission_time(start, started_at) == expected
    assert RECEIPT_WINDOW == timedelta(minutes=10)
