"""The role matrix and the stage order, in memory: every decision refused to every role that may not make it,
and every referral decision refused in every stage where it does not belong, each leaving the referral as it was."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import timedelta

import pytest
from temporalio.client import WorkflowHandle

from starter.synthetic import SCREENER, SERGEANT
from tests.helpers import advance_to, refused, state_when
from tests.fast.referrals import (
    ACTION_DECISIONS,
    OPEN,
    REFERRAL_DECISIONS,
    Setting,
    closed_while_recording,
    referral_at,
    staff,
)
from workflows.models import Agency, CloseReason, Closure, OverrideRequest, RiskGrade, RiskRegrade, Role, Stage
from workflows.referral import ReferralWorkflow

DECISIONS = REFERRAL_DECISIONS | ACTION_DECISIONS
# Where the matrix brings a referral for each decision to be made.
WHERE = {
    "review": Stage.SUPERVISOR_REVIEW,
    "resubmit": Stage.RETURNED_TO_OFFICER,
    "screen": Stage.SCREENING,
    "request_override": Stage.SCREENING,
    "decide_override": Stage.SCREENING,
    "strategy_discussion": Stage.STRATEGY_DISCUSSION,
    "book_conference": Stage.CONFERENCE,
    "conference_outcome": Stage.CONFERENCE,
    "regrade_risk": Stage.SUPERVISOR_REVIEW,
    "close": Stage.SUPERVISOR_REVIEW,
    "acknowledge": Stage.SUPERVISOR_REVIEW,
    "complete_action": Stage.ACTIONS,
    "reassign_action": Stage.ACTIONS,
    "acknowledge_action": Stage.ACTIONS,
}


async def decidable(name: str, env, queue, policy, fakes) -> tuple[WorkflowHandle, WorkflowHandle | None, Setting]:
    """Where `name` could be made now by a role allowed it: the handle to send it to, the referral's
    (for an agreed action's decision), and what the decision names."""
    submission, referral = await referral_at(
        env, queue, policy, fakes, WHERE[name], f"matrix:{name}", repeat=name.endswith("override"))
    setting = Setting(submission, await env.get_current_time())
    if name == "decide_override":
        await referral.execute_update(ReferralWorkflow.request_override, OverrideRequest(actor=SCREENER, reason="x"))
    if name == "conference_outcome":
        booking = REFERRAL_DECISIONS["book_conference"].build(setting, SCREENER)
        booking.conference_at = setting.now + timedelta(minutes=2)
        await referral.execute_update(ReferralWorkflow.book_conference, booking)
        setting.now = booking.conference_at
    if name == "acknowledge":
        await advance_to(env, (await referral.query(ReferralWorkflow.state)).deadline + timedelta(minutes=1))
        setting.escalation_id = (await state_when(referral, lambda s: bool(s.escalations))).escalations[0].escalation_id
    if name not in ACTION_DECISIONS:
        return referral, None, setting
    (action,) = (await referral.query(ReferralWorkflow.state)).actions
    if name == "acknowledge_action":
        await advance_to(env, action.deadline + timedelta(minutes=1))
        late = await state_when(referral, lambda s: bool(s.actions[0].escalations))
        setting.escalation_id = late.actions[0].escalations[0].escalation_id
    return env.client.get_workflow_handle(action.action_id), referral, setting


@pytest.mark.parametrize("name", DECISIONS)
async def test_every_role_that_may_not_make_a_decision_is_refused(name, fast_env, fast_queue, fakes, sla_policy):
    kind = DECISIONS[name]
    handle, referral, setting = await decidable(name, fast_env, fast_queue, sla_policy, fakes)
    # Of the action's own agency (health), so that an action's decision is refused for the role alone.
    agency = Agency.HEALTH if referral is not None else Agency.POLICE
    forbidden = [role for role in Role if role not in kind.allowed]
    assert forbidden, name
    for role in forbidden:
        await refused(handle, kind.update, kind.build(setting, staff(role, agency)),
                      f"actor.role: a {role.value} may not {kind.verb}", referral=referral)


@pytest.mark.parametrize("stage", list(Stage))
async def test_each_decision_is_refused_outside_its_stage_naming_the_stage(stage, fast_env, fast_queue, fakes, sla_policy):
    opened_at = Stage.SUPERVISOR_REVIEW if stage is Stage.CLOSED else stage
    submission, handle = await referral_at(fast_env, fast_queue, sla_policy, fakes, opened_at, f"stages:{stage.value}")
    setting = Setting(submission, await fast_env.get_current_time())
    out_of_place = {name: kind for name, kind in REFERRAL_DECISIONS.items() if kind.stages and stage not in kind.stages}
    assert out_of_place, stage
    async with closed_while_recording(fast_env, handle, fakes.holds) if stage is Stage.CLOSED else nullcontext():
        for name, kind in out_of_place.items():
            # Every role allowed the decision: the refusal is the stage's, never the role's.
            for role in sorted(kind.allowed):
                await refused(handle, kind.update, kind.build(setting, staff(role)),
                              f"stage: the referral is at {stage.value}; cannot {kind.verb} now")
    if stage in OPEN:
        # A regrade and (with no agreed action open) a closure belong to every open stage.
        regraded = await handle.execute_update(
            ReferralWorkflow.regrade_risk, RiskRegrade(actor=SCREENER, risk=RiskGrade.HIGH, reason="Synthetic."))
        assert (regraded.stage, regraded.risk) == (stage, RiskGrade.HIGH)
        if stage is not Stage.ACTIONS:
            closed = await handle.execute_update(ReferralWorkflow.close, Closure(actor=SERGEANT, reason=CloseReason.DUPLICATE))
            assert (closed.stage, closed.close_reason) == (Stage.CLOSED, CloseReason.DUPLICATE)
