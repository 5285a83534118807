"""The daily triage's rules in memory: which days hold one, the window its list is asked for, its deadline, its decisions and escalations."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

from starter.synthetic import OFFICER, SCREENER, SERGEANT
from tests.helpers import LONDON, STARTED, eventually, finished, refused
from workflows.facts import FactKind
from workflows.models import EscalationAcknowledgement, Rank, RiskGrade, triage_id
from workflows.triage import DailyTriageWorkflow
from workflows.triage_models import TriageCandidate, TriageDecision, TriageOutcome, TriageStart

# A fixed week, long past: Good Friday 2 April 2027 and Easter Monday 5 April 2027 are its bank holidays.
GOOD_FRIDAY, EASTER_MONDAY = date(2027, 4, 2), date(2027, 4, 5)


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=LONDON)


def candidate(received: datetime, risk: RiskGrade = RiskGrade.MEDIUM) -> TriageCandidate:
    number = uuid.uuid4().int % 10**10
    code = f"{number:010d}"
    return TriageCandidate(reference=f"REF-{code[:5]}-{code[5:]}", submitted_at=received, risk=risk, children=1)


async def run_triage(env, queue, policy, day: date):
    handle = await env.client.start_workflow(
        DailyTriageWorkflow.run, TriageStart(day=day, policy=policy), id=triage_id(day), task_queue=queue
    )
    STARTED.append(handle)
    return handle


def with_easter(policy):
    return policy.model_copy(update={"bank_holidays": sorted({*policy.bank_holidays, GOOD_FRIDAY, EASTER_MONDAY})})


async def test_no_triage_is_held_on_a_weekend_or_a_bank_holiday(fast_env, fast_queue, fakes):
    policy = with_easter(fakes.policy.policy)
    for day in (date(2027, 4, 3), GOOD_FRIDAY, EASTER_MONDAY):
        state = await finished(fast_env, await run_triage(fast_env, fast_queue, policy, day))
        assert (state.working_day, state.listed, state.items) == (False, False, [])
    assert fakes.triage.queries == []


async def test_the_list_covers_everything_received_since_the_last_working_day_began(fast_env, fast_queue, fakes):
    policy = with_easter(fakes.policy.policy)
    thursday = date(2027, 4, 1)
    fakes.triage.candidates = [candidate(midnight(thursday) + timedelta(hours=h)) for h in (-1, 10, 24 * 4 + 23)]
    tuesday = date(2027, 4, 6)
    handle = await run_triage(fast_env, fast_queue, policy, tuesday)
    state = await eventually(lambda: handle.query(DailyTriageWorkflow.state), lambda s: s.listed)
    # After Easter: Thursday, Good Friday, the weekend and Easter Monday, up to Tuesday's start.
    assert (fakes.triage.queries[-1].since, fakes.triage.queries[-1].until) == (midnight(thursday), midnight(tuesday))
    assert [item.submitted_at for item in state.items] == [c.submitted_at for c in fakes.triage.candidates[1:]]
    # Due by the end of Tuesday: the next working day's start.
    assert {item.due_at for item in state.items} == {midnight(date(2027, 4, 7))}


async def test_a_late_listing_escalates_at_once_and_a_decision_resolves_it(fast_env, fast_queue, fakes):
    policy = fakes.policy.policy
    # A past working day's triage opened late: its referrals are already overdue.
    day = (await fast_env.get_current_time()).astimezone(LONDON).date() - timedelta(days=14)
    while day.weekday() >= 5 or day in policy.bank_holidays:
        day -= timedelta(days=1)
    late, other = candidate(midnight(day) - timedelta(hours=3)), candidate(midnight(day) - timedelta(hours=2))
    fakes.triage.candidates = [late, other]
    handle = await run_triage(fast_env, fast_queue, policy, day)
    state = await eventually(lambda: handle.query(DailyTriageWorkflow.state), lambda s: len(s.escalations) == 2)
    assert {(e.reference, e.rank, e.subject) for e in state.escalations} == {
        (late.reference, Rank.SERGEANT, "triage"), (other.reference, Rank.SERGEANT, "triage")}

    decision = TriageDecision(actor=OFFICER, reference=late.reference, outcome=TriageOutcome.REFER_TO_MARAC,
                              rationale="Synthetic.")
    await refused(handle, DailyTriageWorkflow.decide, decision, "actor.role: a officer may not record a triage decision",
                  query=DailyTriageWorkflow.state)
    await handle.execute_update(DailyTriageWorkflow.decide, decision.model_copy(update={"actor": SERGEANT}))
    sergeant_rung = next(e for e in state.escalations if e.reference == other.reference)
    await handle.execute_update(
        DailyTriageWorkflow.acknowledge_escalation,
        EscalationAcknowledgement(actor=SERGEANT, escalation_id=sergeant_rung.escalation_id),
    )
    await handle.execute_update(DailyTriageWorkflow.decide, decision.model_copy(
        update={"actor": SCREENER, "reference": other.reference, "outcome": TriageOutcome.SINGLE_AGENCY}))
    result = await finished(fast_env, handle)
    assert {(e.reference, e.resolution, e.acknowledged_by) for e in result.escalations} == {
        (late.reference, "triaged", None), (other.reference, None, SERGEANT.id)}

    # Every fact is on the triage's stream and under the referral it is about.
    facts = [f for f in fakes.records.facts if f.stream == handle.id]
    assert {f.reference for f in facts} == {late.reference, other.reference}
    kinds = [f.kind for f in facts if f.reference == late.reference]
    assert kinds[0] is FactKind.TRIAGE_LISTED and FactKind.TRIAGE_DECIDED in kinds
    decided = next(f for f in facts if f.kind is FactKind.TRIAGE_DECIDED and f.reference == late.reference)
    assert (decided.actor.id, decided.payload["outcome"], decided.risk) == (SERGEANT.id, "refer_to_marac", RiskGrade.MEDIUM)
