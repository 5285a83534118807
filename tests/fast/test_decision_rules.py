"""Each decision's own rules in memory: the start, resubmission, meetings, the conference, agreed actions, closure."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.service import RPCError

from audit.history import decode_referral, fetch_referral, local_activity_type

from starter.synthetic import (
    ALLOCATED_SOCIAL_WORKER,
    CSC_PARTNER,
    HEALTH_PARTNER,
    OFFICER,
    SCREENER,
    SERGEANT,
    approval,
    screening,
    strategy_discussion,
    synthetic_vist,
)
from tests.fast.referrals import DECISIONS, NEW_OWNER, closed_while_recording, decidable, recording_held, referral_at, staff
from tests.helpers import REFUSAL_WAIT, STARTED, finished, refused, screened_and_told, state_when
from workflows.action import AgreedActionWorkflow
from workflows.models import (
    ActionCompletion,
    ActionReassignment,
    ActionStart,
    AgreedActionSpec,
    CloseReason,
    Closure,
    ConferenceBooking,
    ConferenceOutcome,
    OverrideRequest,
    PoliceAttendance,
    Resubmission,
    RiskGrade,
    Role,
    ScreeningOutcome,
    Section46,
    Stage,
    StartReferral,
    referral_reference,
)
from workflows.referral import ReferralWorkflow


async def failing(env, handle) -> None:
    """The workflow's end, which must come at once: one that goes on instead fails the test rather than hang it."""
    await asyncio.wait_for(finished(env, handle), timeout=10)


# --- the start -------------------------------------------------------------------------------------

# (who starts it, the officer its form names, why it fails)
STARTS = {
    **{f"by a {role.value}": (staff(role), staff(role).id, f"actor.role: a {role.value} may not submit a VIST")
       for role in Role if role not in {Role.OFFICER, Role.SUPERVISOR}},
    "naming another officer": (OFFICER, "PC-9999", "submission.officer_id: must be the submitter's own staff ID"),
}


@pytest.mark.parametrize("name", STARTS)
async def test_a_refused_start_fails_before_recording_anything(name, fast_env, fast_queue, fakes, sla_policy):
    submitted_by, officer_id, reason = STARTS[name]
    submission = synthetic_vist(rng=random.Random(f"fast:start:{name}")).model_copy(update={"officer_id": officer_id})
    handle = await fast_env.client.start_workflow(
        ReferralWorkflow.run, StartReferral(submission=submission, submitted_by=submitted_by, sla_policy=sla_policy),
        id=referral_reference(submission.form_id), task_queue=fast_queue)
    STARTED.append(handle)
    with pytest.raises(WorkflowFailureError) as failed:
        await failing(fast_env, handle)
    assert failed.value.cause.message.startswith(reason)
    assert fakes.records.facts_of(handle.id) == []


async def test_no_decision_is_taken_before_the_referral_has_its_policy(fast_env, fast_queue, fakes, sla_policy):
    submission = synthetic_vist(rng=random.Random("fast:registering"))
    reference = referral_reference(submission.form_id)
    gate = fakes.holds.hold(reference, "load_sla_policy")
    handle = await fast_env.client.start_workflow(
        ReferralWorkflow.run, StartReferral(submission=submission, submitted_by=OFFICER),  # the worker's policy
        id=reference, task_queue=fast_queue)
    STARTED.append(handle)
    await refused(handle, ReferralWorkflow.review, approval(), "stage: the referral is still being registered")
    gate.set()
    await state_when(handle, lambda s: s.deadline is not None)
    assert (await handle.execute_update(ReferralWorkflow.review, approval())).stage is Stage.SCREENING


# --- resubmission ----------------------------------------------------------------------------------

async def test_a_resubmission_is_the_same_form_by_its_officer_and_nothing_in_it_is_future(
    fast_env, fast_queue, fakes, sla_policy
):
    submission, handle = await referral_at(fast_env, fast_queue, sla_policy, fakes, Stage.RETURNED_TO_OFFICER, "resubmit")
    later = await fast_env.get_current_time() + timedelta(hours=1)
    protected = submission.model_copy(update={"initial_risk": RiskGrade.HIGH, "section_46": Section46(
        used_at=later, child_ids=["C1"], accommodation="Synthetic foster placement.")})
    for changed, reason in [
        (synthetic_vist(rng=random.Random("fast:another form")),
         "submission.form_id: a resubmission must carry the returned form's ID"),
        (submission.model_copy(update={"officer_id": "PC-9999"}), "submission.officer_id: must be the submitter's own"),
        (submission.model_copy(update={"incident": submission.incident.model_copy(update={"occurred_at": later})}),
         "submission.incident.occurred_at: is in the future"),
        (protected, "submission.section_46.used_at: is in the future"),
    ]:
        await refused(handle, ReferralWorkflow.resubmit, Resubmission(actor=OFFICER, submission=changed), reason)
    resubmitted = await handle.execute_update(ReferralWorkflow.resubmit, Resubmission(actor=OFFICER, submission=submission))
    assert (resubmitted.stage, resubmitted.submission_versions) == (Stage.SUPERVISOR_REVIEW, 2)


# --- the strategy discussion and the conference ------------------------------------------------------

async def test_a_strategy_discussion_is_held_after_the_incident_and_the_referral_and_not_in_the_future(
    fast_env, fast_queue, fakes, sla_policy
):
    submission, handle = await referral_at(fast_env, fast_queue, sla_policy, fakes, Stage.STRATEGY_DISCUSSION, "held")
    now = await fast_env.get_current_time()
    incident = submission.incident.occurred_at
    actions_due_early = strategy_discussion(now, section_47=True, actions=1)
    actions_due_early.agreed_actions[0].deadline = now
    for discussion, reason in [
        (strategy_discussion(incident - timedelta(minutes=1), section_47=True, actions=0),
         "held_at: a strategy discussion cannot be held before the incident"),
        (strategy_discussion(incident + timedelta(minutes=1), section_47=True, actions=0),
         "held_at: a strategy discussion cannot be held before the referral was submitted"),
        (strategy_discussion(now + timedelta(minutes=6), section_47=True, actions=0),
         "held_at: a strategy discussion cannot be recorded before it is held"),
        (actions_due_early, "agreed_actions[0].deadline: must be after the discussion was held"),
    ]:
        await refused(handle, ReferralWorkflow.record_strategy_discussion, discussion, reason)
    # Within the reporter's clock skew of now is now.
    held = await handle.execute_update(
        ReferralWorkflow.record_strategy_discussion, strategy_discussion(now + timedelta(minutes=4), section_47=True, actions=0))
    assert held.stage is Stage.CONFERENCE


def booking(conference_at, **changes) -> ConferenceBooking:
    return ConferenceBooking(actor=SCREENER, conference_at=conference_at, police_attendance=PoliceAttendance.ATTEND, **changes)


async def test_a_conference_is_booked_once_in_the_future_and_its_outcome_recorded_once_after_it(
    fast_env, fast_queue, fakes, sla_policy
):
    _, handle = await referral_at(fast_env, fast_queue, sla_policy, fakes, Stage.CONFERENCE, "conference")
    now = await fast_env.get_current_time()
    conference_at = now + timedelta(minutes=2)

    def outcome(held_at, actions: int = 0) -> ConferenceOutcome:
        specs = strategy_discussion(held_at, section_47=False, actions=actions).agreed_actions
        return ConferenceOutcome(actor=SCREENER, held_at=held_at, child_protection_plan=True, police_attended=True,
                                 rationale="Synthetic.", agreed_actions=specs,
                                 allocated_social_worker=ALLOCATED_SOCIAL_WORKER)

    await refused(handle, ReferralWorkflow.record_conference_outcome, outcome(now), "stage: the conference has not been booked")
    await refused(handle, ReferralWorkflow.book_conference, booking(now), "conference_at: must be in the future")
    await handle.execute_update(ReferralWorkflow.book_conference, booking(conference_at))
    await refused(handle, ReferralWorkflow.book_conference, booking(conference_at + timedelta(days=1)),
                  "conference_at: the conference is already booked")
    early_action = outcome(conference_at, actions=1)
    early_action.agreed_actions[0].deadline = conference_at
    for decision, reason in [
        (outcome(now), "held_at: the conference cannot be held before the time it was booked for"),
        (outcome(now + timedelta(minutes=6)), "held_at: a conference outcome cannot be recorded before it is held"),
        (early_action, "agreed_actions[0].deadline: must be after the conference was held"),
    ]:
        await refused(handle, ReferralWorkflow.record_conference_outcome, decision, reason)
    held = await handle.execute_update(ReferralWorkflow.record_conference_outcome, outcome(conference_at, actions=1))
    assert (held.stage, held.child_protection_plan) == (Stage.ACTIONS, True)
    await refused(handle, ReferralWorkflow.record_conference_outcome, outcome(conference_at),
                  "stage: the referral is at actions; cannot record a conference outcome now")


async def test_a_conference_later_than_the_working_days_allow_needs_its_reason(fast_env, fast_queue, fakes, sla_policy):
    _, handle = await referral_at(fast_env, fast_queue, sla_policy, fakes, Stage.CONFERENCE, "late conference")
    due_by = (await handle.query(ReferralWorkflow.state)).conference_due_by
    await refused(handle, ReferralWorkflow.book_conference, booking(due_by + timedelta(minutes=1)),
                  "late_reason: required for a conference later than 15 working days after the strategy discussion")
    late = await handle.execute_update(
        ReferralWorkflow.book_conference, booking(due_by + timedelta(minutes=1), late_reason="Synthetic: family away."))
    assert (late.conference_at, late.conference_late_reason) == (due_by + timedelta(minutes=1), "Synthetic: family away.")


# --- agreed actions ----------------------------------------------------------------------------------

async def action_of(fast_env, fast_queue, fakes, sla_policy, key: str, actions: int):
    """A referral whose strategy discussion (no section 47) agreed `actions` actions: health's, children's social care's, police's."""
    submission, handle = await referral_at(fast_env, fast_queue, sla_policy, fakes, Stage.STRATEGY_DISCUSSION, key)
    discussion = strategy_discussion(await fast_env.get_current_time(), section_47=False, actions=actions)
    state = await handle.execute_update(ReferralWorkflow.record_strategy_discussion, discussion)
    return handle, [fast_env.client.get_workflow_handle(a.action_id) for a in state.actions]


async def test_an_action_is_completed_by_its_own_agency_or_by_cru_mash_and_only_once(fast_env, fast_queue, fakes, sla_policy):
    referral, (health, social_care, police) = await action_of(fast_env, fast_queue, fakes, sla_policy, "complete", 3)
    for actor, agency in [(OFFICER, "police"), (CSC_PARTNER, "childrens_social_care")]:
        await refused(health, AgreedActionWorkflow.complete, ActionCompletion(actor=actor, note="Synthetic."),
                      f"actor.agency: {agency} staff may not complete an action owned by health", referral=referral)
    # Its own agency's partner or officer; CRU/MASH staff and supervisors whatever the agency.
    for action, actor in [(social_care, SCREENER), (police, OFFICER)]:
        done = await action.execute_update(AgreedActionWorkflow.complete, ActionCompletion(actor=actor, note="Done."))
        assert done.completed_by == actor.id
    completion = ActionCompletion(actor=HEALTH_PARTNER, note="Done.")
    async with recording_held(fast_env, fakes.holds, health, AgreedActionWorkflow.complete, completion,
                              "action_completed", referral):
        for update, decision in [
            (AgreedActionWorkflow.complete, ActionCompletion(actor=SERGEANT, note="Again.")),
            (AgreedActionWorkflow.reassign, ActionReassignment(actor=SERGEANT, owner=NEW_OWNER, reason="Synthetic.")),
        ]:
            await refused(health, update, decision, "action_id: the action is already complete", referral=referral)
    assert (await referral.query(ReferralWorkflow.state)).close_reason is CloseReason.NO_SECTION_47


async def test_a_reassignment_changes_the_owner_or_the_deadline_to_a_future_one(fast_env, fast_queue, fakes, sla_policy):
    referral, (action,) = await action_of(fast_env, fast_queue, fakes, sla_policy, "reassign", 1)
    current = await action.query(AgreedActionWorkflow.state)
    now = await fast_env.get_current_time()
    same_owner = "owner: the action is already assigned to this owner with this deadline"
    for reassignment, reason in [
        (ActionReassignment(actor=SCREENER, owner=current.owner, reason="Synthetic."), same_owner),
        (ActionReassignment(actor=SCREENER, owner=current.owner, reason="Synthetic.", deadline=current.deadline), same_owner),
        (ActionReassignment(actor=SCREENER, owner=NEW_OWNER, reason="Synthetic.", deadline=now),
         "deadline: a new deadline must be in the future"),
        # A body that skipped the model's checks: an empty reason is refused as the workflow decodes it.
        (ActionReassignment.model_construct(actor=SCREENER, owner=NEW_OWNER, reason="", deadline=None),
         "Failed decoding arguments"),
    ]:
        await refused(action, AgreedActionWorkflow.reassign, reassignment, reason, referral=referral)
    later = current.deadline + timedelta(days=1)
    moved = await action.execute_update(
        AgreedActionWorkflow.reassign, ActionReassignment(actor=SCREENER, owner=current.owner, reason="Synthetic.", deadline=later))
    assert (moved.owner, moved.deadline, moved.reassignments) == (current.owner, later, 1)
    handed = await action.execute_update(
        AgreedActionWorkflow.reassign, ActionReassignment(actor=SERGEANT, owner=NEW_OWNER, reason="Synthetic."))
    assert (handed.owner, handed.deadline, handed.reassignments) == (NEW_OWNER, later, 2)
    assert fakes.records.kinds_of(action.id).count("action_reassigned") == 2


async def test_an_action_is_started_only_by_its_referral_and_completed_only_by_its_result(
    fast_env, fast_queue, fakes, sla_policy
):
    referral, (action,) = await action_of(fast_env, fast_queue, fakes, sla_policy, "signal", 1)
    open_action = await action.query(AgreedActionWorkflow.state)
    # A signal claiming completion moves nothing: the referral waits for the action's result.
    forged = open_action.model_copy(update={"completed_at": open_action.deadline, "completed_by": SCREENER.id})
    await referral.signal(ReferralWorkflow.action_updated, forged)
    await referral.signal(ReferralWorkflow.action_updated, forged.model_copy(update={"action_id": f"{referral.id}.A9"}))
    state = await referral.query(ReferralWorkflow.state)
    assert [(a.action_id, a.completed_at) for a in state.actions] == [(action.id, None)]
    assert state.stage is Stage.ACTIONS

    stray_id = f"{referral.id}.A7"
    spec = AgreedActionSpec(description="Synthetic.", owner=NEW_OWNER, deadline=open_action.deadline)
    stray = await fast_env.client.start_workflow(
        AgreedActionWorkflow.run,
        ActionStart(action_id=stray_id, reference=referral.id, spec=spec, agreed_by=SCREENER,
                    agreed_at=open_action.deadline, policy=sla_policy),
        id=stray_id, task_queue=fast_queue)
    with pytest.raises(WorkflowFailureError) as failed:
        await failing(fast_env, stray)
    assert failed.value.cause.message.startswith("parent: an agreed action is started only by the referral")
    assert fakes.records.kinds_of(stray_id) == []


# --- screening ---------------------------------------------------------------------------------------

async def test_no_screening_before_the_prior_referrals_are_in_view(fast_env, fast_queue, fakes, sla_policy):
    submission, handle = await referral_at(fast_env, fast_queue, sla_policy, fakes, Stage.SUPERVISOR_REVIEW, "view")
    gate = fakes.holds.hold(handle.id, "find_prior_referrals")
    await handle.start_update(ReferralWorkflow.review, approval(), wait_for_stage=WorkflowUpdateStage.ACCEPTED)
    await state_when(handle, lambda s: s.stage is Stage.SCREENING)
    loading = "stage: the screening view (prior referrals) is still loading"
    await refused(handle, ReferralWorkflow.screen, screening(submission, ScreeningOutcome.EARLY_HELP), loading)
    await refused(handle, ReferralWorkflow.request_override, OverrideRequest(actor=SCREENER, reason="Synthetic."), loading)
    gate.set()
    await state_when(handle, lambda s: s.screening_view is not None)
    screened_now = await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.EARLY_HELP))
    assert screened_now.screening_outcome is ScreeningOutcome.EARLY_HELP


# --- where each decision leads ---------------------------------------------------------------------------

async def screened(env, handle, submission, outcome: ScreeningOutcome):
    """Screened, and children's social care told of it: the referral then closes with the screening's outcome."""
    return await screened_and_told(env.client, handle, screening(submission, outcome))


async def conference_outcome(env, handle, submission, plan: bool):
    now = await env.get_current_time()
    await handle.execute_update(ReferralWorkflow.book_conference, booking(now + timedelta(minutes=1)))
    return await handle.execute_update(ReferralWorkflow.record_conference_outcome, ConferenceOutcome(
        actor=SERGEANT, held_at=now + timedelta(minutes=1), child_protection_plan=plan, police_attended=False,
        rationale="Synthetic.", allocated_social_worker=ALLOCATED_SOCIAL_WORKER if plan else None))


async def no_section_47(env, handle, submission):
    discussion = strategy_discussion(await env.get_current_time(), section_47=False, actions=0)
    return await handle.execute_update(ReferralWorkflow.record_strategy_discussion, discussion)


# (the stage it is decided at, the decision, the closure it leads to)
CLOSINGS = {
    "screened: early help": (Stage.SCREENING, lambda *a: screened(*a, ScreeningOutcome.EARLY_HELP), CloseReason.EARLY_HELP),
    "screened: single agency": (
        Stage.SCREENING, lambda *a: screened(*a, ScreeningOutcome.SINGLE_AGENCY), CloseReason.SINGLE_AGENCY),
    "screened: no further action": (
        Stage.SCREENING, lambda *a: screened(*a, ScreeningOutcome.NO_FURTHER_ACTION), CloseReason.NO_FURTHER_ACTION),
    "discussed: no section 47, no action": (Stage.STRATEGY_DISCUSSION, no_section_47, CloseReason.NO_SECTION_47),
    "conference: a plan": (Stage.CONFERENCE, lambda *a: conference_outcome(*a, True), CloseReason.CHILD_PROTECTION_PLAN),
    "conference: no plan": (
        Stage.CONFERENCE, lambda *a: conference_outcome(*a, False), CloseReason.NO_CHILD_PROTECTION_PLAN),
}


@pytest.mark.parametrize("name", CLOSINGS)
async def test_each_outcome_closes_the_referral_with_its_reason(name, fast_env, fast_queue, fakes, sla_policy):
    stage, decide, reason = CLOSINGS[name]
    submission, handle = await referral_at(fast_env, fast_queue, sla_policy, fakes, stage, f"closing:{name}")
    decided = await decide(fast_env, handle, submission)
    assert (decided.stage, decided.close_reason) == (Stage.CLOSED, reason)
    await finished(fast_env, handle)
    (closed,) = [f for f in fakes.records.facts_of(handle.id) if f.kind == "closed"]
    assert closed.payload["reason"] == reason.value


# --- a grade agreed in a decision ----------------------------------------------------------------------

async def graded_at_screening(env, handle, submission):
    raised = screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION, risk=RiskGrade.HIGH)
    return await handle.execute_update(ReferralWorkflow.screen, raised)


async def graded_at_the_discussion(env, handle, submission):
    discussion = strategy_discussion(await env.get_current_time(), section_47=True, actions=0)
    discussion.risk = RiskGrade.HIGH
    return await handle.execute_update(ReferralWorkflow.record_strategy_discussion, discussion)


async def graded_at_the_conference(env, handle, submission):
    now = await env.get_current_time()
    await handle.execute_update(ReferralWorkflow.book_conference, booking(now + timedelta(minutes=1)))
    return await handle.execute_update(ReferralWorkflow.record_conference_outcome, ConferenceOutcome(
        actor=SCREENER, held_at=now + timedelta(minutes=1), child_protection_plan=True, police_attended=True,
        rationale="Synthetic.", risk=RiskGrade.HIGH, allocated_social_worker=ALLOCATED_SOCIAL_WORKER))


GRADINGS = {
    "graded at screening": (Stage.SCREENING, graded_at_screening),
    "graded at the strategy discussion": (Stage.STRATEGY_DISCUSSION, graded_at_the_discussion),
    "graded at the initial child protection conference": (Stage.CONFERENCE, graded_at_the_conference),
}


@pytest.mark.parametrize("reason", GRADINGS)
async def test_a_grade_agreed_in_a_decision_takes_effect_at_once(reason, fast_env, fast_queue, fakes, sla_policy):
    stage, decide = GRADINGS[reason]
    submission, handle = await referral_at(fast_env, fast_queue, sla_policy, fakes, stage, f"grading:{reason}")
    assert (await handle.query(ReferralWorkflow.state)).risk is RiskGrade.MEDIUM
    assert (await decide(fast_env, handle, submission)).risk is RiskGrade.HIGH
    (regraded,) = [f for f in fakes.records.facts_of(handle.id) if f.kind == "risk_regraded"]
    assert (regraded.payload["from_risk"], regraded.payload["to_risk"], regraded.payload["reason"]) == (
        "medium", "high", reason)


# --- the same decision twice at once ---------------------------------------------------------------------

# The decisions that close the referral where `decidable` brings it (its only action done).
ENDING = {"close", "complete_action"}


@pytest.mark.parametrize("name", DECISIONS)
async def test_every_decision_sent_twice_at_once_is_taken_once(name, fast_env, fast_queue, fakes, sla_policy):
    """Each handler changes what its validator reads before its first await: the second copy is refused."""
    kind = DECISIONS[name]
    handle, referral, setting = await decidable(name, fast_env, fast_queue, sla_policy, fakes, "twice")
    decision = kind.build(setting, staff(max(kind.allowed)))  # CRU/MASH staff and supervisors: any agency
    outcomes = await asyncio.wait_for(asyncio.gather(
        *(handle.execute_update(kind.update, decision) for _ in range(3)), return_exceptions=True), REFUSAL_WAIT)
    taken = [o for o in outcomes if not isinstance(o, BaseException)]
    # A refusal from the validator, or from the server once the decision has ended the workflow.
    assert len(taken) == 1 and all(isinstance(o, (WorkflowUpdateFailedError, RPCError)) for o in outcomes
                                   if o not in taken), outcomes
    if name in ENDING:
        # Left to the clean-up, the referral could be terminated mid-finish and stop the test server's clock.
        assert (await asyncio.wait_for(finished(fast_env, referral or handle), REFUSAL_WAIT)).stage is Stage.CLOSED


async def test_a_batch_the_database_does_not_take_at_once_goes_to_the_activity_and_the_referral_answers_meanwhile(
    fast_env, fast_queue, fakes, sla_policy
):
    """A local write holds its workflow task: one attempt, then the batch is the `record_facts` activity's, retried
    until written, and the referral answers (and refuses) meanwhile. The audit reads the facts from that activity."""
    _, handle = await referral_at(fast_env, fast_queue, sla_policy, fakes, Stage.SUPERVISOR_REVIEW, "slow-database")

    async def history_kinds() -> tuple[list[str | None], list[str]]:
        events = (await handle.fetch_history()).events
        return ([local_activity_type(e) for e in events if local_activity_type(e)],
                [e.activity_task_scheduled_event_attributes.activity_type.name for e in events
                 if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED])

    # Its first batch is written within its first workflow task: a marker, no activity.
    while not (kinds := await history_kinds())[0]:
        await asyncio.sleep(0.1)
    assert kinds == (["record_facts"], [])
    async with closed_while_recording(fast_env, handle, fakes.holds):
        while "record_facts" not in (await history_kinds())[1]:
            await asyncio.sleep(0.2)
        assert (await handle.query(ReferralWorkflow.state)).stage is Stage.CLOSED
        await refused(handle, ReferralWorkflow.close, Closure(actor=SCREENER, reason=CloseReason.WITHDRAWN),
                      "stage: the referral is at closed; cannot close a referral now")
        assert "closed" not in fakes.records.kinds_of(handle.id)
    decoded = await decode_referral(await fetch_referral(fast_env.client, handle.id), fast_env.client.data_converter)
    assert [fact.kind for fact in decoded.facts].count("closed") == 1
    assert fakes.records.kinds_of(handle.id).count("closed") == 1
