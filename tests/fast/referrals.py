"""Referrals brought to a stage for the fast tier's rule tests, and every kind of decision, buildable for any actor."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from temporalio.client import WorkflowHandle, WorkflowUpdateStage
from temporalio.testing import WorkflowEnvironment

from starter.synthetic import SCREENER, SERGEANT, approval, screening, strategy_discussion, synthetic_vist
from tests.fast.fakes import Fakes, Holds
from tests.helpers import REFUSAL_WAIT, advance_to, finished, start_referral, state_when
from workflows.action import AgreedActionWorkflow
from workflows.models import (
    ActionCompletion,
    ActionOwner,
    ActionReassignment,
    Actor,
    Agency,
    CloseReason,
    Closure,
    ConferenceBooking,
    ConferenceOutcome,
    CscNotInformed,
    Decision,
    EscalationAcknowledgement,
    IncidentType,
    OverrideDecision,
    OverrideRequest,
    PoliceAttendance,
    PriorReferral,
    Rank,
    Resubmission,
    RiskGrade,
    RiskRegrade,
    Role,
    ScreeningOutcome,
    ScreeningView,
    SlaPolicy,
    Stage,
    SupervisorReview,
    VistSubmission,
    referral_reference,
)
from workflows.referral import ReferralWorkflow


def staff(role: Role, agency: Agency = Agency.POLICE, rank: Rank | None = None, staff_id: str | None = None) -> Actor:
    """Someone holding `role` (a supervisor is a sergeant unless a rank is given), never the referral's submitter."""
    if role is Role.SUPERVISOR and rank is None:
        rank = Rank.SERGEANT
    return Actor(id=staff_id or f"{role.value.upper()}-7001", role=role, agency=agency, rank=rank)


@dataclass
class Setting:
    """What a decision needs to know of its referral: the form, the time it is made at, what it names."""

    submission: VistSubmission
    now: datetime
    escalation_id: str = ""


@dataclass(frozen=True)
class DecisionKind:
    update: Callable
    build: Callable[[Setting, Actor], Decision]
    # Written out here, not read from workflows/authority.py, so that a widened role set fails the tests.
    allowed: frozenset[Role]
    # Where the decision belongs; empty when it is not bound to a stage.
    stages: frozenset[Stage]
    # How refusals name it: "a <role> may not <verb>", "cannot <verb> now".
    verb: str


CASE_DECIDERS = frozenset({Role.SCREENER, Role.SUPERVISOR})
OPEN = frozenset(Stage) - {Stage.CLOSED}
SYNTHETIC = "Synthetic."
NEW_OWNER = ActionOwner(agency=Agency.CHILDRENS_SOCIAL_CARE, owner="Social Worker Synthetic")

REFERRAL_DECISIONS = {
    "review": DecisionKind(
        ReferralWorkflow.review, lambda s, actor: SupervisorReview(actor=actor, approved=True),
        frozenset({Role.SUPERVISOR}), frozenset({Stage.SUPERVISOR_REVIEW}), "review a VIST"),
    "resubmit": DecisionKind(
        ReferralWorkflow.resubmit,
        lambda s, actor: Resubmission(actor=actor, submission=s.submission.model_copy(update={"officer_id": actor.id})),
        frozenset({Role.OFFICER}), frozenset({Stage.RETURNED_TO_OFFICER}), "resubmit a VIST"),
    "screen": DecisionKind(
        ReferralWorkflow.screen,
        lambda s, actor: screening(s.submission, ScreeningOutcome.EARLY_HELP).model_copy(update={"actor": actor}),
        frozenset({Role.SCREENER}), frozenset({Stage.SCREENING}), "screen a referral"),
    "request_override": DecisionKind(
        ReferralWorkflow.request_override, lambda s, actor: OverrideRequest(actor=actor, reason=SYNTHETIC),
        frozenset({Role.SCREENER}), frozenset({Stage.SCREENING}), "ask for a repeat-referral override"),
    "decide_override": DecisionKind(
        ReferralWorkflow.decide_override,
        lambda s, actor: OverrideDecision(actor=actor, granted=True, rationale=SYNTHETIC),
        frozenset({Role.SUPERVISOR}), frozenset({Stage.SCREENING}), "grant or refuse a repeat-referral override"),
    "csc_not_informed": DecisionKind(
        ReferralWorkflow.decide_csc_not_informed, lambda s, actor: CscNotInformed(actor=actor, rationale=SYNTHETIC),
        frozenset({Role.SUPERVISOR}), frozenset({Stage.SCREENING}),
        "decide that children's social care need not be informed"),
    "strategy_discussion": DecisionKind(
        ReferralWorkflow.record_strategy_discussion,
        lambda s, actor: strategy_discussion(s.now, section_47=True, actions=0).model_copy(update={"actor": actor}),
        CASE_DECIDERS, frozenset({Stage.STRATEGY_DISCUSSION}), "record a strategy discussion"),
    "book_conference": DecisionKind(
        ReferralWorkflow.book_conference,
        lambda s, actor: ConferenceBooking(actor=actor, conference_at=s.now + timedelta(days=7),
                                           police_attendance=PoliceAttendance.ATTEND),
        CASE_DECIDERS, frozenset({Stage.CONFERENCE}), "book a conference"),
    "conference_outcome": DecisionKind(
        ReferralWorkflow.record_conference_outcome,
        lambda s, actor: ConferenceOutcome(actor=actor, held_at=s.now, child_protection_plan=False,
                                           police_attended=True, rationale=SYNTHETIC),
        CASE_DECIDERS, frozenset({Stage.CONFERENCE}), "record a conference outcome"),
    "regrade_risk": DecisionKind(
        ReferralWorkflow.regrade_risk, lambda s, actor: RiskRegrade(actor=actor, risk=RiskGrade.HIGH, reason=SYNTHETIC),
        CASE_DECIDERS, OPEN, "regrade risk"),
    "close": DecisionKind(
        ReferralWorkflow.close, lambda s, actor: Closure(actor=actor, reason=CloseReason.WITHDRAWN),
        CASE_DECIDERS, OPEN, "close a referral"),
    "acknowledge": DecisionKind(
        ReferralWorkflow.acknowledge_escalation,
        lambda s, actor: EscalationAcknowledgement(actor=actor, escalation_id=s.escalation_id),
        frozenset({Role.SUPERVISOR, Role.ADMIN}), frozenset(), "acknowledge an escalation"),
}
ACTION_DECISIONS = {
    "complete_action": DecisionKind(
        AgreedActionWorkflow.complete, lambda s, actor: ActionCompletion(actor=actor, note=SYNTHETIC),
        frozenset({Role.OFFICER, Role.PARTNER, Role.SCREENER, Role.SUPERVISOR}), frozenset(), "complete an agreed action"),
    "reassign_action": DecisionKind(
        AgreedActionWorkflow.reassign,
        lambda s, actor: ActionReassignment(actor=actor, owner=NEW_OWNER, reason=SYNTHETIC),
        CASE_DECIDERS, frozenset(), "reassign an agreed action"),
    "acknowledge_action": DecisionKind(
        AgreedActionWorkflow.acknowledge_escalation,
        lambda s, actor: EscalationAcknowledgement(actor=actor, escalation_id=s.escalation_id),
        frozenset({Role.SUPERVISOR, Role.ADMIN}), frozenset(), "acknowledge an escalation"),
}


# --- bringing a referral to a stage ---------------------------------------------------------------

Step = Callable[[WorkflowEnvironment, WorkflowHandle, VistSubmission], object]


async def returned(env: WorkflowEnvironment, handle: WorkflowHandle, submission: VistSubmission) -> None:
    await handle.execute_update(ReferralWorkflow.review, SupervisorReview(actor=SERGEANT, approved=False, reasons=SYNTHETIC))


async def approved(env: WorkflowEnvironment, handle: WorkflowHandle, submission: VistSubmission) -> None:
    await handle.execute_update(ReferralWorkflow.review, approval())


async def to_discussion(env: WorkflowEnvironment, handle: WorkflowHandle, submission: VistSubmission) -> None:
    await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))


async def section_47(env: WorkflowEnvironment, handle: WorkflowHandle, submission: VistSubmission) -> None:
    discussion = strategy_discussion(await env.get_current_time(), section_47=True, actions=0)
    await handle.execute_update(ReferralWorkflow.record_strategy_discussion, discussion)


async def one_action(env: WorkflowEnvironment, handle: WorkflowHandle, submission: VistSubmission) -> None:
    """No section 47, one action agreed, owned by health (its owner's supervisor named)."""
    discussion = strategy_discussion(await env.get_current_time(), section_47=False, actions=1)
    await handle.execute_update(ReferralWorkflow.record_strategy_discussion, discussion)


ROUTES: dict[Stage, list[Step]] = {
    Stage.SUPERVISOR_REVIEW: [],
    Stage.RETURNED_TO_OFFICER: [returned],
    Stage.SCREENING: [approved],
    Stage.STRATEGY_DISCUSSION: [approved, to_discussion],
    Stage.CONFERENCE: [approved, to_discussion, section_47],
    Stage.ACTIONS: [approved, to_discussion, one_action],
}


def repeat_view() -> ScreeningView:
    """What screening sees of a child referred often enough before to make this a repeat referral."""
    prior = PriorReferral(reference="REF-EARLIER", submitted_at=datetime(2026, 1, 5, tzinfo=timezone.utc),
                          incident_type=IncidentType.DOMESTIC_ABUSE, matched_on=["child"], child_ids=["C1"])
    return ScreeningView(prior_referrals=[prior], repeat_children=["C1"])


async def referral_at(
    env: WorkflowEnvironment, queue: str, policy: SlaPolicy, fakes: Fakes, stage: Stage, key: str,
    repeat: bool = False, submission: VistSubmission | None = None,
) -> tuple[VistSubmission, WorkflowHandle]:
    """A fresh referral at `stage` (an open one), its form made from `key`; a `repeat` referral's screening
    sees `repeat_view()`."""
    submission = submission or synthetic_vist(rng=random.Random(f"fast:{key}"))
    if repeat:
        fakes.records.screening_views[referral_reference(submission.form_id)] = repeat_view()
    submission, handle = await start_referral(env.client, queue, policy, submission=submission)
    for step in ROUTES.get(stage, []):
        await step(env, handle, submission)
    return submission, handle


@asynccontextmanager
async def recording_held(
    env: WorkflowEnvironment, holds: Holds, handle: WorkflowHandle, update: Callable, decision: Decision, fact: str,
    referral: WorkflowHandle,
) -> AsyncIterator[None]:
    """Inside: `decision` is taken but its `fact` is held back from the records, so the workflow, already
    changed by it, still runs and answers decisions. On leaving, the fact goes through and the referral finishes."""
    gate = holds.hold(handle.id, fact)
    try:
        await handle.start_update(update, decision, wait_for_stage=WorkflowUpdateStage.ACCEPTED)
        yield
    finally:
        gate.set()
    # Left to the test's clean-up, it could be terminated mid-finish and stop the test server's clock.
    await asyncio.wait_for(finished(env, referral), timeout=REFUSAL_WAIT)


def closed_while_recording(env: WorkflowEnvironment, handle: WorkflowHandle, holds: Holds):
    """The referral withdrawn, its workflow still running until its closure is recorded."""
    closure = Closure(actor=SCREENER, reason=CloseReason.WITHDRAWN)
    return recording_held(env, holds, handle, ReferralWorkflow.close, closure, "closed", handle)


# --- a referral where a decision can be made now -------------------------------------------------------

DECISIONS = REFERRAL_DECISIONS | ACTION_DECISIONS
# Where the matrix brings a referral for each decision to be made.
WHERE = {
    "review": Stage.SUPERVISOR_REVIEW,
    "resubmit": Stage.RETURNED_TO_OFFICER,
    "screen": Stage.SCREENING,
    "request_override": Stage.SCREENING,
    "decide_override": Stage.SCREENING,
    "csc_not_informed": Stage.SCREENING,
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


async def decidable(
    name: str, env: WorkflowEnvironment, queue: str, policy: SlaPolicy, fakes: Fakes, key: str
) -> tuple[WorkflowHandle, WorkflowHandle | None, Setting]:
    """A fresh referral (its form made from `key`) where `name` could be made now by a role allowed it: the
    handle to send it to, the referral's (for an agreed action's decision), and what the decision names."""
    submission, referral = await referral_at(
        env, queue, policy, fakes, WHERE[name], f"{key}:{name}", repeat=name.endswith("override"))
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
