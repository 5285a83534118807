"""Each stage's transitions and every validator's refusal, with the activities in memory."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from runtime.temporal import data_converter
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
from tests.conftest import TEST_KEYRING
from tests.helpers import STARTED, finished, refused, start_referral
from workflows.action import AgreedActionWorkflow
from workflows.authority import REJECTION_TYPE
from workflows.models import (
    ActionCompletion,
    CloseReason,
    ConferenceBooking,
    ConferenceOutcome,
    OverrideDecision,
    OverrideRequest,
    PoliceAttendance,
    PriorReferral,
    Resubmission,
    IncidentType,
    ScreeningOutcome,
    ScreeningView,
    Stage,
    StartReferral,
    SupervisorReview,
    referral_reference,
)
from workflows.referral import ReferralWorkflow


async def test_review_return_resubmit_screen_close(fast_env, fast_queue, fakes, sla_policy):
    submission, handle = await start_referral(fast_env.client, fast_queue, sla_policy, seed=1)
    returned = await handle.execute_update(
        ReferralWorkflow.review, SupervisorReview(actor=SERGEANT, approved=False, reasons="Synthetic reasons.")
    )
    assert returned.stage is Stage.RETURNED_TO_OFFICER
    corrected = submission.model_copy(deep=True)
    corrected.children[0].voice_of_the_child = "Synthetic fuller account."
    resubmitted = await handle.execute_update(ReferralWorkflow.resubmit, Resubmission(actor=OFFICER, submission=corrected))
    assert (resubmitted.stage, resubmitted.submission_versions) == (Stage.SUPERVISOR_REVIEW, 2)
    screening_stage = await handle.execute_update(ReferralWorkflow.review, approval())
    assert screening_stage.stage is Stage.SCREENING
    assert [q.reference for q in fakes.records.prior_queries if q.reference == handle.id] == [handle.id]
    await handle.execute_update(ReferralWorkflow.screen, screening(corrected, ScreeningOutcome.EARLY_HELP))
    result = await finished(fast_env, handle)
    assert result.close_reason is CloseReason.EARLY_HELP
    facts = fakes.records.facts_of(handle.id)
    assert [f.seq for f in facts] == list(range(1, len(facts) + 1))  # every fact, once, in order
    moves = [f.payload["to_stage"] for f in facts if f.kind == "stage_changed"]
    assert moves == ["supervisor_review", "returned_to_officer", "supervisor_review", "screening", "closed"]


async def test_section_47_conference_then_actions_then_closure(fast_env, fast_queue, fakes, sla_policy):
    submission, handle = await start_referral(fast_env.client, fast_queue, sla_policy, seed=2)
    await handle.execute_update(ReferralWorkflow.review, approval())
    await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
    held_at = await fast_env.get_current_time()
    state = await handle.execute_update(
        ReferralWorkflow.record_strategy_discussion, strategy_discussion(held_at, section_47=True, actions=1)
    )
    assert state.stage is Stage.CONFERENCE and state.conference_due_by is not None
    booked = await handle.execute_update(
        ReferralWorkflow.book_conference,
        ConferenceBooking(actor=SCREENER, conference_at=held_at + timedelta(days=7), police_attendance=PoliceAttendance.ATTEND),
    )
    assert booked.deadline > booked.conference_at  # the outcome is due after the conference
    await fast_env.sleep(timedelta(days=7))
    outcome = await handle.execute_update(
        ReferralWorkflow.record_conference_outcome,
        ConferenceOutcome(actor=SCREENER, held_at=await fast_env.get_current_time(), child_protection_plan=True,
                          police_attended=True, rationale="Synthetic rationale."),
    )
    assert (outcome.child_protection_plan, outcome.stage) == (True, Stage.ACTIONS)
    action = fast_env.client.get_workflow_handle_for(AgreedActionWorkflow.run, f"{handle.id}.A1")
    await action.execute_update(AgreedActionWorkflow.complete, ActionCompletion(actor=HEALTH_PARTNER, note="Done."))
    result = await finished(fast_env, handle)
    assert result.close_reason is CloseReason.CHILD_PROTECTION_PLAN
    assert fakes.records.kinds_of(f"{handle.id}.A1")[-1] == "action_completed"


async def test_wrong_role_wrong_stage_and_date_order_are_refused(fast_env, fast_queue, fakes, sla_policy):
    submission, handle = await start_referral(fast_env.client, fast_queue, sla_policy, seed=3)
    for actor in (OFFICER, SCREENER, AUDITOR, HEALTH_PARTNER):
        await refused(handle, ReferralWorkflow.review, SupervisorReview(actor=actor, approved=True), "actor.role")
    await refused(handle, ReferralWorkflow.screen, screening(submission, ScreeningOutcome.EARLY_HELP),
                  "stage: the referral is at supervisor_review; cannot screen a referral now")
    await handle.execute_update(ReferralWorkflow.review, approval())
    await refused(handle, ReferralWorkflow.screen,
                  screening(submission, ScreeningOutcome.EARLY_HELP).model_copy(update={"actor": SERGEANT}),
                  "actor.role: a supervisor may not screen a referral")
    await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
    now = await fast_env.get_current_time()
    await refused(handle, ReferralWorkflow.record_strategy_discussion,
                  strategy_discussion(now + timedelta(days=1), section_47=True),
                  "held_at: a strategy discussion cannot be recorded before it is held")
    early = strategy_discussion(now, section_47=True, actions=1)
    early.agreed_actions[0].deadline = now - timedelta(hours=1)
    await refused(handle, ReferralWorkflow.record_strategy_discussion, early,
                  "agreed_actions[0].deadline: must be after the discussion was held")
    state = await handle.execute_update(
        ReferralWorkflow.record_strategy_discussion, strategy_discussion(now, section_47=True, actions=0))
    await refused(handle, ReferralWorkflow.book_conference,
                  ConferenceBooking(actor=SCREENER, conference_at=now - timedelta(hours=1),
                                    police_attendance=PoliceAttendance.ATTEND),
                  "conference_at: must be in the future")
    await refused(handle, ReferralWorkflow.book_conference,
                  ConferenceBooking(actor=SCREENER, conference_at=state.conference_due_by + timedelta(days=1),
                                    police_attendance=PoliceAttendance.ATTEND),
                  "late_reason: required for a conference later than 15 working days")
    # Nothing refused reached the records: the facts end with the discussion.
    assert fakes.records.facts_of(handle.id)[-1].kind != "conference_booked"


async def test_the_submitter_may_not_review_their_own_vist(fast_env, fast_queue, fakes, sla_policy):
    submission = synthetic_vist(rng=random.Random("fast:own review")).model_copy(update={"officer_id": SERGEANT.id})
    handle = await fast_env.client.start_workflow(
        ReferralWorkflow.run, StartReferral(submission=submission, submitted_by=SERGEANT, sla_policy=sla_policy),
        id=referral_reference(submission.form_id), task_queue=fast_queue,
    )
    STARTED.append(handle)
    await refused(handle, ReferralWorkflow.review, approval(),
                  f"actor.id: {SERGEANT.id} did submit or resubmit the VIST and so may not review the VIST")


async def test_a_repeat_referral_needs_a_granted_override_to_close(fast_env, fast_queue, fakes, sla_policy):
    submission = synthetic_vist(rng=random.Random("fast:repeat"))
    reference = referral_reference(submission.form_id)
    fakes.records.screening_views[reference] = ScreeningView(
        prior_referrals=[PriorReferral(reference="REF-EARLIER", submitted_at=datetime(2026, 1, 5, tzinfo=timezone.utc),
                                       incident_type=IncidentType.DOMESTIC_ABUSE, matched_on=["child"], child_ids=["C1"])],
        repeat_children=["C1"],
    )
    _, handle = await start_referral(fast_env.client, fast_queue, sla_policy, submission=submission)
    state = await handle.execute_update(ReferralWorkflow.review, approval())
    assert state.screening_view.repeat_children == ["C1"]
    no_override = "repeat_referral_override: a repeat referral cannot close with no further action"
    await refused(handle, ReferralWorkflow.screen, screening(submission, ScreeningOutcome.NO_FURTHER_ACTION), no_override)
    await refused(handle, ReferralWorkflow.decide_override,
                  OverrideDecision(actor=SERGEANT, granted=True, rationale="Synthetic."),
                  "granted: no override request is waiting")
    await handle.execute_update(ReferralWorkflow.request_override, OverrideRequest(actor=SCREENER, reason="Synthetic."))
    await refused(handle, ReferralWorkflow.screen, screening(submission, ScreeningOutcome.NO_FURTHER_ACTION), no_override)
    await handle.execute_update(ReferralWorkflow.decide_override,
                                OverrideDecision(actor=SERGEANT, granted=True, rationale="Synthetic."))
    closed = await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.NO_FURTHER_ACTION))
    assert closed.close_reason is CloseReason.NO_FURTHER_ACTION


async def test_a_start_without_the_apis_proof_fails_and_records_nothing(fast_env, fast_queue, fakes, sla_policy):
    outsider = Client(fast_env.client.service_client, namespace=fast_env.client.namespace,
                      data_converter=data_converter(keyring=TEST_KEYRING))
    submission = synthetic_vist(rng=random.Random("fast:unsigned"))
    started = await outsider.start_workflow(
        ReferralWorkflow.run, StartReferral(submission=submission, submitted_by=OFFICER, sla_policy=sla_policy),
        id=referral_reference(submission.form_id), task_queue=fast_queue,
    )
    handle = fast_env.client.get_workflow_handle(started.id)
    STARTED.append(handle)
    with pytest.raises(WorkflowFailureError) as failed:
        await finished(fast_env, handle)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == REJECTION_TYPE and cause.message.startswith("proof: ")
    assert [c.workflow_id for c in fakes.proofs.checks].count(started.id) == 1
    assert fakes.records.facts_of(started.id) == []
    # A decision sent without the proof is refused too.
    _, signed = await start_referral(fast_env.client, fast_queue, sla_policy, seed=4)
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await outsider.get_workflow_handle(signed.id).execute_update(ReferralWorkflow.review, approval())
    assert "carries no proof" in str(caught.value.cause)
