"""Whole referrals through every path of the lifecycle, on the time-skipping server."""

from __future__ import annotations

import random
from datetime import timedelta

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
from tests.helpers import csc_told, finished, screened_and_told, skip, start_referral, state_when
from workflows.action import AgreedActionWorkflow
from workflows.models import (
    ActionCompletion,
    ActionOwner,
    ActionReassignment,
    Agency,
    CloseReason,
    Closure,
    ConferenceBooking,
    ConferenceOutcome,
    PoliceAttendance,
    Resubmission,
    ScreeningOutcome,
    Stage,
    SupervisorReview,
)
from workflows.referral import ReferralWorkflow


async def complete_all_actions(client, state, actor=SCREENER):
    for action in state.actions:
        if action.completed_at is None:
            await client.get_workflow_handle(action.action_id).execute_update(
                AgreedActionWorkflow.complete, ActionCompletion(actor=actor, note="Synthetic completion note.")
            )


async def test_no_further_action(time_env, pool, time_queue, sla_policy):
    submission, handle = await start_referral(time_env.client, time_queue, sla_policy, seed=10)
    await handle.execute_update(ReferralWorkflow.review, approval())
    state = await handle.execute_update(
        ReferralWorkflow.screen, screening(submission, ScreeningOutcome.NO_FURTHER_ACTION)
    )
    # Closed once the screener has told children's social care, an agreed action like any other.
    assert state.stage is Stage.ACTIONS and [a.owner.agency for a in state.open_actions] == [Agency.POLICE]
    await csc_told(time_env.client, state)
    result = await finished(time_env, handle)
    assert result.close_reason is CloseReason.NO_FURTHER_ACTION
    row = await pool.fetchrow("SELECT stage, screening_outcome, close_reason FROM referrals WHERE reference = $1", handle.id)
    assert dict(row) == {"stage": "closed", "screening_outcome": "no_further_action", "close_reason": "no_further_action"}


async def test_early_help_after_return_and_resubmission(time_env, pool, time_queue, sla_policy):
    submission, handle = await start_referral(time_env.client, time_queue, sla_policy, seed=11)
    returned = await handle.execute_update(
        ReferralWorkflow.review,
        SupervisorReview(actor=SERGEANT, approved=False, reasons="Voice of the child too brief."),
    )
    assert returned.stage is Stage.RETURNED_TO_OFFICER
    corrected = submission.model_copy(deep=True)
    corrected.children[0].voice_of_the_child = "Synthetic fuller account of behaviour and demeanour."
    resubmitted = await handle.execute_update(
        ReferralWorkflow.resubmit, Resubmission(actor=OFFICER, submission=corrected)
    )
    assert resubmitted.stage is Stage.SUPERVISOR_REVIEW
    assert resubmitted.submission_versions == 2
    await handle.execute_update(ReferralWorkflow.review, approval())
    await screened_and_told(time_env.client, handle, screening(corrected, ScreeningOutcome.EARLY_HELP))
    result = await finished(time_env, handle)
    assert result.close_reason is CloseReason.EARLY_HELP
    versions = await pool.fetch(
        "SELECT version, form->'children'->0->>'voice_of_the_child' AS voice FROM submission_versions "
        "WHERE reference = $1 ORDER BY version",
        handle.id,
    )
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[1]["voice"] == "Synthetic fuller account of behaviour and demeanour."
    transitions = await pool.fetch(
        "SELECT to_stage FROM stage_transitions WHERE reference = $1 ORDER BY seq", handle.id
    )
    assert [t["to_stage"] for t in transitions] == [
        "supervisor_review", "returned_to_officer", "supervisor_review", "screening", "actions", "closed",
    ]


async def test_strategy_discussion_without_section_47_tracks_actions_then_closes(
    time_env, pool, time_queue, sla_policy
):
    submission, handle = await start_referral(time_env.client, time_queue, sla_policy, seed=12)
    await handle.execute_update(ReferralWorkflow.review, approval())
    await handle.execute_update(
        ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION)
    )
    held_at = await time_env.get_current_time()
    state = await handle.execute_update(
        ReferralWorkflow.record_strategy_discussion, strategy_discussion(held_at, section_47=False, actions=2)
    )
    assert state.stage is Stage.ACTIONS
    assert [a.action_id for a in state.actions] == [f"{handle.id}.A1", f"{handle.id}.A2"]
    # A partner completes its own agency's action; the screener completes the other.
    await time_env.client.get_workflow_handle(f"{handle.id}.A1").execute_update(
        AgreedActionWorkflow.complete, ActionCompletion(actor=HEALTH_PARTNER, note="Visit done (synthetic).")
    )
    # The referral learns of a completion from the action's result: wait for it before completing the rest.
    await complete_all_actions(time_env.client, await state_when(handle, lambda s: len(s.open_actions) == 1))
    result = await finished(time_env, handle)
    assert result.close_reason is CloseReason.NO_SECTION_47
    assert all(a.completed_at is not None for a in result.actions)
    attendees = await pool.fetch("SELECT agency FROM strategy_attendees WHERE reference = $1", handle.id)
    assert {a["agency"] for a in attendees} == {"childrens_social_care", "health", "police"}
    actions = await pool.fetch(
        "SELECT action_id, owner, completed_by FROM agreed_actions WHERE reference = $1 ORDER BY action_id", handle.id
    )
    assert [(a["action_id"], a["completed_by"]) for a in actions] == [
        (f"{handle.id}.A1", HEALTH_PARTNER.id),
        (f"{handle.id}.A2", SCREENER.id),
    ]


async def test_section_47_conference_attended_with_child_protection_plan(
    time_env, pool, time_queue, sla_policy
):
    submission, handle = await start_referral(time_env.client, time_queue, sla_policy, seed=13)
    await handle.execute_update(ReferralWorkflow.review, approval())
    await handle.execute_update(
        ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION)
    )
    held_at = await time_env.get_current_time()
    state = await handle.execute_update(
        ReferralWorkflow.record_strategy_discussion, strategy_discussion(held_at, section_47=True, actions=1)
    )
    assert state.stage is Stage.CONFERENCE
    assert state.conference_due_by is not None
    booked = await handle.execute_update(
        ReferralWorkflow.book_conference,
        ConferenceBooking(
            actor=SCREENER, conference_at=held_at + timedelta(days=7), police_attendance=PoliceAttendance.ATTEND
        ),
    )
    assert booked.police_attendance is PoliceAttendance.ATTEND
    assert len(booked.actions) == 1  # no report in lieu when police attend
    # The outcome is now due after the booked conference, in the read model as in the workflow.
    assert booked.deadline > booked.conference_at
    assert await pool.fetchval("SELECT deadline FROM referrals WHERE reference = $1", handle.id) == booked.deadline
    await skip(time_env, timedelta(days=7))
    outcome_at = await time_env.get_current_time()
    state = await handle.execute_update(
        ReferralWorkflow.record_conference_outcome,
        ConferenceOutcome(
            actor=SCREENER,
            held_at=outcome_at,
            child_protection_plan=True, allocated_social_worker=ALLOCATED_SOCIAL_WORKER,
            police_attended=True,
            rationale="Synthetic conference rationale.",
        ),
    )
    assert state.child_protection_plan is True
    if state.stage is Stage.ACTIONS:
        await complete_all_actions(time_env.client, state)
    result = await finished(time_env, handle)
    assert result.close_reason is CloseReason.CHILD_PROTECTION_PLAN
    conference = await pool.fetchrow(
        "SELECT police_attendance, police_attended, child_protection_plan FROM conferences WHERE reference = $1",
        handle.id,
    )
    assert dict(conference) == {"police_attendance": "attend", "police_attended": True, "child_protection_plan": True}


async def test_report_in_lieu_is_an_action_due_two_working_days_before(time_env, pool, time_queue, sla_policy):
    submission, handle = await start_referral(time_env.client, time_queue, sla_policy, seed=14)
    await handle.execute_update(ReferralWorkflow.review, approval())
    await handle.execute_update(
        ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION)
    )
    held_at = await time_env.get_current_time()
    await handle.execute_update(
        ReferralWorkflow.record_strategy_discussion, strategy_discussion(held_at, section_47=True, actions=0)
    )
    state = await handle.query(ReferralWorkflow.state)
    conference_at = state.conference_due_by - timedelta(hours=1)
    booked = await handle.execute_update(
        ReferralWorkflow.book_conference,
        ConferenceBooking(
            actor=SCREENER,
            conference_at=conference_at,
            police_attendance=PoliceAttendance.REPORT_IN_LIEU,
            attendance_rationale="Synthetic: risk known to all agencies; report covers police information.",
            report_owner="DC Synthetic",
        ),
    )
    (report,) = booked.actions
    assert report.owner.agency is Agency.POLICE
    from workflows.calendar import subtract_working_days

    assert report.deadline == subtract_working_days(
        conference_at, 2, frozenset(sla_policy.bank_holidays), sla_policy.timezone
    )
    await complete_all_actions(time_env.client, booked)
    await skip(time_env, conference_at - held_at)
    await handle.execute_update(
        ReferralWorkflow.record_conference_outcome,
        ConferenceOutcome(
            actor=SCREENER,
            held_at=await time_env.get_current_time(),
            child_protection_plan=False,
            police_attended=False,
            rationale="Synthetic conference rationale.",
        ),
    )
    result = await finished(time_env, handle)
    assert result.close_reason is CloseReason.NO_CHILD_PROTECTION_PLAN
    assert result.police_attendance is PoliceAttendance.REPORT_IN_LIEU


async def test_closed_early_from_supervisor_review(time_env, pool, time_queue, sla_policy):
    _, handle = await start_referral(time_env.client, time_queue, sla_policy, seed=15)
    state = await handle.execute_update(
        ReferralWorkflow.close, Closure(actor=SERGEANT, reason=CloseReason.DUPLICATE, note="Synthetic duplicate.")
    )
    assert state.stage is Stage.CLOSED
    result = await finished(time_env, handle)
    assert result.close_reason is CloseReason.DUPLICATE
    row = await pool.fetchrow("SELECT stage, close_reason, closed_at FROM referrals WHERE reference = $1", handle.id)
    assert row["stage"] == "closed" and row["close_reason"] == "duplicate" and row["closed_at"] is not None


async def test_action_reassignment_is_recorded(time_env, pool, time_queue, sla_policy):
    submission, handle = await start_referral(time_env.client, time_queue, sla_policy, seed=16)
    await handle.execute_update(ReferralWorkflow.review, approval())
    await handle.execute_update(
        ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION)
    )
    held_at = await time_env.get_current_time()
    await handle.execute_update(
        ReferralWorkflow.record_strategy_discussion, strategy_discussion(held_at, section_47=False, actions=1)
    )
    action = time_env.client.get_workflow_handle(f"{handle.id}.A1")
    new_owner = ActionOwner(agency=Agency.CHILDRENS_SOCIAL_CARE, owner="Social Worker Two Synthetic")
    reassigned = await action.execute_update(
        AgreedActionWorkflow.reassign,
        ActionReassignment(actor=SERGEANT, owner=new_owner, reason="Synthetic: caseload moved."),
    )
    assert reassigned.owner == new_owner and reassigned.reassignments == 1
    await state_when(handle, lambda s: s.actions[0].owner == new_owner)
    await action.execute_update(
        AgreedActionWorkflow.complete, ActionCompletion(actor=CSC_PARTNER, note="Synthetic completion.")
    )
    await finished(time_env, handle)
    rows = await pool.fetch("SELECT from_agency, to_agency, to_owner FROM action_reassignments WHERE action_id = $1", action.id)
    assert [tuple(r) for r in rows] == [("health", "childrens_social_care", "Social Worker Two Synthetic")]
    assert await pool.fetchval("SELECT agency FROM agreed_actions WHERE action_id = $1", action.id) == "childrens_social_care"
