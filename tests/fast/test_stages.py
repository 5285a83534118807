"""Each stage's transitions from submission to closure, and a start without the API's proof, with the activities in memory."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from runtime.temporal import data_converter
from starter.synthetic import (
    ALLOCATED_SOCIAL_WORKER,
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
from tests.helpers import STARTED, finished, screened_and_told, start_referral
from workflows.action import AgreedActionWorkflow
from workflows.authority import REJECTION_TYPE
from workflows.models import (
    ActionCompletion,
    CloseReason,
    ConferenceBooking,
    ConferenceOutcome,
    PoliceAttendance,
    Resubmission,
    ScreeningOutcome,
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
    await screened_and_told(fast_env.client, handle, screening(corrected, ScreeningOutcome.EARLY_HELP))
    result = await finished(fast_env, handle)
    assert result.close_reason is CloseReason.EARLY_HELP
    facts = [f for f in fakes.records.facts_of(handle.id) if f.stream == handle.id]  # the referral's, not its action's
    assert [f.seq for f in facts] == list(range(1, len(facts) + 1))  # every fact, once, in order
    moves = [f.payload["to_stage"] for f in facts if f.kind == "stage_changed"]
    # Early help closes once children's social care have been told (an agreed action of the screener's).
    assert moves == ["supervisor_review", "returned_to_officer", "supervisor_review", "screening", "actions", "closed"]


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
                          police_attended=True, rationale="Synthetic rationale.",
                          allocated_social_worker=ALLOCATED_SOCIAL_WORKER),
    )
    assert (outcome.child_protection_plan, outcome.stage) == (True, Stage.ACTIONS)
    action = fast_env.client.get_workflow_handle_for(AgreedActionWorkflow.run, f"{handle.id}.A1")
    await action.execute_update(AgreedActionWorkflow.complete, ActionCompletion(actor=HEALTH_PARTNER, note="Done."))
    result = await finished(fast_env, handle)
    assert result.close_reason is CloseReason.CHILD_PROTECTION_PLAN
    assert fakes.records.kinds_of(f"{handle.id}.A1")[-1] == "action_completed"


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
