"""The workflows record what the fact registry declares: typed payloads, the decisions it names, and a state the audit's fold rebuilds."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from audit.as_of import state_from_facts
from audit.history import decode_referral, fetch_referral
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
from tests.helpers import eventually, finished, in_flight, screened_and_told, start_referral
from workflows.action import AgreedActionWorkflow
from workflows.facts import FACTS, FactKind
from workflows.models import (
    ActionCompletion,
    ConferenceBooking,
    ConferenceOutcome,
    PoliceAttendance,
    ReferralState,
    Resubmission,
    Stage,
    SupervisorReview,
    IncidentType,
    OverrideDecision,
    OverrideRequest,
    PriorReferral,
    ScreeningOutcome,
    ScreeningView,
    referral_reference,
)
from workflows.referral import ReferralWorkflow


async def test_the_decision_history_is_the_registrys_decisions_and_as_of_folds_it_alike(
    fast_env, fast_queue, fakes, sla_policy
):
    # A repeat referral closed under a supervisor's override: the override's two decisions are in the history.
    submission = synthetic_vist(rng=random.Random("fast:registry"))
    reference = referral_reference(submission.form_id)
    fakes.records.screening_views[reference] = ScreeningView(
        prior_referrals=[PriorReferral(reference="REF-EARLIER", submitted_at=datetime(2026, 1, 5, tzinfo=timezone.utc),
                                       incident_type=IncidentType.NEGLECT, matched_on=["child"], child_ids=["C1"])],
        repeat_children=["C1"],
    )
    _, handle = await start_referral(fast_env.client, fast_queue, sla_policy, submission=submission)
    await handle.execute_update(ReferralWorkflow.review, approval())
    await handle.execute_update(ReferralWorkflow.request_override, OverrideRequest(actor=SCREENER, reason="Synthetic."))
    await handle.execute_update(ReferralWorkflow.decide_override,
                                OverrideDecision(actor=SERGEANT, granted=True, rationale="Synthetic."))
    await screened_and_told(fast_env.client, handle, screening(submission, ScreeningOutcome.NO_FURTHER_ACTION))
    final = await finished(fast_env, handle)

    facts = fakes.records.facts_of(handle.id)
    assert [(h.seq, h.kind) for h in final.history] == [(f.seq, f.kind) for f in facts if FACTS[f.kind].decision]
    assert [h.kind for h in final.history] == [
        FactKind.SUPERVISOR_REVIEWED, FactKind.REPEAT_OVERRIDE_REQUESTED, FactKind.REPEAT_OVERRIDE_DECIDED,
        FactKind.SCREENED, FactKind.CLOSED,
    ]
    # Each fact's payload is its kind's model, serialised as the registry's model serialises it.
    for fact in facts:
        assert type(fact.content) is FACTS[fact.kind].payload and fact.content.recorded() == fact.payload
    # The audit's fold reads the same decision set (and the override): the state it rebuilds is the workflow's own.
    decoded = await decode_referral(await fetch_referral(fast_env.client, handle.id), fast_env.client.data_converter)
    assert state_from_facts(decoded) == final


async def test_at_every_stage_the_audit_fold_is_the_workflows_own_state(fast_env, fast_queue, fakes, sla_policy):
    """One referral through every Stage; after each decision the state folded from its history is the workflow's.

    A new stage fails here until a step reaches it, and then the fold must read its facts too.
    """
    submission, handle = await start_referral(fast_env.client, fast_queue, sla_policy, seed=77)
    seen: list[Stage] = []

    async def folds_alike(state: ReferralState) -> None:
        # An agreed action's first facts are in its own history once its first task completes (the referral answers
        # once its own are written): the fold is made when nothing of the referral is in flight.
        await eventually(lambda: in_flight(handle), lambda busy: not busy)
        decoded = await decode_referral(await fetch_referral(fast_env.client, handle.id), fast_env.client.data_converter)
        folded = state_from_facts(decoded)
        assert {k: v for k, v in folded if v != getattr(state, k)} == {}, state.stage
        seen.append(state.stage)

    async def decide(update, decision) -> ReferralState:
        state = await handle.execute_update(update, decision)
        await folds_alike(state)
        return state

    await decide(ReferralWorkflow.review, SupervisorReview(actor=SERGEANT, approved=False, reasons="Synthetic."))
    await decide(ReferralWorkflow.resubmit, Resubmission(actor=OFFICER, submission=submission))
    await decide(ReferralWorkflow.review, approval())
    await decide(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
    held_at = await fast_env.get_current_time()
    await decide(ReferralWorkflow.record_strategy_discussion, strategy_discussion(held_at, section_47=True, actions=1))
    conference_at = held_at + timedelta(days=7)
    await decide(ReferralWorkflow.book_conference,
                 ConferenceBooking(actor=SCREENER, conference_at=conference_at, police_attendance=PoliceAttendance.ATTEND))
    await fast_env.sleep(timedelta(days=7))
    await decide(ReferralWorkflow.record_conference_outcome,
                 ConferenceOutcome(actor=SCREENER, held_at=await fast_env.get_current_time(), child_protection_plan=True,
                                   police_attended=True, rationale="Synthetic.",
                                   allocated_social_worker=ALLOCATED_SOCIAL_WORKER))
    action = fast_env.client.get_workflow_handle_for(AgreedActionWorkflow.run, f"{handle.id}.A1")
    await action.execute_update(AgreedActionWorkflow.complete, ActionCompletion(actor=HEALTH_PARTNER, note="Done."))
    await folds_alike(await finished(fast_env, handle))
    assert set(Stage) - set(seen) == set(), "a stage this walk never reaches: add the decision that enters it"
