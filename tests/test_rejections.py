"""Every rejection names the field and the reason, and a rejected decision changes nothing."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest
from pydantic import ValidationError
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from starter.synthetic import (
    AUDITOR,
    HEALTH_PARTNER,
    OFFICER,
    SCREENER,
    SERGEANT,
    approval,
    screening,
    strategy_discussion,
    synthetic_vist,
)
from tests.helpers import eventually, refused, screened_and_told, start_referral
from workflows.action import AgreedActionWorkflow
from workflows.models import (
    ActionCompletion,
    Actor,
    Agency,
    ChildDecision,
    ChildScreeningDecision,
    Closure,
    ConferenceBooking,
    EscalationAcknowledgement,
    IncidentType,
    OverrideDecision,
    OverrideRequest,
    PoliceAttendance,
    RepeatReferralOverride,
    Resubmission,
    RiskGrade,
    RiskRegrade,
    Role,
    Screening,
    ScreeningOutcome,
    Section46,
    Stage,
    StrategyDiscussion,
    SupervisorReview,
    VistSubmission,
    CloseReason,
)
from workflows.referral import ReferralWorkflow


# --- the forms themselves ----------------------------------------------------------------


def form(**changes) -> dict:
    data = synthetic_vist(rng=random.Random(50)).model_dump(mode="json")
    data.update(changes)
    return data


def rejected_form(data: dict) -> str:
    with pytest.raises(ValidationError) as caught:
        VistSubmission.model_validate(data)
    return str(caught.value)


def test_domestic_abuse_needs_the_voice_of_the_child():
    data = form()
    data["children"][0]["voice_of_the_child"] = None
    message = rejected_form(data)
    assert "children[0].voice_of_the_child: required when the incident is domestic abuse" in message
    # Not required for other incident types.
    data["incident"]["type"] = IncidentType.NEGLECT.value
    VistSubmission.model_validate(data)


def test_incomplete_or_contradictory_forms_are_rejected():
    assert "children" in rejected_form(form(children=[]))
    data = form()
    data["incident"]["occurred_at"] = "2026-11-01"  # a date where a time is meant
    assert "incident.occurred_at\n  Value error, needs a time of day as well as the date" in rejected_form(data)
    data = form()
    data["children"][0]["date_of_birth"] = "2099-01-01"
    assert "children[0].date_of_birth: is after the incident" in rejected_form(data)
    data = form()
    data["children"][0]["date_of_birth"] = "1990-01-01"
    assert "children[0].date_of_birth: the child was 18 or over" in rejected_form(data)
    data = form(initial_risk="medium")
    data["section_46"] = {
        "used_at": data["incident"]["occurred_at"], "child_ids": ["C1"], "accommodation": "Synthetic foster placement",
    }
    assert "initial_risk: must be high when section 46" in rejected_form(data)
    data["initial_risk"] = "high"
    data["section_46"]["child_ids"] = ["C7"]
    assert "section_46.child_ids: names a child not in the referral" in rejected_form(data)
    data = form()
    data["children"].append(dict(data["children"][0]))
    assert "each child_id must be unique" in rejected_form(data)
    assert "officer_id" in rejected_form(form(officer_id=""))
    assert "unexpected" in rejected_form(form(nickname="x")).lower() or "extra" in rejected_form(form(nickname="x")).lower()


def test_no_personal_data_in_a_rejection_message():
    data = form()
    data["children"][0]["voice_of_the_child"] = None
    data["children"][0]["date_of_birth"] = "2099-01-01"
    message = rejected_form(data)
    child = data["children"][0]
    assert child["name"] not in message
    assert data["incident"]["location"] not in message


def test_decision_models_reject_missing_parts():
    held_at = synthetic_vist().incident.occurred_at
    with pytest.raises(ValidationError, match="reasons: required when the VIST is returned"):
        SupervisorReview(actor=SERGEANT, approved=False)
    discussion = strategy_discussion(held_at, section_47=False, actions=1).model_dump(mode="json")
    del discussion["agreed_actions"][0]["owner"]
    with pytest.raises(ValidationError, match=r"agreed_actions\[0\]\.owner: every agreed action needs an owner"):
        StrategyDiscussion.model_validate(discussion)
    discussion = strategy_discussion(held_at, section_47=False, actions=1).model_dump(mode="json")
    discussion["agreed_actions"][0]["deadline"] = None
    with pytest.raises(ValidationError, match=r"agreed_actions\[0\]\.deadline: every agreed action needs a deadline"):
        StrategyDiscussion.model_validate(discussion)
    with pytest.raises(ValidationError, match="attendance_rationale: required for a report in lieu"):
        ConferenceBooking(actor=SCREENER, conference_at=held_at, police_attendance=PoliceAttendance.REPORT_IN_LIEU)
    with pytest.raises(ValidationError, match="child_decisions: a child has more than one decision"):
        Screening(
            actor=SCREENER,
            risk=RiskGrade.MEDIUM,
            child_decisions=[
                ChildScreeningDecision(child_id="C1", decision=ChildDecision.EARLY_HELP, rationale="x"),
                ChildScreeningDecision(child_id="C1", decision=ChildDecision.EARLY_HELP, rationale="y"),
            ],
            outcome=ScreeningOutcome.EARLY_HELP,
            rationale="Synthetic.",
        )


# --- decisions the workflow refuses -------------------------------------------------------


async def test_wrong_role_and_wrong_stage_are_refused(time_env, time_queue, sla_policy):
    submission, handle = await start_referral(time_env.client, time_queue, sla_policy, seed=51)
    for actor in (OFFICER, SCREENER, AUDITOR, HEALTH_PARTNER, Actor(id="ADM-1", role=Role.ADMIN)):
        await refused(handle, ReferralWorkflow.review, SupervisorReview(actor=actor, approved=True), "actor.role")
    await refused(
        handle, ReferralWorkflow.screen, screening(submission, ScreeningOutcome.EARLY_HELP),
        "stage: the referral is at supervisor_review; cannot screen a referral now",
    )
    await refused(
        handle, ReferralWorkflow.resubmit, Resubmission(actor=OFFICER, submission=submission),
        "stage: the referral is at supervisor_review",
    )
    await refused(
        handle, ReferralWorkflow.regrade_risk, RiskRegrade(actor=SERGEANT, risk=RiskGrade.MEDIUM, reason="x"),
        "risk: the referral is already graded medium",
    )
    await refused(
        handle, ReferralWorkflow.regrade_risk, RiskRegrade(actor=AUDITOR, risk=RiskGrade.HIGH, reason="x"),
        "actor.role: a auditor may not regrade risk",
    )
    await refused(
        handle, ReferralWorkflow.acknowledge_escalation,
        EscalationAcknowledgement(actor=SERGEANT, escalation_id=f"{handle.id}.E9"),
        "escalation_id: no such escalation",
    )
    returned = await handle.execute_update(
        ReferralWorkflow.review, SupervisorReview(actor=SERGEANT, approved=False, reasons="Synthetic reasons.")
    )
    assert returned.stage is Stage.RETURNED_TO_OFFICER
    other_form = synthetic_vist(rng=random.Random(52))
    await refused(
        handle, ReferralWorkflow.resubmit, Resubmission(actor=OFFICER, submission=other_form),
        "submission.form_id: a resubmission must carry the returned form's ID",
    )


async def test_screening_must_decide_for_every_child(time_env, time_queue, sla_policy):
    submission = synthetic_vist(rng=random.Random(53), children=2)
    submission, handle = await start_referral(time_env.client, time_queue, sla_policy, submission=submission)
    await handle.execute_update(ReferralWorkflow.review, approval())
    partial = screening(submission, ScreeningOutcome.EARLY_HELP)
    partial.child_decisions = partial.child_decisions[:1]
    await refused(handle, ReferralWorkflow.screen, partial, "child_decisions: no decision recorded for child C2")
    stranger = screening(submission, ScreeningOutcome.EARLY_HELP)
    stranger.child_decisions[1].child_id = "C9"
    await refused(handle, ReferralWorkflow.screen, stranger, "child_decisions: no decision recorded for child C2")
    stranger.child_decisions.append(
        ChildScreeningDecision(child_id="C2", decision=ChildDecision.EARLY_HELP, rationale="Synthetic.")
    )
    await refused(handle, ReferralWorkflow.screen, stranger, "child_decisions: child C9 is not in this referral")
    await refused(
        handle, ReferralWorkflow.screen, screening(submission, ScreeningOutcome.EARLY_HELP).model_copy(
            update={"actor": SERGEANT}), "actor.role: a supervisor may not screen a referral",
    )


async def test_repeat_referrals_flag_the_child_and_guard_no_further_action(time_env, time_queue, sla_policy, pool):
    family, address = "Repeatley-000001", "1 Repeat Row, Testtown TT0001"
    handles = []
    for n in range(3):
        submission = synthetic_vist(rng=random.Random(60 + n), family=family, address=address)
        submission, handle = await start_referral(time_env.client, time_queue, sla_policy, submission=submission)
        handles.append((submission, handle))
        await eventually(
            lambda: pool.fetchval("SELECT count(*) FROM referral_children WHERE reference = $1", handle.id),
            lambda c: c == 1,
        )
    submission, third = handles[-1]
    state = await third.execute_update(ReferralWorkflow.review, approval())
    view = state.screening_view
    assert view.repeat_children == ["C1"]
    # Each earlier referral once, with both reasons it matched: the same child and the same address.
    assert sorted(p.reference for p in view.prior_referrals) == sorted(h.id for _, h in handles[:2])
    assert all(p.matched_on == ["address", "child"] and p.child_ids == ["C1"] for p in view.prior_referrals)

    no_override = "repeat_referral_override: a repeat referral cannot close with no further action without a supervisor's granted override"
    await refused(third, ReferralWorkflow.screen, screening(submission, ScreeningOutcome.NO_FURTHER_ACTION), no_override)
    # A screening naming its own supervisor (the retired field) does not carry the override.
    named = screening(submission, ScreeningOutcome.NO_FURTHER_ACTION)
    named.repeat_referral_override = RepeatReferralOverride(supervisor_id=SCREENER.id, rationale="Synthetic.")
    await refused(third, ReferralWorkflow.screen, named, no_override)
    # The screener asks, a supervisor grants under their own identity, then the screener closes it.
    await refused(third, ReferralWorkflow.decide_override, OverrideDecision(
        actor=SERGEANT, granted=True, rationale="Synthetic."), "granted: no override request is waiting")
    asked = await third.execute_update(ReferralWorkflow.request_override, OverrideRequest(
        actor=SCREENER, reason="Synthetic reason."))
    assert (asked.repeat_referral_override.requested_by, asked.repeat_referral_override.granted) == (SCREENER.id, None)
    await refused(third, ReferralWorkflow.screen, screening(submission, ScreeningOutcome.NO_FURTHER_ACTION), no_override)
    granted = await third.execute_update(ReferralWorkflow.decide_override, OverrideDecision(
        actor=SERGEANT, granted=True, rationale="Synthetic rationale."))
    assert (granted.repeat_referral_override.decided_by, granted.repeat_referral_override.granted) == (SERGEANT.id, True)
    closed = await screened_and_told(time_env.client, third, screening(submission, ScreeningOutcome.NO_FURTHER_ACTION))
    assert closed.close_reason is CloseReason.NO_FURTHER_ACTION
    assert [h.kind for h in closed.history][:3] == ["supervisor_reviewed", "repeat_override_requested",
                                                      "repeat_override_decided"]

    # The second referral saw only one earlier referral: below the threshold of three.
    second_submission, second = handles[1]
    second_state = await second.execute_update(ReferralWorkflow.review, approval())
    assert second_state.screening_view.repeat_children == []
    assert len([p for p in second_state.screening_view.prior_referrals if "child" in p.matched_on]) == 1


async def test_strategy_conference_and_action_rules(time_env, time_queue, sla_policy):
    submission, handle = await start_referral(time_env.client, time_queue, sla_policy, seed=54)
    await handle.execute_update(ReferralWorkflow.review, approval())
    await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
    now = await time_env.get_current_time()
    await refused(
        handle, ReferralWorkflow.record_strategy_discussion,
        strategy_discussion(now + timedelta(days=1), section_47=True),
        "held_at: a strategy discussion cannot be recorded before it is held",
    )
    early = strategy_discussion(now, section_47=True, actions=1)
    early.agreed_actions[0].deadline = now - timedelta(hours=1)
    await refused(
        handle, ReferralWorkflow.record_strategy_discussion, early,
        "agreed_actions[0].deadline: must be after the discussion was held",
    )
    state = await handle.execute_update(
        ReferralWorkflow.record_strategy_discussion, strategy_discussion(now, section_47=True, actions=1)
    )
    await refused(
        handle, ReferralWorkflow.book_conference,
        ConferenceBooking(actor=SCREENER, conference_at=state.conference_due_by + timedelta(days=1),
                          police_attendance=PoliceAttendance.ATTEND),
        "late_reason: required for a conference later than 15 working days",
    )
    await refused(
        handle, ReferralWorkflow.book_conference,
        ConferenceBooking(actor=SCREENER, conference_at=now - timedelta(hours=1), police_attendance=PoliceAttendance.ATTEND),
        "conference_at: must be in the future",
    )
    await refused(
        handle, ReferralWorkflow.book_conference,
        ConferenceBooking(actor=SCREENER, conference_at=now + timedelta(hours=1),
                          police_attendance=PoliceAttendance.REPORT_IN_LIEU,
                          attendance_rationale="Synthetic rationale.", report_owner="DC Synthetic"),
        "conference_at: too soon for a report in lieu, which is due 2 working days before the conference",
    )
    await refused(
        handle, ReferralWorkflow.close, Closure(actor=SCREENER, reason=CloseReason.WITHDRAWN),
        "reason: 1 agreed actions are still open",
    )
    late = await handle.execute_update(
        ReferralWorkflow.book_conference,
        ConferenceBooking(actor=SCREENER, conference_at=state.conference_due_by + timedelta(days=1),
                          police_attendance=PoliceAttendance.ATTEND, late_reason="Synthetic: family unavailable."),
    )
    assert late.conference_at == state.conference_due_by + timedelta(days=1)

    action = time_env.client.get_workflow_handle_for(AgreedActionWorkflow.run, f"{handle.id}.A1")  # owned by health
    police = Actor(id="PC-1002", role=Role.OFFICER, agency=Agency.POLICE)
    for actor, reason in [
        (police, "actor.agency: police staff may not complete an action owned by health"),
        (AUDITOR, "actor.role: a auditor may not complete an agreed action"),
    ]:
        with pytest.raises(WorkflowUpdateFailedError) as caught:
            await action.execute_update(AgreedActionWorkflow.complete, ActionCompletion(actor=actor, note="x"))
        assert reason in str(caught.value.cause)
    done = await action.execute_update(
        AgreedActionWorkflow.complete, ActionCompletion(actor=HEALTH_PARTNER, note="Done.")
    )
    # A completed action's workflow has finished: a second completion is refused by the server.
    with pytest.raises((WorkflowUpdateFailedError, RPCError)):
        await action.execute_update(AgreedActionWorkflow.complete, ActionCompletion(actor=HEALTH_PARTNER, note="Again."))
    with time_env.auto_time_skipping_disabled():
        assert (await action.result()).completion_note == done.completion_note == "Done."


def test_synthetic_children_are_children():
    child = synthetic_vist(children=3).children
    assert all((date.today() - c.date_of_birth).days < 18 * 365 for c in child)
