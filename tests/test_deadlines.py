"""Deadlines in hours and working days, the escalation ladder, and regrades that move a deadline."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

from starter.synthetic import (
    INSPECTOR,
    QUORATE_ATTENDEES,
    SCREENER,
    SERGEANT,
    approval,
    screening,
    strategy_discussion,
    synthetic_vist,
)
from tests.helpers import LONDON, advance_to, eventually, finished, next_local, screened_and_told, seeded, skip, start_referral, state_when
from workflows.calendar import add_working_days, subtract_working_days
from workflows.models import (
    Absence,
    Agency,
    NamedRole,
    EscalationAcknowledgement,
    Rank,
    RiskGrade,
    RiskRegrade,
    ScreeningOutcome,
    Section46,
    Stage,
)
from workflows.referral import ReferralWorkflow

# England and Wales, 2026-2027: Christmas Day (Fri), Boxing Day substitute (Mon 28th), Good Friday, Easter Monday.
HOLIDAYS = frozenset({date(2026, 12, 25), date(2026, 12, 28), date(2027, 3, 26), date(2027, 3, 29)})


def about(measured: timedelta, expected: timedelta) -> bool:
    """Timers fire within a few milliseconds of their due time."""
    return abs(measured - expected) < timedelta(seconds=1)


def london(*args: int) -> datetime:
    return datetime(*args, tzinfo=LONDON)


def test_working_days_skip_weekends_and_bank_holidays():
    # Friday 17:00 plus one working day is Monday 17:00.
    assert add_working_days(london(2026, 11, 27, 17), 1, HOLIDAYS) == london(2026, 11, 30, 17)
    # Saturday counts from Monday.
    assert add_working_days(london(2026, 11, 28, 10), 1, HOLIDAYS) == london(2026, 11, 30, 10)
    # Christmas Eve (Thursday) plus one: Friday and the substitute Monday are bank holidays.
    assert add_working_days(london(2026, 12, 24, 15), 1, HOLIDAYS) == london(2026, 12, 29, 15)
    # Fifteen working days over Easter 2027: 17 weekdays less two bank holidays.
    assert add_working_days(london(2027, 3, 22, 9), 15, HOLIDAYS) == london(2027, 4, 14, 9)
    # The local time of day is kept across the change to summer time (28 March 2027).
    assert add_working_days(london(2027, 3, 25, 9), 1, HOLIDAYS).astimezone(LONDON).hour == 9
    # Two working days before a conference on the Tuesday after Easter is the Wednesday before Good Friday.
    assert subtract_working_days(london(2027, 3, 30, 10), 2, HOLIDAYS) == london(2027, 3, 24, 10)
    assert add_working_days(london(2026, 11, 27, 17), 0, HOLIDAYS) == london(2026, 11, 27, 17)


def test_the_policy_carries_england_and_wales_bank_holidays(sla_policy):
    this_year = datetime.now(timezone.utc).year
    christmas = [d for d in sla_policy.bank_holidays if d.month == 12 and d.day == 25]
    assert {d.year for d in christmas} >= {this_year, this_year + 1}
    # The Summer bank holiday of England and Wales, not Scotland's early-August one.
    assert all(d.day > 24 for d in sla_policy.bank_holidays if d.month == 8)


async def approved_referral(time_env, task_queue, sla_policy, seed, risk=RiskGrade.MEDIUM):
    from random import Random

    from starter.synthetic import synthetic_vist

    submission = synthetic_vist(rng=Random(seed), risk=risk)
    submission, handle = await start_referral(time_env.client, task_queue, sla_policy, submission=submission)
    state = await handle.execute_update(ReferralWorkflow.review, approval())
    assert state.stage is Stage.SCREENING
    return submission, handle, state


async def test_a_high_risk_referral_approved_on_a_friday_evening_is_due_for_screening_that_evening(
    time_env, pool, time_queue, sla_policy
):
    friday_evening = await next_local(time_env, weekday=4, hour=18, avoiding=sla_policy.bank_holidays)
    await advance_to(time_env, friday_evening)
    _, handle, state = await approved_referral(time_env, time_queue, sla_policy, seed=36, risk=RiskGrade.HIGH)
    # Four hours by the clock (the policy's high-risk time), not one working day: Monday.
    assert state.deadline - state.stage_entered_at == timedelta(hours=4)
    assert state.deadline.astimezone(LONDON).date() == friday_evening.date()
    assert await pool.fetchval("SELECT deadline FROM referrals WHERE reference = $1", handle.id) == state.deadline

    # Police protection used: two hours, whatever the grade agreed since.
    protected = synthetic_vist(rng=seeded(37), risk=RiskGrade.HIGH)
    protected.section_46 = Section46(
        used_at=protected.incident.occurred_at, child_ids=["C1"], accommodation="Synthetic foster placement."
    )
    _, handle = await start_referral(time_env.client, time_queue, sla_policy, submission=protected)
    state = await handle.execute_update(ReferralWorkflow.review, approval())
    assert state.deadline - state.stage_entered_at == timedelta(hours=2)
    state = await handle.execute_update(
        ReferralWorkflow.regrade_risk, RiskRegrade(actor=SCREENER, risk=RiskGrade.MEDIUM, reason="Synthetic reason.")
    )
    assert state.deadline - state.stage_entered_at == timedelta(hours=2)


async def test_screening_deadline_over_a_weekend_escalates_up_the_ladder(time_env, pool, time_queue, sla_policy):
    # An ordinary weekend: the bank-holiday case has a test of its own.
    friday = await next_local(time_env, weekday=4, hour=15, avoiding=sla_policy.bank_holidays)
    await advance_to(time_env, friday)
    submission, handle, state = await approved_referral(time_env, time_queue, sla_policy, seed=30)
    deadline = state.deadline.astimezone(LONDON)
    assert (deadline.weekday(), deadline.hour) == (0, 15)  # Monday, 15:00
    assert deadline - friday < timedelta(days=3, minutes=5)

    await advance_to(time_env, deadline - timedelta(minutes=30))
    assert (await handle.query(ReferralWorkflow.state)).escalations == []

    await advance_to(time_env, deadline + timedelta(minutes=1))
    state = await state_when(handle, lambda s: len(s.escalations) == 1)
    first = state.escalations[0]
    assert (first.rung, first.rank, first.subject) == (0, Rank.SERGEANT, "screening")
    assert first.due_at == state.deadline
    assert timedelta(0) <= first.raised_at - first.due_at < timedelta(minutes=2)

    # The next rung follows after the grace period (4 hours by default).
    await advance_to(time_env, first.raised_at + timedelta(hours=4, minutes=1))
    state = await state_when(handle, lambda s: len(s.escalations) == 2)
    second = state.escalations[1]
    assert second.rank is Rank.INSPECTOR
    assert about(second.raised_at - first.raised_at, timedelta(hours=4))

    # Acknowledging the inspector's alert gives a fresh grace period before the superintendent.
    await skip(time_env, timedelta(hours=2))
    acknowledged = await handle.execute_update(
        ReferralWorkflow.acknowledge_escalation,
        EscalationAcknowledgement(actor=INSPECTOR, escalation_id=second.escalation_id),
    )
    ack_at = acknowledged.escalations[1].acknowledged_at
    await advance_to(time_env, second.raised_at + timedelta(hours=4, minutes=1))
    assert len((await handle.query(ReferralWorkflow.state)).escalations) == 2
    await advance_to(time_env, ack_at + timedelta(hours=4, minutes=1))
    state = await state_when(handle, lambda s: len(s.escalations) == 3)
    assert state.escalations[2].rank is Rank.SUPERINTENDENT
    assert about(state.escalations[2].raised_at - ack_at, timedelta(hours=4))

    # The ladder has three rungs: nothing more however late it gets.
    await skip(time_env, timedelta(days=2))
    assert len((await handle.query(ReferralWorkflow.state)).escalations) == 3

    await screened_and_told(time_env.client, handle, screening(submission, ScreeningOutcome.EARLY_HELP))
    await finished(time_env, handle)
    rows = await eventually(
        lambda: pool.fetch(
            "SELECT rank, acknowledged_by FROM escalations WHERE reference = $1 ORDER BY rung", handle.id
        ),
        lambda r: len(r) == 3 and r[1]["acknowledged_by"] is not None,
    )
    assert [r["rank"] for r in rows] == ["sergeant", "inspector", "superintendent"]
    assert rows[1]["acknowledged_by"] == INSPECTOR.id


async def test_screening_deadline_over_bank_holidays(time_env, pool, time_queue, sla_policy):
    # The Thursday before the first Good Friday ahead: Friday and Easter Monday are bank holidays.
    now = (await time_env.get_current_time()).astimezone(LONDON).date()
    good_friday = next(
        d for d in sla_policy.bank_holidays if d > now + timedelta(days=1) and d.weekday() == 4
        and d + timedelta(days=3) in sla_policy.bank_holidays
    )
    thursday = good_friday - timedelta(days=1)
    await advance_to(time_env, datetime(thursday.year, thursday.month, thursday.day, 15, tzinfo=LONDON))
    submission, handle, state = await approved_referral(time_env, time_queue, sla_policy, seed=31)
    deadline = state.deadline.astimezone(LONDON)
    assert deadline.date() == thursday + timedelta(days=5)  # the Tuesday after Easter Monday
    assert deadline.hour == 15

    await advance_to(time_env, deadline - timedelta(minutes=10))
    assert (await handle.query(ReferralWorkflow.state)).escalations == []
    await advance_to(time_env, deadline + timedelta(minutes=1))
    state = await state_when(handle, lambda s: len(s.escalations) == 1)
    assert state.escalations[0].addressed_to == "sergeant, CRU"

    # Screening done: the ladder stops.
    await screened_and_told(time_env.client, handle, screening(submission, ScreeningOutcome.EARLY_HELP))
    result = await finished(time_env, handle)
    assert len(result.escalations) == 1


async def test_regrade_tightens_a_running_deadline(time_env, pool, time_queue, sla_policy):
    _, handle = await start_referral(time_env.client, time_queue, sla_policy, seed=32)
    state = await handle.query(ReferralWorkflow.state)
    entered = state.stage_entered_at
    assert state.deadline - entered == timedelta(hours=24)  # medium risk: 24 hours for review

    await skip(time_env, timedelta(hours=1))
    assert (await handle.query(ReferralWorkflow.state)).escalations == []
    regraded = await handle.execute_update(
        ReferralWorkflow.regrade_risk,
        RiskRegrade(actor=SERGEANT, risk=RiskGrade.HIGH, reason="Synthetic: new information at the scene."),
    )
    assert regraded.risk is RiskGrade.HIGH
    assert regraded.deadline - entered == timedelta(hours=2)  # high risk: 2 hours
    assert regraded.escalations == []

    await advance_to(time_env, entered + timedelta(hours=2, minutes=1))
    state = await state_when(handle, lambda s: len(s.escalations) == 1)
    assert state.escalations[0].due_at == entered + timedelta(hours=2)

    # Relaxing the grade moves the deadline back at once.
    relaxed = await handle.execute_update(
        ReferralWorkflow.regrade_risk,
        RiskRegrade(actor=SERGEANT, risk=RiskGrade.MEDIUM, reason="Synthetic: risk reassessed."),
    )
    assert relaxed.deadline - entered == timedelta(hours=24)
    rows = await eventually(
        lambda: pool.fetch("SELECT from_risk, to_risk, actor_id, reason FROM risk_regrades WHERE reference = $1 ORDER BY seq", handle.id),
        lambda r: len(r) == 2,
    )
    assert [(r["from_risk"], r["to_risk"], r["actor_id"]) for r in rows] == [
        ("medium", "high", SERGEANT.id),
        ("high", "medium", SERGEANT.id),
    ]
    row = await pool.fetchrow("SELECT risk, deadline FROM referrals WHERE reference = $1", handle.id)
    assert row["risk"] == "medium"
    assert row["deadline"] == relaxed.deadline  # the read model's deadline moved with the grade


async def test_a_meeting_that_raises_the_grade_changes_it_at_once(time_env, pool, time_queue, sla_policy):
    # The inspection finding: raised to high at a meeting, still "medium" five hours later.
    submission, handle, _ = await approved_referral(time_env, time_queue, sla_policy, seed=35)
    await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
    held_at = await time_env.get_current_time()
    discussion = strategy_discussion(held_at, section_47=True, actions=0)
    discussion.risk = RiskGrade.HIGH
    state = await handle.execute_update(ReferralWorkflow.record_strategy_discussion, discussion)
    assert state.risk is RiskGrade.HIGH
    row = await eventually(
        lambda: pool.fetchrow(
            "SELECT r.risk, g.from_risk, g.reason, g.actor_id FROM referrals r JOIN risk_regrades g USING (reference) "
            "WHERE r.reference = $1", handle.id),
        lambda r: r is not None,
    )
    assert dict(row) == {
        "risk": "high", "from_risk": "medium", "reason": "graded at the strategy discussion", "actor_id": SCREENER.id,
    }


async def test_agreed_action_reminder_then_escalation_to_owners_supervisor(time_env, pool, time_queue, sla_policy):
    submission, handle, _ = await approved_referral(time_env, time_queue, sla_policy, seed=33)
    await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
    held_at = await time_env.get_current_time()
    state = await handle.execute_update(
        ReferralWorkflow.record_strategy_discussion, strategy_discussion(held_at, section_47=False, actions=1)
    )
    (action,) = state.actions
    assert action.owner.agency is Agency.HEALTH

    await advance_to(time_env, action.deadline - timedelta(hours=25))
    state = await handle.query(ReferralWorkflow.state)
    assert state.actions[0].reminded_at is None
    await advance_to(time_env, action.deadline - timedelta(hours=23))
    state = await state_when(handle, lambda s: s.actions[0].reminded_at is not None)
    assert state.actions[0].escalations == []

    await advance_to(time_env, action.deadline + timedelta(minutes=1))
    state = await state_when(handle, lambda s: len(s.actions[0].escalations) == 1)
    escalation = state.actions[0].escalations[0]
    assert escalation.addressed_to == "Health Lead Synthetic (health)"
    assert escalation.subject == action.action_id
    row = await eventually(
        lambda: pool.fetchrow(
            "SELECT a.reminded_at, e.addressed_to FROM agreed_actions a JOIN escalations e ON e.subject = a.action_id "
            "WHERE a.action_id = $1", action.action_id),
        lambda r: r is not None,
    )
    assert row["reminded_at"] is not None and row["addressed_to"] == "Health Lead Synthetic (health)"


async def test_a_discussion_without_the_investigating_officer_is_inquorate_and_escalated(time_env, pool, time_queue, sla_policy):
    submission, handle, _ = await approved_referral(time_env, time_queue, sla_policy, seed=37)
    await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
    held_at = await time_env.get_current_time()
    # Every agency is there, but police sent someone other than the investigating officer.
    stand_in = [a if a.named_role is not NamedRole.INVESTIGATING_OFFICER
                else a.model_copy(update={"role": "duty sergeant", "named_role": None}) for a in QUORATE_ATTENDEES]
    discussion = strategy_discussion(held_at, section_47=False, actions=0, attendees=stand_in).model_copy(
        update={"absences": [Absence(named_role=NamedRole.INVESTIGATING_OFFICER, reason="Synthetic: on a rest day.")]})
    state = await handle.execute_update(ReferralWorkflow.record_strategy_discussion, discussion)
    assert state.strategy_discussion_inquorate is True
    (escalation,) = state.escalations
    assert (escalation.reason, escalation.subject) == ("inquorate", "strategy_discussion")
    fact = await eventually(
        lambda: pool.fetchrow(
            "SELECT payload FROM referral_events WHERE reference = $1 AND kind = 'strategy_discussion_held'", handle.id
        ),
        lambda r: r is not None,
    )
    payload = json.loads(fact["payload"])
    assert payload["quorate"] is False and payload["missing_roles"] == ["investigating_officer"]
    assert payload["absences"] == [{"named_role": "investigating_officer", "reason": "Synthetic: on a rest day."}]
    assert (await pool.fetchval("SELECT quorate FROM strategy_discussions WHERE reference = $1", handle.id)) is False


async def test_inquorate_strategy_discussion_is_marked_and_escalated(time_env, pool, time_queue, sla_policy):
    submission, handle, _ = await approved_referral(time_env, time_queue, sla_policy, seed=34)
    await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
    held_at = await time_env.get_current_time()
    no_health = [a for a in QUORATE_ATTENDEES if a.agency is not Agency.HEALTH]
    state = await handle.execute_update(
        ReferralWorkflow.record_strategy_discussion,
        strategy_discussion(held_at, section_47=True, actions=0, attendees=no_health),
    )
    assert state.strategy_discussion_inquorate is True
    (escalation,) = state.escalations
    assert escalation.reason == "inquorate"
    row = await eventually(
        lambda: pool.fetchrow("SELECT quorate FROM strategy_discussions WHERE reference = $1", handle.id),
        lambda r: r is not None,
    )
    assert row["quorate"] is False
