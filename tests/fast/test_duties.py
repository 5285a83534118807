"""Four eyes in memory: each separation of duties, by one person holding two roles too, and the override's rules."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from temporalio.client import WorkflowHandle

from starter.synthetic import INSPECTOR, SCREENER, SERGEANT, screening, synthetic_missing_report, synthetic_vist
from tests.fast.referrals import REFERRAL_DECISIONS, DecisionKind, referral_at, staff
from tests.helpers import STARTED, refused, screened_and_told, start_episode
from workflows.missing import MissingEpisodeWorkflow
from workflows.missing_models import EpisodeRegrade, LowGradeDecision, RiskIndicator
from workflows.authority import SEPARATION_OF_DUTIES, Duty, Separation
from workflows.models import (
    MissingGrade,
    CloseReason,
    OverrideDecision,
    OverrideRequest,
    RepeatReferralOverride,
    Resubmission,
    Role,
    ScreeningOutcome,
    Stage,
    StartReferral,
    referral_reference,
)
from workflows.referral import ReferralWorkflow

# One person (one staff ID) holding two roles: their tokens differ only in the role.
DUAL = "DUAL-8001"


async def submitted_by(actor, env, queue, policy, fakes, key: str) -> WorkflowHandle:
    submission = synthetic_vist(rng=random.Random(f"fast:duties:{key}")).model_copy(update={"officer_id": actor.id})
    handle = await env.client.start_workflow(
        ReferralWorkflow.run, StartReferral(submission=submission, submitted_by=actor, sla_policy=policy),
        id=referral_reference(submission.form_id), task_queue=queue)
    STARTED.append(handle)
    return handle


async def resubmitted_by_dual(env, queue, policy, fakes, key: str) -> WorkflowHandle:
    submission, handle = await referral_at(env, queue, policy, fakes, Stage.RETURNED_TO_OFFICER, f"duties:{key}")
    dual_officer = staff(Role.OFFICER, staff_id=DUAL)
    await handle.execute_update(ReferralWorkflow.resubmit, Resubmission(
        actor=dual_officer, submission=submission.model_copy(update={"officer_id": DUAL})))
    return handle


async def override_asked_by_dual(env, queue, policy, fakes, key: str) -> WorkflowHandle:
    _, handle = await referral_at(env, queue, policy, fakes, Stage.SCREENING, f"duties:{key}", repeat=True)
    await handle.execute_update(ReferralWorkflow.request_override,
                                OverrideRequest(actor=staff(Role.SCREENER, staff_id=DUAL), reason="Synthetic."))
    return handle


async def override_asked_by_dual_then_again(env, queue, policy, fakes, key: str) -> WorkflowHandle:
    """The dual person's request refused, then another screener's: the first request still counts."""
    handle = await override_asked_by_dual(env, queue, policy, fakes, key)
    await handle.execute_update(ReferralWorkflow.decide_override,
                                OverrideDecision(actor=SERGEANT, granted=False, rationale="Synthetic."))
    await handle.execute_update(ReferralWorkflow.request_override, OverrideRequest(actor=SCREENER, reason="Again."))
    return handle


@dataclass(frozen=True)
class SeparationCase:
    rule: Separation
    earlier: Callable[..., Awaitable[WorkflowHandle]]
    person: str = DUAL
    query: Callable = ReferralWorkflow.state  # the state query of the workflow the duties are on


SUBMITTED_REVIEWED = Separation(Duty.SUBMIT_VIST, Duty.REVIEW_VIST)
ASKED_DECIDED = Separation(Duty.REQUEST_OVERRIDE, Duty.DECIDE_OVERRIDE)
SEPARATIONS = {
    "supervisor submits, then reviews": SeparationCase(
        SUBMITTED_REVIEWED, lambda *args: submitted_by(SERGEANT, *args), SERGEANT.id),
    "officer submits, then reviews as supervisor": SeparationCase(
        SUBMITTED_REVIEWED, lambda *args: submitted_by(staff(Role.OFFICER, staff_id=DUAL), *args)),
    "officer resubmits, then reviews as supervisor": SeparationCase(SUBMITTED_REVIEWED, resubmitted_by_dual),
    "screener asks, then decides as supervisor": SeparationCase(ASKED_DECIDED, override_asked_by_dual),
    "screener asked once, then decides another's request": SeparationCase(ASKED_DECIDED, override_asked_by_dual_then_again),
}
async def graded_low_by_dual(env, queue, policy, fakes, key: str) -> WorkflowHandle:
    """A missing episode its reporter graded low though self-harm makes that implausible."""
    report = synthetic_missing_report(rng=random.Random(f"fast:duties:{key}"), grade=MissingGrade.LOW,
                                      indicators=[RiskIndicator.SELF_HARM])
    _, handle = await start_episode(env.client, queue, policy, report, reported_by=staff(Role.OFFICER, staff_id=DUAL))
    return handle


async def regraded_low_by_supervisor(env, queue, policy, fakes, key: str) -> WorkflowHandle:
    """A missing episode a sergeant regraded low with an unknown adult among its indicators."""
    report = synthetic_missing_report(rng=random.Random(f"fast:duties:{key}"), grade=MissingGrade.MEDIUM,
                                      indicators=[RiskIndicator.UNKNOWN_ADULT])
    _, handle = await start_episode(env.client, queue, policy, report)
    await handle.execute_update(MissingEpisodeWorkflow.regrade,
                                EpisodeRegrade(actor=SERGEANT, grade=MissingGrade.LOW, reason="Synthetic."))
    return handle


GRADED_KEPT = Separation(Duty.GRADE_LOW, Duty.KEEP_LOW_GRADE)
SEPARATIONS |= {
    "officer reports low, then keeps it as supervisor": SeparationCase(
        GRADED_KEPT, graded_low_by_dual, query=MissingEpisodeWorkflow.state),
    "supervisor regrades low, then keeps it": SeparationCase(
        GRADED_KEPT, regraded_low_by_supervisor, SERGEANT.id, MissingEpisodeWorkflow.state),
}
KEEP_LOW = DecisionKind(
    MissingEpisodeWorkflow.decide_low_grade,
    lambda s, actor: LowGradeDecision(actor=actor, keep_low=True, rationale="Synthetic."),
    frozenset({Role.SUPERVISOR}), frozenset(), "keep or refuse a low grade")
# Each later duty's decision.
LATER = {
    Duty.REVIEW_VIST: REFERRAL_DECISIONS["review"],
    Duty.DECIDE_OVERRIDE: REFERRAL_DECISIONS["decide_override"],
    Duty.KEEP_LOW_GRADE: KEEP_LOW,
}


def test_every_separation_of_duties_has_its_cases():
    assert {case.rule for case in SEPARATIONS.values()} == set(SEPARATION_OF_DUTIES)


@pytest.mark.parametrize("name", SEPARATIONS)
async def test_who_did_the_earlier_duty_may_not_do_the_later(name, fast_env, fast_queue, fakes, sla_policy):
    case = SEPARATIONS[name]
    handle = await case.earlier(fast_env, fast_queue, sla_policy, fakes, name)
    kind = LATER[case.rule.later]
    setting = None  # the later decisions name nothing of the referral
    person = staff(Role.SUPERVISOR, staff_id=case.person)
    await refused(handle, kind.update, kind.build(setting, person),
                  f"actor.id: {case.person} did {case.rule.earlier.value} and so may not {case.rule.later.value}",
                  query=case.query)
    # Anyone else holding the role may.
    decided = await handle.execute_update(kind.update, kind.build(setting, INSPECTOR))
    assert decided.history[-1].actor_id == INSPECTOR.id


async def test_the_override_is_asked_for_once_decided_once_and_only_then_closes(fast_env, fast_queue, fakes, sla_policy):
    submission, handle = await referral_at(fast_env, fast_queue, sla_policy, fakes, Stage.SCREENING, "override", repeat=True)
    no_further_action = screening(submission, ScreeningOutcome.NO_FURTHER_ACTION)
    not_without = "repeat_referral_override: a repeat referral cannot close with no further action"
    nothing_waiting = "granted: no override request is waiting for a decision"
    ask = OverrideRequest(actor=SCREENER, reason="Synthetic.")

    def decide(granted: bool, actor=SERGEANT) -> OverrideDecision:
        return OverrideDecision(actor=actor, granted=granted, rationale="Synthetic.")

    await refused(handle, ReferralWorkflow.screen, no_further_action, not_without)
    # A screening naming its own supervisor (the retired field) carries no override.
    named = no_further_action.model_copy(
        update={"repeat_referral_override": RepeatReferralOverride(supervisor_id=SERGEANT.id, rationale="Synthetic.")})
    await refused(handle, ReferralWorkflow.screen, named, not_without)
    await refused(handle, ReferralWorkflow.decide_override, decide(True), nothing_waiting)
    await handle.execute_update(ReferralWorkflow.request_override, ask)
    await refused(handle, ReferralWorkflow.request_override, ask, "reason: an override was already asked for and is waiting")
    await refused(handle, ReferralWorkflow.screen, no_further_action, not_without)
    refusal = await handle.execute_update(ReferralWorkflow.decide_override, decide(False))
    assert (refusal.repeat_referral_override.granted, refusal.repeat_referral_override.decided_by) == (False, SERGEANT.id)
    await refused(handle, ReferralWorkflow.decide_override, decide(True, INSPECTOR), nothing_waiting)
    await refused(handle, ReferralWorkflow.screen, no_further_action, not_without)
    # Refused, it may be asked for again; granted, it is not asked for twice.
    await handle.execute_update(ReferralWorkflow.request_override, ask)
    granted = await handle.execute_update(ReferralWorkflow.decide_override, decide(True, INSPECTOR))
    assert (granted.repeat_referral_override.granted, granted.repeat_referral_override.decided_by) == (True, INSPECTOR.id)
    await refused(handle, ReferralWorkflow.request_override, ask, "reason: an override was already asked for and is granted")
    await refused(handle, ReferralWorkflow.decide_override, decide(False), nothing_waiting)
    closed = await screened_and_told(fast_env.client, handle, no_further_action)
    assert closed.close_reason is CloseReason.NO_FURTHER_ACTION
    decided = [f.payload for f in fakes.records.facts_of(handle.id) if f.kind == "repeat_override_decided"]
    assert [(p["granted"], p["requested_by"]) for p in decided] == [(False, SCREENER.id), (True, SCREENER.id)]


async def test_no_override_is_asked_for_a_referral_that_is_not_a_repeat(fast_env, fast_queue, fakes, sla_policy):
    submission, handle = await referral_at(fast_env, fast_queue, sla_policy, fakes, Stage.SCREENING, "no repeat")
    await refused(handle, ReferralWorkflow.request_override, OverrideRequest(actor=SCREENER, reason="Synthetic."),
                  "reason: this is not a repeat referral nor about a child on a plan; no override is needed")
    closed = await screened_and_told(fast_env.client, handle, screening(submission, ScreeningOutcome.NO_FURTHER_ACTION))
    assert closed.close_reason is CloseReason.NO_FURTHER_ACTION
