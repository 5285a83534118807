"""A referral's state as it stood at a given moment, folded from the facts its histories recorded up to then.

The result is the same `ReferralState` the workflow reports, so an auditor sees what the
screener (or any decider) could see when they decided: stage, risk, deadline, the prior
referrals in view, actions and escalations as they stood.
"""

from __future__ import annotations

from datetime import datetime

from temporalio.client import Client

from audit.history import DecodedReferral, decode_referral, fetch_referral
from workflows.calendar import add_duration
from workflows.facts import RecordedEvent
from workflows.models import (
    ActionOwner,
    ActionState,
    CloseReason,
    Duration,
    Escalation,
    HistoryEntry,
    PoliceAttendance,
    ReferralState,
    RiskGrade,
    ScreeningOutcome,
    Stage,
    VistSubmission,
)

# The facts the workflow keeps in its decision history (`ReferralWorkflow._decided`).
DECISION_KINDS = frozenset(
    {
        "supervisor_reviewed",
        "screened",
        "strategy_discussion_held",
        "conference_booked",
        "conference_held",
        "closed",
        "risk_regraded",
    }
)


def _escalation_acknowledged(escalations: list[Escalation], fact: RecordedEvent) -> None:
    for escalation in escalations:
        if escalation.escalation_id == fact.payload["escalation_id"]:
            escalation.acknowledged_by = fact.actor.id
            escalation.acknowledged_at = fact.at


def _escalation_resolved(escalations: list[Escalation], fact: RecordedEvent) -> None:
    for escalation in escalations:
        if escalation.escalation_id == fact.payload["escalation_id"]:
            escalation.resolved_at = fact.at
            escalation.resolution = fact.payload["resolution"]


def _fold_action(action: ActionState | None, fact: RecordedEvent) -> ActionState | None:
    """One agreed action's state after one of its own facts."""
    payload = fact.payload
    if fact.kind == "action_agreed":
        return ActionState(
            action_id=fact.stream,
            reference=fact.reference,
            description=payload["description"],
            owner=ActionOwner.model_validate(payload["owner"]),
            deadline=datetime.fromisoformat(payload["deadline"]),
        )
    if action is None:
        return None
    if fact.kind == "action_reminded":
        action.reminded_at = fact.at
    elif fact.kind == "action_reassigned":
        action.owner = ActionOwner.model_validate(payload["owner"])
        if payload.get("deadline"):
            action.deadline = datetime.fromisoformat(payload["deadline"])
        action.reassignments += 1
        action.reminded_at = None
    elif fact.kind == "action_completed":
        action.completed_at = fact.at
        action.completed_by = fact.actor.id
        action.completion_note = payload["note"]
    elif fact.kind == "escalation_raised":
        action.escalations.append(Escalation.model_validate(payload["escalation"]))
    elif fact.kind == "escalation_acknowledged":
        _escalation_acknowledged(action.escalations, fact)
    return action


def state_from_facts(referral: DecodedReferral, moment: datetime | None = None) -> ReferralState:
    """Fold the facts recorded up to `moment` (all of them when None) into the referral's state."""
    facts = referral.facts if moment is None else referral.facts_until(moment)
    if not facts:
        raise ValueError(f"{referral.reference}: no facts were recorded by {moment}")
    policy = referral.policy
    submissions: list[VistSubmission] = []
    stage = Stage.SUPERVISOR_REVIEW
    risk: RiskGrade | None = None
    stage_entered_at = facts[0].at
    deadline: datetime | None = None
    screening_outcome: ScreeningOutcome | None = None
    section_47: bool | None = None
    inquorate = False
    conference_due_by: datetime | None = None
    conference_at: datetime | None = None
    conference_late_reason: str | None = None
    police_attendance: PoliceAttendance | None = None
    child_protection_plan: bool | None = None
    close_reason: CloseReason | None = None
    escalations: list[Escalation] = []
    actions: dict[str, ActionState | None] = {}
    history: list[HistoryEntry] = []
    for fact in facts:
        payload = fact.payload
        if fact.stream != referral.reference:
            actions[fact.stream] = _fold_action(actions.get(fact.stream), fact)
            continue
        if fact.kind in DECISION_KINDS:
            history.append(
                HistoryEntry(seq=fact.seq, kind=fact.kind, at=fact.at, actor_id=fact.actor.id, actor_role=fact.actor.role)
            )
        if fact.kind in ("vist_submitted", "vist_resubmitted"):
            submissions.append(VistSubmission.model_validate(payload["submission"]))
            risk = risk or submissions[0].initial_risk
        elif fact.kind == "stage_changed":
            stage = Stage(payload["to_stage"])
            stage_entered_at = fact.at
            deadline = datetime.fromisoformat(payload["deadline"]) if payload.get("deadline") else None
            if stage is Stage.CONFERENCE:
                conference_due_by = deadline
        elif fact.kind == "risk_regraded":
            risk = RiskGrade(payload["to_risk"])
            deadline = datetime.fromisoformat(payload["deadline"]) if payload.get("deadline") else None
        elif fact.kind == "screened":
            screening_outcome = ScreeningOutcome(payload["outcome"])
        elif fact.kind == "strategy_discussion_held":
            section_47 = payload["section_47"]
            inquorate = not payload["quorate"]
        elif fact.kind == "conference_booked":
            conference_at = datetime.fromisoformat(payload["conference_at"])
            conference_late_reason = payload.get("late_reason")
            police_attendance = PoliceAttendance(payload["police_attendance"])
            # Once booked, the outcome is due on the conference's next working day.
            deadline = add_duration(conference_at, Duration(working_days=1), policy)
        elif fact.kind == "conference_held":
            child_protection_plan = payload["child_protection_plan"]
        elif fact.kind == "closed":
            close_reason = CloseReason(payload["reason"])
        elif fact.kind == "escalation_raised":
            escalations.append(Escalation.model_validate(payload["escalation"]))
        elif fact.kind == "escalation_acknowledged":
            _escalation_acknowledged(escalations, fact)
        elif fact.kind == "escalation_resolved":
            _escalation_resolved(escalations, fact)
    first, latest = submissions[0], submissions[-1]
    views = [view for at, view in referral.screening_views if moment is None or at <= moment]
    return ReferralState(
        reference=referral.reference,
        stage=stage,
        risk=risk or first.initial_risk,
        incident_type=latest.incident.type,
        submitted_at=facts[0].at,
        stage_entered_at=stage_entered_at,
        deadline=deadline,
        submission_versions=len(submissions),
        form_id=latest.form_id,
        form_digest=first.content_digest(),
        children=[c.child_id for c in latest.children],
        screening_view=views[-1] if views else None,
        screening_outcome=screening_outcome,
        section_47=section_47,
        strategy_discussion_inquorate=inquorate,
        conference_due_by=conference_due_by,
        conference_at=conference_at,
        conference_late_reason=conference_late_reason,
        police_attendance=police_attendance,
        child_protection_plan=child_protection_plan,
        close_reason=close_reason,
        actions=[a for a in actions.values() if a is not None],
        escalations=escalations,
        history=history,
    )


async def state_as_of(client: Client, reference: str, moment: datetime) -> ReferralState:
    """The referral's state at `moment`, from its histories on the server."""
    return state_from_facts(await decode_referral(await fetch_referral(client, reference), client.data_converter), moment)

