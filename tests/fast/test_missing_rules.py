"""A missing episode's rules, in memory: the fail-safe grade, who may keep a low grade, who reviews a
high-risk episode, and a regrade moving every deadline at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError

from starter.synthetic import INSPECTOR, OFFICER, SERGEANT, synthetic_missing_report
from tests.helpers import eventually, seeded, start_episode
from workflows.missing import MissingEpisodeWorkflow
from workflows.missing_models import (
    EpisodeRegrade,
    EpisodeReview,
    LowGradeDecision,
    RiskIndicator,
    TracingActivity,
    TracingRecord,
)
from workflows.models import Actor, MissingGrade, Rank, Role, episode_id

OTHER_SERGEANT = Actor(id="PS-2002", role=Role.SUPERVISOR, rank=Rank.SERGEANT)


def state_of(handle):
    return lambda: handle.query(MissingEpisodeWorkflow.state)


async def refusal(handle, update, decision) -> str:
    """The refusal's field, with the episode exactly as it was before the decision."""
    before = await handle.query(MissingEpisodeWorkflow.state)
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await handle.execute_update(update, decision)
    assert await handle.query(MissingEpisodeWorkflow.state) == before
    return str(caught.value.cause.message)


async def low_grade_episode(fast_env, fast_queue, sla_policy, seed: str, reported_by: Actor = OFFICER):
    report = synthetic_missing_report(
        rng=seeded(seed), grade=MissingGrade.LOW, indicators=[RiskIndicator.SELF_HARM, RiskIndicator.IN_CARE]
    )
    _, handle = await start_episode(fast_env.client, fast_queue, sla_policy, report, reported_by=reported_by)
    return handle


async def test_a_low_grade_with_self_harm_is_treated_high_until_another_supervisor_keeps_it(
    fast_env, fast_queue, fakes, sla_policy
):
    handle = await low_grade_episode(fast_env, fast_queue, sla_policy, "fail-safe", reported_by=SERGEANT)
    state = await handle.query(MissingEpisodeWorkflow.state)
    assert (state.grade, state.assessed_grade, state.low_grade_pending) == (MissingGrade.HIGH, MissingGrade.LOW, True)
    high = sla_policy.missing.risk_assessment_review.high.hours
    assert state.review_due == state.reported_at + timedelta(hours=high)

    keep = LowGradeDecision(actor=OFFICER, keep_low=True, rationale="Synthetic rationale.")
    assert (await refusal(handle, MissingEpisodeWorkflow.decide_low_grade, keep)).startswith("actor.role:")
    # The sergeant who graded it low may not approve their own grade.
    keep = keep.model_copy(update={"actor": SERGEANT})
    assert (await refusal(handle, MissingEpisodeWorkflow.decide_low_grade, keep)).startswith("actor.id:")

    keep = keep.model_copy(update={"actor": OTHER_SERGEANT})
    state = await handle.execute_update(MissingEpisodeWorkflow.decide_low_grade, keep)
    low = sla_policy.missing.risk_assessment_review.low.hours
    assert (state.grade, state.low_grade_pending) == (MissingGrade.LOW, False)
    assert state.review_due == state.reported_at + timedelta(hours=low)
    assert (await refusal(handle, MissingEpisodeWorkflow.decide_low_grade, keep)).startswith("keep_low:")
    assert fakes.records.kinds_of(handle.id)[-1] == "low_grade_decided"


async def test_a_refused_low_grade_makes_the_episode_high(fast_env, fast_queue, fakes, sla_policy):
    handle = await low_grade_episode(fast_env, fast_queue, sla_policy, "refused")
    refuse = LowGradeDecision(actor=SERGEANT, keep_low=False, rationale="Synthetic rationale.")
    state = await handle.execute_update(MissingEpisodeWorkflow.decide_low_grade, refuse)
    assert (state.grade, state.assessed_grade, state.low_grade_pending) == (MissingGrade.HIGH, MissingGrade.HIGH, False)


async def test_a_high_risk_episode_is_reviewed_by_an_inspector_and_tracing_restarts_its_clock(
    fast_env, fast_queue, fakes, sla_policy
):
    report = synthetic_missing_report(rng=seeded("high"), grade=MissingGrade.HIGH)
    _, handle = await start_episode(fast_env.client, fast_queue, sla_policy, report)
    review = EpisodeReview(actor=SERGEANT, tracing_done="Synthetic: home searched.", next_steps="Synthetic: friends.")
    assert (await refusal(handle, MissingEpisodeWorkflow.review, review)).startswith("actor.rank:")

    state = await handle.execute_update(MissingEpisodeWorkflow.review, review.model_copy(update={"actor": INSPECTOR}))
    every = sla_policy.missing.review_every.high.hours
    assert state.review_due == state.reviews[-1].reviewed_at + timedelta(hours=every)

    traced = await handle.execute_update(
        MissingEpisodeWorkflow.record_tracing, TracingRecord(actor=OFFICER, activity=TracingActivity.CCTV_REVIEWED)
    )
    quiet = sla_policy.missing.tracing_quiet.high.hours
    assert traced.tracing_due == traced.last_tracing_at + timedelta(hours=quiet)


async def test_a_regrade_moves_every_deadline_at_once(fast_env, fast_queue, fakes, sla_policy):
    _, handle = await start_episode(fast_env.client, fast_queue, sla_policy, seed="regrade")
    before = await handle.query(MissingEpisodeWorkflow.state)
    assert before.grade is MissingGrade.MEDIUM
    regrade = EpisodeRegrade(actor=SERGEANT, grade=MissingGrade.HIGH, reason="Synthetic: seen with an unknown adult.")
    after = await handle.execute_update(MissingEpisodeWorkflow.regrade, regrade)
    timetable = sla_policy.missing
    assert after.review_due == before.reported_at + timedelta(hours=timetable.risk_assessment_review.high.hours)
    assert after.tracing_due == before.reported_at + timedelta(hours=timetable.tracing_quiet.high.hours)
    assert after.review_due < before.review_due and after.tracing_due < before.tracing_due
    assert (await refusal(handle, MissingEpisodeWorkflow.regrade, regrade)).startswith("grade:")


@pytest.mark.parametrize(("episodes", "threshold", "flagged"), [(3, 3, True), (2, 3, False), (2, 2, True)])
async def test_a_child_with_the_policys_count_of_episodes_in_its_window_is_flagged_repeat_missing(
    fast_env, fast_queue, fakes, sla_policy, episodes, threshold, flagged
):
    policy = sla_policy.model_copy(deep=True)
    policy.missing.repeat_missing_episodes = threshold
    report = synthetic_missing_report(rng=seeded(f"repeat-{episodes}-{threshold}"))
    fakes.records.episode_counts[episode_id(report.report_id)] = episodes
    _, handle = await start_episode(fast_env.client, fast_queue, policy, report)

    state = await eventually(state_of(handle), lambda s: s.episodes_in_window is not None)
    assert (state.episodes_in_window, state.repeat_missing) == (episodes, flagged)
    (query,) = [q for q in fakes.records.count_queries if q.episode_id == handle.id]
    assert query.since == state.reported_at - timedelta(days=policy.missing.repeat_missing_days)
    # Counted once this report is in the read model (the count includes it).
    # Then the child's trigger plan is read: a repeat child has none here, which escalates.
    kinds = await eventually(lambda: fakes.records.kinds_of(handle.id), lambda k: len(k) >= (4 if flagged else 2))
    assert kinds == (
        ["missing_reported", "repeat_missing_flagged", "trigger_plan_read", "escalation_raised"]
        if flagged else ["missing_reported", "trigger_plan_read"]
    )
    state = await handle.query(MissingEpisodeWorkflow.state)
    assert [entry.kind for entry in state.history] == kinds[:2 if flagged else 1]
    assert state.trigger_plan_required is flagged
    if flagged:
        fact = fakes.records.facts_of(handle.id)[1]
        assert fact.payload == {"episodes": episodes, "window_days": 90}
