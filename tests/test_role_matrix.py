"""The full role matrix: every role against every decision, through the API and straight to the workflow.

Each allowed pair succeeds on a referral brought to the right stage; each forbidden pair is
refused (403 from the API, a DecisionRejected naming `actor.role` or `actor.agency` from the
workflow) and leaves the referral as it was.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError

from starter.synthetic import OFFICER, SCREENER, SERGEANT, approval, screening, strategy_discussion, synthetic_vist
from tests.api_fixtures import USERS, BY_ROLE, api, api_app, auth, authenticator, tokens  # noqa: F401
from tests.helpers import activities_running, eventually, start_referral, state_when
from workflows.action import AgreedActionWorkflow
from workflows.models import (
    ActionCompletion,
    ActionReassignment,
    Closure,
    ConferenceBooking,
    ConferenceOutcome,
    Duration,
    EscalationAcknowledgement,
    Resubmission,
    RiskRegrade,
    Role,
    Screening,
    ScreeningOutcome,
    StageDeadlines,
    StrategyDiscussion,
    SupervisorReview,
)
from workflows.referral import ReferralWorkflow


@dataclass
class Setting:
    """A referral brought to where one decision can be made, and that decision's body."""

    workflow_id: str
    path: str
    body: dict[str, Any] | None
    decision_fields: dict[str, Any]


@dataclass(frozen=True)
class Decision:
    name: str
    update: Any
    model: type
    allowed: frozenset[Role]


DECISIONS = (
    Decision("supervisor-review", ReferralWorkflow.review, SupervisorReview, frozenset({Role.SUPERVISOR})),
    Decision("resubmission", ReferralWorkflow.resubmit, Resubmission, frozenset({Role.OFFICER})),
    Decision("screening", ReferralWorkflow.screen, Screening, frozenset({Role.SCREENER})),
    Decision("strategy-discussion", ReferralWorkflow.record_strategy_discussion, StrategyDiscussion,
             frozenset({Role.SCREENER, Role.SUPERVISOR})),
    Decision("conference", ReferralWorkflow.book_conference, ConferenceBooking,
             frozenset({Role.SCREENER, Role.SUPERVISOR})),
    Decision("conference-outcome", ReferralWorkflow.record_conference_outcome, ConferenceOutcome,
             frozenset({Role.SCREENER, Role.SUPERVISOR})),
    Decision("risk", ReferralWorkflow.regrade_risk, RiskRegrade, frozenset({Role.SCREENER, Role.SUPERVISOR})),
    Decision("close", ReferralWorkflow.close, Closure, frozenset({Role.SCREENER, Role.SUPERVISOR})),
    # The action is owned by health: a police officer is refused for its agency, not its role.
    Decision("completion", AgreedActionWorkflow.complete, ActionCompletion,
             frozenset({Role.PARTNER, Role.SCREENER, Role.SUPERVISOR})),
    Decision("reassignment", AgreedActionWorkflow.reassign, ActionReassignment,
             frozenset({Role.SCREENER, Role.SUPERVISOR})),
    Decision("acknowledgement", ReferralWorkflow.acknowledge_escalation, EscalationAcknowledgement,
             frozenset({Role.SUPERVISOR})),
)


CALLER_ROLES = [role for role in Role if role is not Role.SYSTEM]  # no token ever carries the system role


async def terminate_quietly(handle) -> None:
    """The referral made before the escalating one is not needed; end it once it is idle."""
    await eventually(lambda: activities_running(handle), lambda running: not running)
    await handle.terminate(reason="not needed by the role matrix")


def json_body(decision) -> dict[str, Any]:
    return decision.details()


async def bring_to(name: str, time_env, queue: str, sla_policy, seed: int) -> Setting:
    """A fresh referral at the stage where `name` can be decided."""
    submission, handle = await start_referral(
        time_env.client, queue, sla_policy, submission=synthetic_vist(rng=random.Random(f"matrix:{seed}"))
    )
    ref = handle.id
    now = await time_env.get_current_time()

    async def review():
        await handle.execute_update(ReferralWorkflow.review, approval())

    async def to_strategy():
        await review()
        await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))

    async def to_conference():
        await to_strategy()
        await handle.execute_update(
            ReferralWorkflow.record_strategy_discussion, strategy_discussion(now, section_47=True, actions=0)
        )

    async def with_action() -> str:
        await to_strategy()
        state = await handle.execute_update(
            ReferralWorkflow.record_strategy_discussion, strategy_discussion(now, section_47=False, actions=1)
        )
        return state.actions[0].action_id

    def at(path: str, decision, workflow_id: str = ref) -> Setting:
        body = json_body(decision)
        return Setting(workflow_id, path, body, body)

    if name == "supervisor-review":
        return at(f"/referrals/{ref}/supervisor-review", approval())
    if name == "resubmission":
        await handle.execute_update(
            ReferralWorkflow.review, SupervisorReview(actor=SERGEANT, approved=False, reasons="Synthetic.")
        )
        return at(f"/referrals/{ref}/resubmission", Resubmission(actor=OFFICER, submission=submission))
    if name == "screening":
        await review()
        return at(f"/referrals/{ref}/screening", screening(submission, ScreeningOutcome.EARLY_HELP))
    if name == "strategy-discussion":
        await to_strategy()
        return at(f"/referrals/{ref}/strategy-discussion", strategy_discussion(now, section_47=True, actions=0))
    if name == "conference":
        await to_conference()
        body = {"conference_at": (now + timedelta(days=7)).isoformat(), "police_attendance": "attend"}
        return Setting(ref, f"/referrals/{ref}/conference", body, body)
    if name == "conference-outcome":
        await to_conference()
        await handle.execute_update(
            ReferralWorkflow.book_conference,
            ConferenceBooking(actor=SCREENER, conference_at=now + timedelta(days=7), police_attendance="attend"),
        )
        body = {"held_at": now.isoformat(), "child_protection_plan": False, "police_attended": True,
                "rationale": "Synthetic."}
        return Setting(ref, f"/referrals/{ref}/conference-outcome", body, body)
    if name == "risk":
        body = {"risk": "high", "reason": "Synthetic."}
        return Setting(ref, f"/referrals/{ref}/risk", body, body)
    if name == "close":
        body = {"reason": "withdrawn"}
        return Setting(ref, f"/referrals/{ref}/close", body, body)
    if name == "completion":
        action_id = await with_action()
        body = {"note": "Synthetic."}
        return Setting(action_id, f"/actions/{action_id}/completion", body, body)
    if name == "reassignment":
        action_id = await with_action()
        body = {"owner": {"agency": "childrens_social_care", "owner": "Social Worker Synthetic"}, "reason": "Synthetic."}
        return Setting(action_id, f"/actions/{action_id}/reassignment", body, body)
    if name == "acknowledgement":
        # A referral whose review is due within a second: it goes late without moving the shared clock.
        hasty = sla_policy.model_copy(update={"supervisor_review": StageDeadlines(
            standard=Duration(hours=0.0003), medium=Duration(hours=0.0003), high=Duration(hours=0.0003))})
        _, late = await start_referral(
            time_env.client, queue, hasty, submission=synthetic_vist(rng=random.Random(f"matrix:late:{seed}"))
        )
        await terminate_quietly(handle)
        ref = late.id
        state = await state_when(late, lambda s: len(s.escalations) >= 1)
        escalation_id = state.escalations[0].escalation_id
        return Setting(ref, f"/escalations/{escalation_id}/acknowledgement", None, {"escalation_id": escalation_id})
    raise AssertionError(name)


async def decide(channel: str, setting: Setting, decision: Decision, role: Role, time_env, api, auth) -> str | None:
    """Make the decision as `role`; None when it succeeded, else the refused field."""
    user = BY_ROLE[role]
    if channel == "api":
        response = await api.post(setting.path, json=setting.body, headers=auth(user))
        if response.status_code == 200:
            return None
        assert response.status_code == 403, (decision.name, role, response.text)
        return response.json()["field"]
    actor = USERS[user].caller().actor
    handle = time_env.client.get_workflow_handle(setting.workflow_id)
    try:
        await handle.execute_update(decision.update, decision.model.model_validate(setting.decision_fields | {"actor": actor}))
        return None
    except WorkflowUpdateFailedError as error:
        message = error.cause.message
        assert message.startswith(("actor.role", "actor.agency")), (decision.name, role, message)
        return message.split(":", 1)[0]


@pytest.mark.parametrize("channel", ["workflow", "api"])
async def test_every_role_against_every_decision(channel, time_env, time_queue, sla_policy, api, auth):
    seed = 1000 if channel == "api" else 0
    outcomes: dict[tuple[str, Role], str | None] = {}
    for decision in DECISIONS:
        seed += 1
        # Refusals are tried on one referral, which must be left exactly as it was...
        probe = await bring_to(decision.name, time_env, time_queue, sla_policy, seed)
        probe_handle = time_env.client.get_workflow_handle(probe.workflow_id)
        before = await probe_handle.query("state")
        for role in CALLER_ROLES:
            if role in decision.allowed:
                # ...and each allowed role decides on a referral of its own.
                seed += 1
                setting = await bring_to(decision.name, time_env, time_queue, sla_policy, seed)
                outcomes[(decision.name, role)] = await decide(channel, setting, decision, role, time_env, api, auth)
            else:
                outcomes[(decision.name, role)] = await decide(channel, probe, decision, role, time_env, api, auth)
        assert await probe_handle.query("state") == before, decision.name
    expected = {(d.name, role): (None if role in d.allowed else "refused") for d in DECISIONS for role in CALLER_ROLES}
    assert {key: (None if value is None else "refused") for key, value in outcomes.items()} == expected
    assert outcomes[("completion", Role.OFFICER)] == "actor.agency"  # a police officer, a health action
    assert outcomes[("supervisor-review", Role.AUDITOR)] == "actor.role"
