"""Missing episodes on the time-skipping server with PostgreSQL: missed reviews and quiet tracing climb the
ladder, an implausible low grade stands only on another supervisor's word, a late return-home interview
escalates to the social worker's manager, and the episode closes only after the interview's outcome."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError

from starter.synthetic import (
    CSC_PARTNER,
    INSPECTOR,
    OFFICER,
    SERGEANT,
    approval,
    found_report,
    synthetic_missing_report,
    synthetic_vist,
)
from tests.api_fixtures import api, api_app, auth, authenticator, tokens  # noqa: F401
from tests.helpers import advance_to, eventually, finished, seeded, start_episode, start_referral
from tests.scrape import scraped, series
from workflows.action import AgreedActionWorkflow
from workflows.missing import MissingEpisodeWorkflow
from workflows.missing_models import (
    EpisodePhase,
    EpisodeReview,
    InterviewOutcome,
    LowGradeDecision,
    MissingChild,
    ReturnHomeInterview,
    RiskIndicator,
    TracingActivity,
    TracingRecord,
)
from workflows.models import ActionCompletion, Actor, AgreedActionSpec, MissingGrade, Rank, Role
from workflows.referral import ReferralWorkflow

OTHER_SERGEANT = Actor(id="PS-2002", role=Role.SUPERVISOR, rank=Rank.SERGEANT)


def state_of(handle):
    return lambda: handle.query(MissingEpisodeWorkflow.state)


def review_by(actor: Actor, **more) -> EpisodeReview:
    return EpisodeReview(actor=actor, tracing_done="Synthetic: home searched.", next_steps="Synthetic: friends.", **more)


async def test_a_missed_review_escalates_and_a_review_restarts_the_timetable(
    time_env, pool, time_queue, sla_policy, api, auth
):
    _, handle = await start_episode(time_env.client, time_queue, sla_policy, seed="missed-review")
    state = await handle.query(MissingEpisodeWorkflow.state)
    assert state.grade is MissingGrade.MEDIUM
    first_due = state.reported_at + timedelta(hours=sla_policy.missing.risk_assessment_review.medium.hours)
    assert state.review_due == first_due
    # Tracing keeps its own clock quiet, so only the review is late.
    await handle.execute_update(
        MissingEpisodeWorkflow.record_tracing, TracingRecord(actor=OFFICER, activity=TracingActivity.ADDRESSES_VISITED)
    )

    await advance_to(time_env, first_due - timedelta(minutes=5))
    assert (await handle.query(MissingEpisodeWorkflow.state)).escalations == []
    await advance_to(time_env, first_due + timedelta(minutes=1))
    state = await eventually(state_of(handle), lambda s: len(s.escalations) == 1)
    (escalation,) = state.escalations
    assert (escalation.subject, escalation.rung, escalation.rank, escalation.due_at) == ("review", 0, Rank.SERGEANT, first_due)
    row = await eventually(
        lambda: pool.fetchrow("SELECT subject, rank FROM escalations WHERE escalation_id = $1", escalation.escalation_id),
        lambda r: r is not None,
    )
    assert dict(row) == {"subject": "review", "rank": "sergeant"}

    # Listed under its episode and acknowledged through the API, as any escalation.
    listed = await eventually(
        lambda: api.get("/escalations", params={"reference": handle.id}, headers=auth("sergeant")),
        lambda r: r.status_code == 200 and len(r.json()["items"]) == 1,
    )
    assert listed.json()["items"][0]["escalation_id"] == escalation.escalation_id
    acknowledged = await api.post(f"/escalations/{escalation.escalation_id}/acknowledgement", headers=auth("sergeant"))
    assert acknowledged.status_code == 200, acknowledged.text
    assert acknowledged.json()["escalations"][0]["acknowledged_by"] == SERGEANT.id

    state = await handle.execute_update(MissingEpisodeWorkflow.review, review_by(SERGEANT))
    every = timedelta(hours=sla_policy.missing.review_every.medium.hours)
    assert state.review_due == state.reviews[-1].reviewed_at + every
    episode = await eventually(
        lambda: pool.fetchrow("SELECT review_due, grade FROM missing_episodes WHERE episode_id = $1", handle.id),
        lambda r: r is not None and r["review_due"] == state.review_due,
    )
    assert episode["grade"] == "medium"


async def test_no_tracing_for_the_quiet_time_escalates_up_the_ladder(time_env, pool, time_queue, sla_policy):
    before = await scraped(pool)
    report = synthetic_missing_report(rng=seeded("quiet"), grade=MissingGrade.HIGH)
    _, handle = await start_episode(time_env.client, time_queue, sla_policy, report)
    await handle.execute_update(MissingEpisodeWorkflow.review, review_by(INSPECTOR))
    state = await handle.query(MissingEpisodeWorkflow.state)
    quiet_due = state.reported_at + timedelta(hours=sla_policy.missing.tracing_quiet.high.hours)
    assert state.tracing_due == quiet_due

    await advance_to(time_env, quiet_due + timedelta(minutes=1))
    state = await eventually(state_of(handle), lambda s: any(e.subject == "tracing" for e in s.escalations))
    tracing = [e for e in state.escalations if e.subject == "tracing"]
    assert [(e.rung, e.due_at) for e in tracing] == [(0, quiet_due)]

    grace = timedelta(hours=sla_policy.escalation.grace.hours)
    await advance_to(time_env, quiet_due + grace + timedelta(minutes=2))
    state = await eventually(state_of(handle), lambda s: len([e for e in s.escalations if e.subject == "tracing"]) == 2)
    assert [e.rank for e in state.escalations if e.subject == "tracing"] == [Rank.SERGEANT, Rank.INSPECTOR]
    # The metrics count each rung as it was raised, and the episode among the open ones while missing.
    found = await eventually(
        lambda: scraped(pool),
        lambda f: series(f, "referral_escalations_raised_total", rung="1")
        >= series(before, "referral_escalations_raised_total", rung="1") + 1,
    )
    assert series(found, "referral_escalations_raised_total", rung="0") >= series(before, "referral_escalations_raised_total", rung="0") + 1
    assert series(found, "referral_open_missing_episodes", stage="missing") >= 1

    # Tracing recorded: the ladder stops and the quiet clock starts again from now.
    state = await handle.execute_update(
        MissingEpisodeWorkflow.record_tracing, TracingRecord(actor=OFFICER, activity=TracingActivity.CCTV_REVIEWED)
    )
    assert state.tracing_due == state.last_tracing_at + timedelta(hours=sla_policy.missing.tracing_quiet.high.hours)
    rows = await eventually(
        lambda: pool.fetch("SELECT activity FROM missing_tracing WHERE episode_id = $1", handle.id),
        lambda r: len(r) == 1,
    )
    assert rows[0]["activity"] == "cctv_reviewed"


async def test_a_low_grade_with_high_risk_indicators_is_refused_without_a_supervisors_override(
    time_env, pool, time_queue, sla_policy
):
    report = synthetic_missing_report(
        rng=seeded("implausible-low"), grade=MissingGrade.LOW, indicators=[RiskIndicator.CSE_CONCERN]
    )
    _, handle = await start_episode(time_env.client, time_queue, sla_policy, report, reported_by=SERGEANT)
    state = await handle.query(MissingEpisodeWorkflow.state)
    # Treated high until decided: the high-risk timetable, reviewed only by an inspector.
    assert (state.grade, state.low_grade_pending) == (MissingGrade.HIGH, True)
    high_due = state.reported_at + timedelta(hours=sla_policy.missing.risk_assessment_review.high.hours)
    assert state.review_due == high_due
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(MissingEpisodeWorkflow.review, review_by(OTHER_SERGEANT))
    assert str(refused.value.cause.message).startswith("actor.rank:")

    for who, field in ((OFFICER, "actor.role:"), (SERGEANT, "actor.id:")):
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            decision = LowGradeDecision(actor=who, keep_low=True, rationale="Synthetic rationale.")
            await handle.execute_update(MissingEpisodeWorkflow.decide_low_grade, decision)
        assert str(refused.value.cause.message).startswith(field)
    assert await handle.query(MissingEpisodeWorkflow.state) == state

    await advance_to(time_env, high_due + timedelta(minutes=1))
    await eventually(state_of(handle), lambda s: any(e.subject == "review" for e in s.escalations))
    row = await eventually(
        lambda: pool.fetchrow("SELECT grade, assessed_grade FROM missing_episodes WHERE episode_id = $1", handle.id),
        lambda r: r is not None,
    )
    assert dict(row) == {"grade": "high", "assessed_grade": "low"}

    keep = LowGradeDecision(actor=OTHER_SERGEANT, keep_low=True, rationale="Synthetic rationale.")
    state = await handle.execute_update(MissingEpisodeWorkflow.decide_low_grade, keep)
    assert (state.grade, state.low_grade_pending) == (MissingGrade.LOW, False)
    await eventually(
        lambda: pool.fetchval("SELECT grade FROM missing_episodes WHERE episode_id = $1", handle.id),
        lambda grade: grade == "low",
    )


async def test_a_late_return_home_interview_escalates_to_the_manager_and_the_episode_closes_only_after_its_outcome(
    time_env, pool, time_queue, sla_policy
):
    _, handle = await start_episode(time_env.client, time_queue, sla_policy, seed="interview")
    now = await time_env.get_current_time()
    tracing = AgreedActionSpec(description="Synthetic: visit the friend's address.", owner=found_report(now).interviewer,
                               deadline=now + timedelta(days=2))
    state = await handle.execute_update(MissingEpisodeWorkflow.review, review_by(SERGEANT, tracing_actions=[tracing]))
    (tracing_action,) = state.actions
    # The action's facts reach the read model under its episode, none of them refused.
    await eventually(
        lambda: pool.fetchval("SELECT reference FROM agreed_actions WHERE action_id = $1", tracing_action.action_id),
        lambda reference: reference == handle.id,
    )
    # A tracing action done is tracing recorded: the quiet clock starts again from its completion.
    await time_env.client.get_workflow_handle(tracing_action.action_id).execute_update(
        AgreedActionWorkflow.complete, ActionCompletion(actor=CSC_PARTNER, note="Synthetic: address visited.")
    )
    state = await eventually(state_of(handle), lambda s: s.last_tracing_at is not None)
    assert state.tracing_due == state.last_tracing_at + timedelta(hours=sla_policy.missing.tracing_quiet.medium.hours)
    row = await eventually(
        lambda: pool.fetchrow("SELECT activity, action_id FROM missing_tracing WHERE episode_id = $1", handle.id),
        lambda r: r is not None,
    )
    assert dict(row) == {"activity": "tracing_action_completed", "action_id": tracing_action.action_id}

    found_at = await time_env.get_current_time()
    state = await handle.execute_update(MissingEpisodeWorkflow.found, found_report(found_at))
    assert state.phase is EpisodePhase.RETURNED and (state.review_due, state.tracing_due) == (None, None)
    interview_due = found_at + timedelta(hours=sla_policy.missing.return_home_interview.hours)
    assert state.interview_due == interview_due
    interview = time_env.client.get_workflow_handle(state.interview_action_id)

    await advance_to(time_env, interview_due + timedelta(minutes=1))
    action = await eventually(lambda: interview.query(AgreedActionWorkflow.state), lambda a: len(a.escalations) == 1)
    assert action.escalations[0].addressed_to == "Team Manager Synthetic (childrens_social_care)"

    # The interview could not be held: the outcome alone does not close the episode while its action is open.
    outcome = ReturnHomeInterview(actor=CSC_PARTNER, outcome=InterviewOutcome.COULD_NOT_BE_HELD,
                                  reasons="Synthetic: the child was not at home.",
                                  intelligence_for_police="Synthetic: names an address.")
    state = await handle.execute_update(MissingEpisodeWorkflow.record_interview, outcome)
    assert state.phase is EpisodePhase.RETURNED and state.interview_outcome is InterviewOutcome.COULD_NOT_BE_HELD
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(MissingEpisodeWorkflow.record_interview, outcome)
    assert str(refused.value.cause.message).startswith("outcome:")

    await interview.execute_update(
        AgreedActionWorkflow.complete, ActionCompletion(actor=CSC_PARTNER, note="Synthetic: three attempts made.")
    )
    closed = await finished(time_env, handle)
    assert closed.phase is EpisodePhase.CLOSED
    row = await eventually(
        lambda: pool.fetchrow(
            "SELECT phase, interview_outcome, intelligence_shared, where_found FROM missing_episodes WHERE episode_id = $1",
            handle.id,
        ),
        lambda r: r is not None and r["phase"] == "closed",
    )
    assert dict(row) == {"phase": "closed", "interview_outcome": "could_not_be_held", "intelligence_shared": True,
                         "where_found": "relative_or_friend"}
    assert await pool.fetchval("SELECT count(*) FROM quarantined_facts WHERE reference = $1", handle.id) == 0


async def test_a_childs_third_episode_is_flagged_repeat_missing_from_the_read_model(
    time_env, pool, time_queue, sla_policy
):
    first = synthetic_missing_report(rng=seeded("repeat-child"))
    # The same child (name, date of birth) reported three times.
    reports = [first] + [first.model_copy(update={"report_id": uuid.uuid4()}) for _ in range(2)]
    counted = []
    for report in reports:
        _, handle = await start_episode(time_env.client, time_queue, sla_policy, report)
        counted.append(await handle.query(MissingEpisodeWorkflow.state))
    assert [(s.episodes_in_window, s.repeat_missing) for s in counted] == [(1, False), (2, False), (3, True)]
    # Another child's episode is not counted with them.
    _, other = await start_episode(time_env.client, time_queue, sla_policy, seed="repeat-other-child")
    assert (await other.query(MissingEpisodeWorkflow.state)).episodes_in_window == 1

    third = counted[-1]
    assert [entry.kind for entry in third.history] == ["missing_reported", "repeat_missing_flagged"]
    row = await eventually(
        lambda: pool.fetchrow(
            "SELECT payload FROM referral_events WHERE reference = $1 AND kind = 'repeat_missing_flagged'",
            third.episode_id,
        ),
        lambda r: r is not None,
    )
    assert json.loads(row["payload"]) == {"episodes": 3, "window_days": sla_policy.missing.repeat_missing_days}


async def test_a_referrals_screening_view_lists_its_childs_missing_episodes_once_each_newest_first(
    time_env, pool, time_queue, sla_policy
):
    submission = synthetic_vist(rng=seeded("screened-child"), family="Missingham-000002", children=2)
    child = submission.children[0]
    episodes = []
    for n in range(2):
        report = synthetic_missing_report(rng=seeded(f"screened-child-{n}")).model_copy(
            update={"child": MissingChild(name=child.name, date_of_birth=child.date_of_birth)}
        )
        episodes.append((await start_episode(time_env.client, time_queue, sla_policy, report))[1].id)
        await advance_to(time_env, await time_env.get_current_time() + timedelta(minutes=5))
    # Another child's episode is not theirs.
    await start_episode(time_env.client, time_queue, sla_policy, seed="screened-other-child")

    submission, referral = await start_referral(time_env.client, time_queue, sla_policy, submission=submission)
    await eventually(
        lambda: pool.fetchval("SELECT count(*) FROM referral_children WHERE reference = $1", referral.id),
        lambda c: c == 2,
    )
    view = (await referral.execute_update(ReferralWorkflow.review, approval())).screening_view
    assert [e.episode_id for e in view.missing_episodes] == episodes[::-1]
    assert all(e.matched_on == ["child"] and e.child_ids == ["C1"] for e in view.missing_episodes)
    assert view.missing_episodes[0].grade is MissingGrade.MEDIUM and view.missing_episodes[0].phase == "missing"
