"""Screening tells children's social care or records a supervisor's reason why not; a partner's referral opens at screening."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from pydantic import ValidationError
from temporalio.client import WorkflowFailureError

from starter.synthetic import (
    CSC_PARTNER,
    HEALTH_PARTNER,
    OFFICER,
    SCREENER,
    SERGEANT,
    screening,
    synthetic_partner_referral,
)
from tests.fast.referrals import referral_at, staff
from tests.helpers import STARTED, advance_to, finished, refused, state_when
from workflows.action import AgreedActionWorkflow
from workflows.calendar import add_duration
from workflows.facts import FactKind
from workflows.models import (
    ActionCompletion,
    Actor,
    Agency,
    CloseReason,
    Closure,
    CscNotInformed,
    PartnerReferral,
    Role,
    ScreeningOutcome,
    Stage,
    StartReferral,
    SupervisorReview,
    referral_reference,
)
from workflows.referral import ReferralWorkflow

NOT_CSC = [Agency.HEALTH, Agency.EDUCATION]


async def test_a_screening_that_does_not_inform_csc_needs_a_supervisors_rationale_first(
    fast_env, fast_queue, fakes, sla_policy
):
    submission, handle = await referral_at(fast_env, fast_queue, sla_policy, fakes, Stage.SCREENING, "csc:not-told")
    await state_when(handle, lambda s: s.screening_view is not None)
    quiet = screening(submission, ScreeningOutcome.EARLY_HELP).model_copy(update={"agencies_informed": NOT_CSC})
    await refused(handle, ReferralWorkflow.screen, quiet, "agencies_informed: children's social care must be informed")
    await refused(handle, ReferralWorkflow.decide_csc_not_informed, CscNotInformed(actor=SCREENER, rationale="Synthetic."),
                  "actor.role: a screener may not decide that children's social care need not be informed")
    with pytest.raises(ValidationError) as blank:
        CscNotInformed(actor=SERGEANT, rationale="  ")
    assert [e["loc"] for e in blank.value.errors()] == [("rationale",)]

    decided = await handle.execute_update(
        ReferralWorkflow.decide_csc_not_informed, CscNotInformed(actor=SERGEANT, rationale="Synthetic: already known."))
    assert decided.stage is Stage.SCREENING
    assert decided.csc_not_informed is not None and decided.csc_not_informed.decided_by == SERGEANT.id
    assert decided.csc_not_informed.rationale == "Synthetic: already known."
    assert [h.kind for h in decided.history][-1] == FactKind.CSC_NOT_INFORMED_DECIDED
    await refused(handle, ReferralWorkflow.decide_csc_not_informed, CscNotInformed(actor=SERGEANT, rationale="Again."),
                  "rationale: a supervisor has already decided")

    closed = await handle.execute_update(ReferralWorkflow.screen, quiet)
    assert (closed.stage, closed.close_reason, closed.actions) == (Stage.CLOSED, CloseReason.EARLY_HELP, [])
    assert FactKind.CSC_NOT_INFORMED_DECIDED in fakes.records.kinds_of(handle.id)


async def test_a_screening_that_informs_csc_agrees_the_notification_as_an_action(fast_env, fast_queue, fakes, sla_policy):
    submission, handle = await referral_at(fast_env, fast_queue, sla_policy, fakes, Stage.SCREENING, "csc:told")
    await state_when(handle, lambda s: s.screening_view is not None)
    screened_at = await fast_env.get_current_time()
    state = await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.EARLY_HELP))
    # An outcome that would close waits for the notification, an agreed action like any other.
    assert (state.stage, state.close_reason) == (Stage.ACTIONS, None)
    [notification] = state.actions
    assert notification.owner.agency is Agency.POLICE and notification.owner.owner == SCREENER.id
    assert "children's social care" in notification.description
    due = add_duration(screened_at, sla_policy.csc_notification, sla_policy)
    assert abs(notification.deadline - due) < timedelta(minutes=1)
    # Due within the reminder's lead, the notification's owner is reminded at once; then the referral is still.
    await state_when(handle, lambda s: s.actions[0].reminded_at is not None)
    await refused(handle, ReferralWorkflow.close, Closure(actor=SCREENER, reason=CloseReason.WITHDRAWN),
                  "reason: 1 agreed actions are still open")

    # Late, it escalates to the owner's supervisor as every agreed action does.
    action = fast_env.client.get_workflow_handle(notification.action_id)
    await advance_to(fast_env, notification.deadline + timedelta(minutes=1))
    late = await state_when(handle, lambda s: bool(s.actions[0].escalations))
    assert late.actions[0].escalations[0].subject == notification.action_id

    await action.execute_update(AgreedActionWorkflow.complete, ActionCompletion(actor=SCREENER, note="Synthetic: told."))
    closed = await finished(fast_env, handle)
    assert (closed.stage, closed.close_reason) == (Stage.CLOSED, CloseReason.EARLY_HELP)


async def test_a_screening_to_a_strategy_discussion_brings_csc_to_it_with_no_separate_notification(
    fast_env, fast_queue, fakes, sla_policy
):
    submission, handle = await referral_at(fast_env, fast_queue, sla_policy, fakes, Stage.SCREENING, "csc:strategy")
    await state_when(handle, lambda s: s.screening_view is not None)
    state = await handle.execute_update(
        ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
    # The discussion is children's social care's to attend (quorate only with them), due and escalated as a stage.
    assert (state.stage, state.actions) == (Stage.STRATEGY_DISCUSSION, [])


# --- partner agencies' referrals ----------------------------------------------------------------------


async def start_partner(env, queue, policy, referral: PartnerReferral, referrer: Actor):
    handle = await env.client.start_workflow(
        ReferralWorkflow.run, StartReferral(submission=referral, submitted_by=referrer, sla_policy=policy),
        id=referral_reference(referral.form_id), task_queue=queue)
    STARTED.append(handle)
    return handle


async def test_a_partner_referral_opens_at_screening_and_runs_on_through_it(fast_env, fast_queue, fakes, sla_policy):
    referral = synthetic_partner_referral(rng=random.Random("fast:partner:runs"))
    received_at = await fast_env.get_current_time()
    handle = await start_partner(fast_env, fast_queue, sla_policy, referral, HEALTH_PARTNER)
    state = await state_when(handle, lambda s: s.screening_view is not None)
    assert (state.stage, state.referring_agency, state.children) == (Stage.SCREENING, Agency.HEALTH, ["C1"])
    # Screening's own deadline, from the referral's receipt: no supervisor review came first.
    due = add_duration(received_at, sla_policy.screening.medium, sla_policy)
    assert state.deadline is not None and abs(state.deadline - due) < timedelta(minutes=1)
    assert fakes.records.kinds_of(handle.id)[:2] == [FactKind.PARTNER_REFERRAL_RECEIVED, FactKind.STAGE_CHANGED]
    await refused(handle, ReferralWorkflow.review, SupervisorReview(actor=SERGEANT, approved=True),
                  "stage: the referral is at screening; cannot review a VIST now")

    state = await handle.execute_update(
        ReferralWorkflow.screen, screening(referral, ScreeningOutcome.STRATEGY_DISCUSSION))
    assert state.stage is Stage.STRATEGY_DISCUSSION and state.screening_outcome is ScreeningOutcome.STRATEGY_DISCUSSION


# (who starts it, how the form differs from what they are, why it fails)
PARTNER_STARTS = {
    "by an officer": (OFFICER, {"referrer_id": OFFICER.id},
                      "actor.role: a officer may not refer a child as a partner agency"),
    "by a screener": (SCREENER, {"referrer_id": SCREENER.id, "referring_agency": Agency.HEALTH},
                      "actor.role: a screener may not refer a child as a partner agency"),
    "naming another referrer": (HEALTH_PARTNER, {"referrer_id": "HV-9999"},
                                "submission.referrer_id: must be the referrer's own staff ID"),
    "naming another agency": (CSC_PARTNER, {"referrer_id": CSC_PARTNER.id, "referring_agency": Agency.HEALTH},
                              "submission.referring_agency: must be the referrer's own agency"),
}


@pytest.mark.parametrize("name", PARTNER_STARTS)
async def test_a_partner_referral_naming_anyone_but_its_referrer_fails_before_recording_anything(
    name, fast_env, fast_queue, fakes, sla_policy
):
    referrer, forged, reason = PARTNER_STARTS[name]
    referral = synthetic_partner_referral(rng=random.Random(f"fast:partner:{name}")).model_copy(update=forged)
    handle = await start_partner(fast_env, fast_queue, sla_policy, referral, referrer)
    with pytest.raises(WorkflowFailureError) as failed:
        await finished(fast_env, handle)
    assert failed.value.cause.message.startswith(reason)
    assert fakes.records.facts_of(handle.id) == []


def test_a_partner_referral_is_a_closed_form_refusing_what_it_cannot_hold():
    good = synthetic_partner_referral(rng=random.Random("fast:partner:form")).model_dump(mode="json")
    cases = {
        ("tool",): good | {"tool": "anything"},
        ("cse_indicators",): good | {"cse_indicators": []},
        ("cse_indicators", 0): good | {"cse_indicators": ["made_up"]},
        ("incident", "type"): good | {"incident": good["incident"] | {"type": "neglect"}},
        ("incident", "summary"): good | {"incident": good["incident"] | {"summary": "bell\x07"}},
        ("incident", "occurred_at"): good | {"incident": good["incident"] | {"occurred_at": "9999-12-31T23:59:59+14:00"}},
        ("children", 0, "date_of_birth"): good | {"children": [good["children"][0] | {"date_of_birth": "0001-01-01"}]},
        ("referrer_id",): good | {"referrer_id": "HV 5001\n"},
        ("station",): good | {"station": "Testtown"},
    }
    for field, body in cases.items():
        with pytest.raises(ValidationError) as refused_form:
            PartnerReferral.model_validate(body)
        named = [e["loc"] for e in refused_form.value.errors()] + [
            tuple(str(e["msg"]).split(": ", 1)[0].removeprefix("Value error, ").split(".")) for e in refused_form.value.errors()]
        assert any(tuple(str(p) for p in loc) == tuple(str(p) for p in field) for loc in named), (field, named)


def test_a_partner_of_an_agency_that_does_not_refer_is_refused_by_the_form():
    housing = Actor(id="HO-7001", role=Role.PARTNER, agency=Agency.HOUSING)
    with pytest.raises(ValidationError, match="referring_agency: a partner referral comes from"):
        synthetic_partner_referral(referrer=housing)
