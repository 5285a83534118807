"""The role matrix and the stage order, in memory: every decision refused to every role that may not make it,
and every referral decision refused in every stage where it does not belong, each leaving the referral as it was."""

from __future__ import annotations

from contextlib import nullcontext

import pytest

from starter.synthetic import SCREENER, SERGEANT
from tests.fast.referrals import (
    DECISIONS,
    OPEN,
    REFERRAL_DECISIONS,
    Setting,
    closed_while_recording,
    decidable,
    referral_at,
    staff,
)
from tests.helpers import refused
from workflows.models import Agency, CloseReason, Closure, RiskGrade, RiskRegrade, Role, Stage
from workflows.referral import ReferralWorkflow


@pytest.mark.parametrize("name", DECISIONS)
async def test_every_role_that_may_not_make_a_decision_is_refused(name, fast_env, fast_queue, fakes, sla_policy):
    kind = DECISIONS[name]
    handle, referral, setting = await decidable(name, fast_env, fast_queue, sla_policy, fakes, "matrix")
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
