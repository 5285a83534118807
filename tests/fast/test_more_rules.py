"""The rest of the rules: regrades, per-child screening, reports in lieu, closure, action escalations."""

from __future__ import annotations

import random
from datetime import timedelta

from starter.synthetic import SCREENER, SERGEANT, approval, screening, strategy_discussion, synthetic_vist
from tests.helpers import advance_to, finished, refused, start_referral, state_when
from workflows.action import AgreedActionWorkflow
from workflows.calendar import subtract_working_days
from workflows.models import (
    Agency,
    ChildDecision,
    ChildScreeningDecision,
    CloseReason,
    Closure,
    ConferenceBooking,
    EscalationAcknowledgement,
    PoliceAttendance,
    RiskGrade,
    RiskRegrade,
    ScreeningOutcome,
    Stage,
)
from workflows.referral import ReferralWorkflow


async def test_a_regrade_changes_the_grade_and_an_acknowledgement_names_an_escalation(fast_env, fast_queue, fakes, sla_policy):
    _, handle = await start_referral(fast_env.client, fast_queue, sla_policy, seed=30)
    await refused(handle, ReferralWorkflow.regrade_risk, RiskRegrade(actor=SERGEANT, risk=RiskGrade.MEDIUM, reason="x"),
                  "risk: the referral is already graded medium")
    await refused(handle, ReferralWorkflow.acknowledge_escalation,
                  EscalationAcknowledgement(actor=SERGEANT, escalation_id=f"{handle.id}.E9"), "escalation_id: no such escalation")

async def test_screening_must_decide_for_every_child_and_no_stranger(fast_env, fast_queue, fakes, sla_policy):
    submission = synthetic_vist(rng=random.Random("fast:two children"), children=2)
    _, handle = await start_referral(fast_env.client, fast_queue, sla_policy, submission=submission)
    await handle.execute_update(ReferralWorkflow.review, approval())
    partial = screening(submission, ScreeningOutcome.EARLY_HELP)
    partial.child_decisions = partial.child_decisions[:1]
    await refused(handle, ReferralWorkflow.screen, partial, "child_decisions: no decision recorded for child C2")
    stranger = screening(submission, ScreeningOutcome.EARLY_HELP)
    stranger.child_decisions.append(
        ChildScreeningDecision(child_id="C9", decision=ChildDecision.EARLY_HELP, rationale="Synthetic."))
    await refused(handle, ReferralWorkflow.screen, stranger, "child_decisions: child C9 is not in this referral")


async def test_a_report_in_lieu_is_an_action_due_two_working_days_before(fast_env, fast_queue, fakes, sla_policy):
    submission, handle = await start_referral(fast_env.client, fast_queue, sla_policy, seed=31)
    await handle.execute_update(ReferralWorkflow.review, approval())
    await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
    now = await fast_env.get_current_time()
    state = await handle.execute_update(
        ReferralWorkflow.record_strategy_discussion, strategy_discussion(now, section_47=True, actions=0))

    def in_lieu(conference_at) -> ConferenceBooking:
        return ConferenceBooking(actor=SCREENER, conference_at=conference_at, police_attendance=PoliceAttendance.REPORT_IN_LIEU,
                                 attendance_rationale="Synthetic rationale.", report_owner="DC Synthetic")

    await refused(handle, ReferralWorkflow.book_conference, in_lieu(now + timedelta(hours=1)),
                  "conference_at: too soon for a report in lieu, which is due 2 working days before the conference")
    conference_at = state.conference_due_by - timedelta(hours=1)
    (report,) = (await handle.execute_update(ReferralWorkflow.book_conference, in_lieu(conference_at))).actions
    assert report.owner.agency is Agency.POLICE
    assert report.deadline == subtract_working_days(
        conference_at, 2, frozenset(sla_policy.bank_holidays), sla_policy.timezone)


async def test_closing_resolves_open_escalations_and_an_action_escalation_is_acknowledged(
    fast_env, fast_queue, fakes, sla_policy
):
    submission, handle = await start_referral(fast_env.client, fast_queue, sla_policy, seed=32)
    await handle.execute_update(ReferralWorkflow.review, approval())
    await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
    held_at = await fast_env.get_current_time()
    state = await handle.execute_update(
        ReferralWorkflow.record_strategy_discussion, strategy_discussion(held_at, section_47=False, actions=1))
    (action,) = state.actions
    await advance_to(fast_env, action.deadline + timedelta(minutes=1))
    state = await state_when(handle, lambda s: len(s.actions[0].escalations) == 1)
    child = fast_env.client.get_workflow_handle_for(AgreedActionWorkflow.run, action.action_id)
    escalation_id = state.actions[0].escalations[0].escalation_id
    acknowledged = await child.execute_update(
        AgreedActionWorkflow.acknowledge_escalation, EscalationAcknowledgement(actor=SERGEANT, escalation_id=escalation_id))
    assert acknowledged.escalations[0].acknowledged_by == SERGEANT.id
    assert "escalation_acknowledged" in fakes.records.kinds_of(action.action_id)

    _, second = await start_referral(fast_env.client, fast_queue, sla_policy, seed=33)
    entered = (await second.query(ReferralWorkflow.state)).stage_entered_at
    await advance_to(fast_env, entered + timedelta(hours=24, minutes=1))
    await state_when(second, lambda s: len(s.escalations) == 1)
    closed = await second.execute_update(ReferralWorkflow.close, Closure(actor=SERGEANT, reason=CloseReason.WITHDRAWN))
    assert (closed.stage, closed.escalations[0].resolution) == (Stage.CLOSED, "referral_closed")
    await finished(fast_env, second)
    kinds = [f.kind for f in fakes.records.facts_of(second.id)]
    assert kinds.index("closed") < kinds.index("escalation_resolved")
