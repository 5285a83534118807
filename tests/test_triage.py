"""The daily domestic-abuse triage on the time-skipping server: the day's list, its decisions, and escalation when a referral is not triaged in time."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import date, datetime, timedelta

from starter.synthetic import INSPECTOR, OFFICER, SCREENER, synthetic_adult, synthetic_vist
from starter.triage import Triages
from tests.helpers import LONDON, STARTED, advance_to, eventually, finished, next_local, refused, start_referral
from workflows.calendar import start_of_day
from workflows.models import (
    AdultInvolved,
    AdultRole,
    EscalationAcknowledgement,
    IncidentType,
    Rank,
    RiskGrade,
    triage_id,
)
from workflows.triage import DailyTriageWorkflow, TriageOpeningWorkflow
from workflows.triage_models import TriageDecision, TriageOpened, TriageOpening, TriageOutcome, TriageState


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=LONDON)


async def referral_at(env, queue, policy, moment, seed, adults: list[AdultInvolved] = (), **form) -> str:
    """A referral submitted at `moment` (the clock moved there), about a made-up family and the `adults` around it."""
    await advance_to(env, moment)
    submission = synthetic_vist(rng=random.Random(f"triage:{seed}:{uuid.uuid4()}"), occurred_at=moment - timedelta(hours=1), **form)
    submission.adults = list(adults)
    _, handle = await start_referral(env.client, queue, policy, submission=submission)
    return handle.id


async def listed_in_read_model(pool, reference: str) -> None:
    await eventually(lambda: pool.fetchval("SELECT count(*) FROM referrals WHERE reference = $1", reference), lambda n: n == 1)


async def open_triage(env, queue, policy, moment) -> TriageState:
    """Open the day's triage at `moment` as the API does (the schedule's run is tested on the dev server below)."""
    await advance_to(env, moment)
    opened = await Triages(env.client).open(moment.date(), policy, queue)
    assert opened.created and opened.state.triage_id == triage_id(moment.date())
    handle = env.client.get_workflow_handle_for(DailyTriageWorkflow.run, opened.state.triage_id)
    STARTED.append(handle)
    return await eventually(lambda: handle.query(DailyTriageWorkflow.state), lambda s: s.listed)


async def test_the_days_list_takes_domestic_abuse_below_high_risk_received_since_the_last_working_day(
    time_env, pool, time_queue, sla_policy
):
    monday = (await next_local(time_env, weekday=0, hour=7, after_days=4, avoiding=sla_policy.bank_holidays)).date()
    friday, saturday, sunday = monday - timedelta(days=3), monday - timedelta(days=2), monday - timedelta(days=1)
    thursday = friday - timedelta(days=1)
    family = f"Synthton-{uuid.uuid4().hex[:6]}"
    address = f"12 Imaginary Lane, Testtown TT{random.randrange(10**4):04d}"
    suspect = synthetic_adult(random.Random(f"triage:suspect:{uuid.uuid4()}"), AdultRole.SUSPECT)
    earlier = await referral_at(time_env, time_queue, sla_policy, at(thursday, 15), 1, family=family, address=address,
                                adults=[suspect])
    standard = await referral_at(time_env, time_queue, sla_policy, at(friday, 10), 2, risk=RiskGrade.STANDARD, children=2)
    high = await referral_at(time_env, time_queue, sla_policy, at(friday, 11), 3, risk=RiskGrade.HIGH)
    # The same family again at the weekend: its Thursday referral is its history.
    medium = await referral_at(time_env, time_queue, sla_policy, at(saturday, 12), 4, family=family, address=address,
                               adults=[suspect])
    neglect = await referral_at(time_env, time_queue, sla_policy, at(sunday, 9), 5, incident_type=IncidentType.NEGLECT,
                                risk=RiskGrade.STANDARD)
    too_late = await referral_at(time_env, time_queue, sla_policy, at(monday, 6), 6, risk=RiskGrade.STANDARD)
    for reference in (earlier, standard, high, medium, neglect, too_late):
        await listed_in_read_model(pool, reference)

    state = await open_triage(time_env, time_queue, sla_policy, at(monday, 7))
    assert state.triage_id == f"TRIAGE-{monday.isoformat()}"
    assert (state.received_since, state.received_until) == (start_of_day(friday), start_of_day(monday))
    by_reference = {item.reference: item for item in state.items}
    assert set(by_reference) == {standard, medium}
    assert (by_reference[standard].risk, by_reference[standard].children) == (RiskGrade.STANDARD, 2)
    assert by_reference[standard].history.prior_referrals == []
    assert [p.reference for p in by_reference[medium].history.prior_referrals] == [earlier]
    assert "child" in by_reference[medium].history.prior_referrals[0].matched_on
    # The same suspect as on Thursday: a repeat suspect, in the meeting's view of the family.
    assert by_reference[medium].history.repeat_suspects == ["A1"]
    assert by_reference[standard].history.adults == [] and by_reference[standard].history.children_on_plans == []
    # Due by the end of the triage day: the start of the next working day.
    assert all(item.due_at == start_of_day(monday + timedelta(days=1)) for item in state.items)
    rows = await eventually(
        lambda: pool.fetch("SELECT reference, prior_referrals FROM triage_items WHERE triage_id = $1", state.triage_id),
        lambda r: len(r) == 2,
    )
    assert {r["reference"]: r["prior_referrals"] for r in rows} == {standard: 0, medium: 1}

    # Opening the same day again finds it: no second list.
    again = await Triages(time_env.client).open(monday, sla_policy, time_queue)
    assert not again.created and again.state.triage_id == state.triage_id

    handle = time_env.client.get_workflow_handle_for(DailyTriageWorkflow.run, state.triage_id)
    for reference in (standard, medium):
        await handle.execute_update(
            DailyTriageWorkflow.decide,
            TriageDecision(actor=SCREENER, reference=reference, outcome=TriageOutcome.EARLY_HELP, rationale="Synthetic."),
        )
    result = await finished(time_env, handle)
    assert all(item.outcome is TriageOutcome.EARLY_HELP and item.decided_by == SCREENER.id for item in result.items)
    assert result.escalations == []


async def test_a_referral_not_triaged_by_the_next_working_day_escalates_after_the_bank_holidays(
    time_env, pool, time_queue, sla_policy
):
    # Received on a Wednesday, listed on Thursday; Friday and Monday are bank holidays in this policy.
    wednesday = (await next_local(time_env, weekday=2, hour=9, after_days=3, avoiding=sla_policy.bank_holidays)).date()
    thursday, friday, tuesday = (wednesday + timedelta(days=n) for n in (1, 2, 6))
    policy = sla_policy.model_copy(
        update={"bank_holidays": sorted({*sla_policy.bank_holidays, friday, friday + timedelta(days=3)})}
    )
    late = await referral_at(time_env, time_queue, policy, at(wednesday, 14), 10, risk=RiskGrade.MEDIUM)
    on_time = await referral_at(time_env, time_queue, policy, at(wednesday, 16), 11, risk=RiskGrade.STANDARD)
    for reference in (late, on_time):
        await listed_in_read_model(pool, reference)

    state = await open_triage(time_env, time_queue, policy, at(thursday, 7))
    handle = time_env.client.get_workflow_handle_for(DailyTriageWorkflow.run, state.triage_id)
    assert {item.reference for item in state.items} == {late, on_time}
    assert {item.due_at for item in state.items} == {start_of_day(tuesday)}
    await handle.execute_update(
        DailyTriageWorkflow.decide,
        TriageDecision(actor=SCREENER, reference=on_time, outcome=TriageOutcome.NO_FURTHER_ACTION, rationale="Synthetic."),
    )

    # Nothing through the bank holidays and the weekend between.
    await advance_to(time_env, at(tuesday, 0) - timedelta(minutes=10))
    assert (await handle.query(DailyTriageWorkflow.state)).escalations == []
    await advance_to(time_env, at(tuesday, 0, 1))
    state = await eventually(lambda: handle.query(DailyTriageWorkflow.state), lambda s: len(s.escalations) == 1)
    first = state.escalations[0]
    assert (first.reference, first.subject, first.rank, first.addressed_to) == (late, "triage", Rank.SERGEANT, "sergeant, MASH")
    assert first.escalation_id == f"{state.triage_id}.E1"
    assert first.due_at == start_of_day(tuesday)

    # Four hours on, the inspector; an acknowledgement is recorded against the referral.
    await advance_to(time_env, first.raised_at + timedelta(hours=4, minutes=1))
    state = await eventually(lambda: handle.query(DailyTriageWorkflow.state), lambda s: len(s.escalations) == 2)
    assert state.escalations[1].rank is Rank.INSPECTOR
    await handle.execute_update(
        DailyTriageWorkflow.acknowledge_escalation,
        EscalationAcknowledgement(actor=INSPECTOR, escalation_id=state.escalations[1].escalation_id),
    )

    # The late decision resolves the sergeant's open rung and ends the day's triage.
    await handle.execute_update(
        DailyTriageWorkflow.decide,
        TriageDecision(actor=SCREENER, reference=late, outcome=TriageOutcome.JOINT_VISIT, rationale="Synthetic."),
    )
    result = await finished(time_env, handle)
    assert [(e.rank, e.acknowledged_by, e.resolution) for e in result.escalations] == [
        (Rank.SERGEANT, None, "triaged"), (Rank.INSPECTOR, INSPECTOR.id, None)]
    rows = await eventually(
        lambda: pool.fetch(
            "SELECT reference, rank, acknowledged_by, resolution FROM escalations WHERE escalation_id LIKE $1 || '.E%' ORDER BY rung",
            state.triage_id,
        ),
        lambda r: len(r) == 2 and r[0]["resolution"] is not None,
    )
    assert [(r["reference"], r["rank"], r["acknowledged_by"], r["resolution"]) for r in rows] == [
        (late, "sergeant", None, "triaged"), (late, "inspector", INSPECTOR.id, None)]
    decided = await pool.fetchrow(
        "SELECT outcome, decided_by FROM triage_items WHERE triage_id = $1 AND reference = $2", state.triage_id, late
    )
    assert (decided["outcome"], decided["decided_by"]) == ("joint_visit", SCREENER.id)


async def test_a_triage_decision_by_the_wrong_role_or_on_an_unlisted_referral_changes_nothing(
    time_env, pool, time_queue, sla_policy
):
    tuesday = (await next_local(time_env, weekday=1, hour=9, after_days=3, avoiding=sla_policy.bank_holidays)).date()
    listed = await referral_at(time_env, time_queue, sla_policy, at(tuesday - timedelta(days=1), 11), 20)
    other = await referral_at(time_env, time_queue, sla_policy, at(tuesday - timedelta(days=1), 12), 21)
    for reference in (listed, other):
        await listed_in_read_model(pool, reference)
    state = await open_triage(time_env, time_queue, sla_policy, at(tuesday, 7))
    handle = time_env.client.get_workflow_handle_for(DailyTriageWorkflow.run, state.triage_id)
    decision = TriageDecision(actor=OFFICER, reference=listed, outcome=TriageOutcome.REFER_TO_MASH, rationale="Synthetic.")
    await refused(handle, DailyTriageWorkflow.decide, decision, "actor.role: a officer may not", query=DailyTriageWorkflow.state)
    unlisted = decision.model_copy(update={"actor": SCREENER, "reference": "REF-00000-00000"})
    await refused(handle, DailyTriageWorkflow.decide, unlisted, "reference: not on this day's triage list", query=DailyTriageWorkflow.state)
    await handle.execute_update(DailyTriageWorkflow.decide, decision.model_copy(update={"actor": SCREENER}))
    await refused(handle, DailyTriageWorkflow.decide, decision.model_copy(update={"actor": SCREENER}), "reference: already triaged (refer_to_mash)", query=DailyTriageWorkflow.state)
    await handle.execute_update(DailyTriageWorkflow.decide, decision.model_copy(update={"actor": SCREENER, "reference": other}))
    result = await finished(time_env, handle)
    assert [item.outcome for item in result.items] == [TriageOutcome.REFER_TO_MASH] * 2


async def test_the_daily_schedule_opens_todays_triage_once_and_only_on_a_working_day(dev_env, pool, task_queue, settings, sla_policy):
    """On the dev server (real time): the schedule as the stack creates it, triggered now, opens today's triage."""
    from datetime import timezone

    from starter.triage import SCHEDULE_ID, ensure_daily_triage_schedule
    from tests.conftest import make_worker

    today = datetime.now(timezone.utc).astimezone(LONDON).date()
    weekend_policy = sla_policy.model_copy(update={"bank_holidays": sorted({*sla_policy.bank_holidays, today})})
    worker_settings = settings.model_copy(update={"task_queue": task_queue})
    async with make_worker(dev_env.client, pool, settings, task_queue):
        # Today made a bank holiday: the run opens nothing.
        closed: TriageOpened = await dev_env.client.execute_workflow(
            TriageOpeningWorkflow.run, TriageOpening(policy=weekend_policy), id=f"opening-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )
        assert closed.triage_id is None and closed.reason == f"{today.isoformat()} is not a working day"

        working_policy = sla_policy.model_copy(update={"bank_holidays": [d for d in sla_policy.bank_holidays if d != today]})
        schedule_id = await ensure_daily_triage_schedule(dev_env.client, worker_settings, working_policy)
        schedule = dev_env.client.get_schedule_handle(schedule_id)
        try:
            described = await schedule.describe()
            calendar = described.schedule.spec.calendars[0]
            assert [(r.start, r.end) for r in calendar.day_of_week] == [(1, 5)]
            assert [r.start for r in calendar.hour] == [7]
            # Run now: it opens today's triage (when today is a weekday).
            await schedule.trigger()
            (run,) = await eventually(
                lambda: _schedule_results(dev_env.client, schedule_id), lambda results: len(results) == 1, timeout=30
            )
        finally:
            await schedule.delete()
        if today.weekday() >= 5:
            assert run.triage_id is None
            return
        assert (run.triage_id, run.reason) == (f"TRIAGE-{today.isoformat()}", None)
        # A second run the same day finds it open, and opens no second list.
        again: TriageOpened = await dev_env.client.execute_workflow(
            TriageOpeningWorkflow.run, TriageOpening(policy=working_policy), id=f"opening-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )
        assert (again.triage_id, again.reason) == (run.triage_id, "already opened")
    assert SCHEDULE_ID == schedule_id


async def _schedule_results(client, schedule_id: str) -> list[TriageOpened]:
    results = []
    async for run in client.list_workflows(f"WorkflowType = 'TriageOpeningWorkflow' AND TemporalScheduledById = '{schedule_id}'"):
        handle = client.get_workflow_handle_for(TriageOpeningWorkflow.run, run.id, run_id=run.run_id)
        try:
            results.append(await asyncio.wait_for(handle.result(), timeout=5))
        except TimeoutError:
            pass
    return results
