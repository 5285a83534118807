"""The rung rule rung by rung, closure waiting for open actions, and the monthly sample, in memory."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from starter.synthetic import (
    HEALTH_PARTNER,
    INSPECTOR,
    SCREENER,
    SERGEANT,
    approval,
    screening,
    strategy_discussion,
)
from tests.fast.referrals import closed_while_recording
from tests.helpers import LONDON, advance_to, finished, refused, start_referral, state_when
from workflows.action import AgreedActionWorkflow
from workflows.audit_models import MonthlySampleStart
from workflows.audit_sample import MonthlySampleWorkflow
from workflows.calendar import first_working_day
from workflows.models import (
    ActionCompletion,
    Actor,
    Agency,
    CloseReason,
    Closure,
    EscalationAcknowledgement,
    Rank,
    Role,
    ScreeningOutcome,
)
from workflows.referral import ReferralWorkflow

SUPERINTENDENT = Actor(id="SUPT-2701", role=Role.SUPERVISOR, agency=Agency.POLICE, rank=Rank.SUPERINTENDENT)


ADMIN = Actor(id="ADM-9001", role=Role.ADMIN)
UNRANKED = Actor(id="PS-2999", role=Role.SUPERVISOR)
# (who, rung, as its named addressee, why refused): the rung rule, rung by rung (0 sergeant, 1 inspector, 2 superintendent).
RUNG_REFUSALS = [
    (SERGEANT, 1, False, "actor.rank: rank sergeant may not acknowledge the inspector rung"),
    (SERGEANT, 2, False, "actor.rank: rank sergeant may not acknowledge the superintendent rung"),
    (INSPECTOR, 2, False, "actor.rank: rank inspector may not acknowledge the superintendent rung"),
    (UNRANKED, 0, False, "actor.rank: rank none may not acknowledge the sergeant rung"),
    (SCREENER, 0, False, "actor.role: a screener may not acknowledge an escalation"),
]
# (referral, who, rung, as its named addressee): its rank, a higher rank, its named addressee whatever
# their role or rank, an administrator.
RUNG_ACCEPTANCES = [
    (0, SERGEANT, 0, False), (0, SUPERINTENDENT, 1, False), (0, SCREENER, 2, True),
    (1, INSPECTOR, 0, False), (1, ADMIN, 1, False), (1, SERGEANT, 2, True),
]


async def test_each_rung_is_acknowledged_only_with_its_authority(fast_env, fast_queue, fakes, sla_policy):
    late = [(await start_referral(fast_env.client, fast_queue, sla_policy, seed=seed))[1] for seed in (20, 22, 23)]
    entered = (await late[-1].query(ReferralWorkflow.state)).stage_entered_at
    await advance_to(fast_env, entered + timedelta(hours=24 + 8, minutes=5))  # the deadline and two grace periods
    for handle in late:
        await state_when(handle, lambda s: len(s.escalations) == 3)
    update = ReferralWorkflow.acknowledge_escalation

    def ack(actor: Actor, referral: int, rung: int, named: bool = False) -> EscalationAcknowledgement:
        return EscalationAcknowledgement(actor=actor, escalation_id=f"{late[referral].id}.E{rung + 1}",
                                         as_named_addressee=named)

    for actor, rung, named, reason in RUNG_REFUSALS:
        await refused(late[0], update, ack(actor, 0, rung, named), reason)
    for referral, actor, rung, named in RUNG_ACCEPTANCES:
        state = await late[referral].execute_update(update, ack(actor, referral, rung, named))
        assert state.escalations[rung].acknowledged_by == actor.id
    await refused(late[0], update, ack(SUPERINTENDENT, 0, 2), "escalation_id: already acknowledged")
    # Each acknowledgement is recorded with the authority it was made on.
    recorded = [(f.actor.id, f.payload) for f in fakes.records.facts_of(late[1].id) if f.kind == "escalation_acknowledged"]
    assert [(actor_id, p["rank"], p["as_named_addressee"]) for actor_id, p in recorded] == [
        (INSPECTOR.id, "inspector", False), (ADMIN.id, None, False), (SERGEANT.id, "sergeant", True)]
    # A closed referral's open rungs are resolved: none is left to acknowledge.
    async with closed_while_recording(fast_env, late[2], fakes.holds):
        await refused(late[2], update, ack(SUPERINTENDENT, 2, 0), "escalation_id: resolved when the referral closed")


async def test_a_referral_with_open_actions_closes_once_they_are_done(fast_env, fast_queue, fakes, sla_policy):
    submission, handle = await start_referral(fast_env.client, fast_queue, sla_policy, seed=21)
    await handle.execute_update(ReferralWorkflow.review, approval())
    await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
    held_at = await fast_env.get_current_time()
    await handle.execute_update(
        ReferralWorkflow.record_strategy_discussion, strategy_discussion(held_at, section_47=False, actions=1))
    await refused(handle, ReferralWorkflow.close, Closure(actor=SCREENER, reason=CloseReason.WITHDRAWN),
                  "reason: 1 agreed actions are still open")
    action = fast_env.client.get_workflow_handle_for(AgreedActionWorkflow.run, f"{handle.id}.A1")  # owned by health
    await action.execute_update(AgreedActionWorkflow.complete, ActionCompletion(actor=HEALTH_PARTNER, note="Done."))
    result = await finished(fast_env, handle)
    assert result.close_reason is CloseReason.NO_SECTION_47
    assert fakes.records.kinds_of(f"{handle.id}.A1") == ["action_agreed", "action_completed"]


async def test_the_monthly_sample_is_drawn_on_the_first_working_day_only(fast_env, fast_queue, fakes, sla_policy):
    fakes.audit.candidates = ["REF-AAAAA-BBBBB", "REF-CCCCC-DDDDD"]
    now = await fast_env.get_current_time()
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    start = MonthlySampleStart(bank_holidays=sla_policy.bank_holidays)
    first = first_working_day(year, month, frozenset(sla_policy.bank_holidays))
    for day, drawn in [(first - timedelta(days=1), False), (first, True)]:
        await advance_to(fast_env, datetime(day.year, day.month, day.day, 7, tzinfo=LONDON))
        with fast_env.auto_time_skipping_disabled():
            result = await fast_env.client.execute_workflow(
                MonthlySampleWorkflow.run, start, id=f"sample-{uuid.uuid4().hex[:8]}", task_queue=fast_queue)
        assert result.drawn is drawn
    assert [r.month for r in fakes.audit.requests][-1:] == [f"{year}-{month:02d}"]
    assert [i.reference for i in result.worklist.items][:2] == fakes.audit.candidates[:2]
