"""Rung authority, agreed-action permissions, closure with open actions, and the monthly sample, in memory."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError

from starter.synthetic import (
    AUDITOR,
    HEALTH_PARTNER,
    INSPECTOR,
    SCREENER,
    SERGEANT,
    approval,
    screening,
    strategy_discussion,
)
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


async def test_each_rung_is_acknowledged_only_with_its_rank_or_higher(fast_env, fast_queue, fakes, sla_policy):
    _, handle = await start_referral(fast_env.client, fast_queue, sla_policy, seed=20)
    entered = (await handle.query(ReferralWorkflow.state)).stage_entered_at
    await advance_to(fast_env, entered + timedelta(hours=24 + 8, minutes=5))  # the deadline and two grace periods
    await state_when(handle, lambda s: len(s.escalations) == 3)
    rung = {n: f"{handle.id}.E{n + 1}" for n in range(3)}
    update = ReferralWorkflow.acknowledge_escalation

    def ack(actor: Actor, n: int) -> EscalationAcknowledgement:
        return EscalationAcknowledgement(actor=actor, escalation_id=rung[n])

    await refused(handle, update, ack(SERGEANT, 1), "actor.rank: rank sergeant may not acknowledge the inspector rung")
    await refused(handle, update, ack(INSPECTOR, 2), "actor.rank: rank inspector")
    await refused(handle, update, ack(Actor(id="PS-2999", role=Role.SUPERVISOR), 0), "actor.rank: rank none")
    await refused(handle, update, ack(SCREENER, 0), "actor.role")
    for actor, n in [(SERGEANT, 0), (SUPERINTENDENT, 1), (SUPERINTENDENT, 2)]:
        state = await handle.execute_update(update, ack(actor, n))
        assert state.escalations[n].acknowledged_by == actor.id
    await refused(handle, update, ack(SUPERINTENDENT, 2), "escalation_id")  # once only


async def test_action_permissions_and_closure_waiting_for_actions(fast_env, fast_queue, fakes, sla_policy):
    submission, handle = await start_referral(fast_env.client, fast_queue, sla_policy, seed=21)
    await handle.execute_update(ReferralWorkflow.review, approval())
    await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
    held_at = await fast_env.get_current_time()
    await handle.execute_update(
        ReferralWorkflow.record_strategy_discussion, strategy_discussion(held_at, section_47=False, actions=1))
    await refused(handle, ReferralWorkflow.close, Closure(actor=SCREENER, reason=CloseReason.WITHDRAWN),
                  "reason: 1 agreed actions are still open")
    action = fast_env.client.get_workflow_handle_for(AgreedActionWorkflow.run, f"{handle.id}.A1")  # owned by health
    police = Actor(id="PC-1002", role=Role.OFFICER, agency=Agency.POLICE)
    for actor, reason in [
        (police, "actor.agency: police staff may not complete an action owned by health"),
        (AUDITOR, "actor.role: a auditor may not complete an agreed action"),
    ]:
        with pytest.raises(WorkflowUpdateFailedError) as caught:
            await action.execute_update(AgreedActionWorkflow.complete, ActionCompletion(actor=actor, note="x"))
        assert reason in str(caught.value.cause)
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
