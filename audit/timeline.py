"""A referral's decision timeline, reconstructed from its histories: each step, who, when, its deadline and the margin.

The timeline names people only by staff ID, role and agency, and carries no free text: it
can be shared with senior leaders without revealing who the children are.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from temporalio.client import Client

from audit.as_of import DECISION_KINDS, state_from_facts
from audit.history import AcceptedDecision, DecodedReferral, decode_referral, fetch_referral
from workflows.calendar import add_duration
from workflows.facts import RecordedEvent
from workflows.models import (
    ActionState,
    Agency,
    CloseReason,
    Duration,
    Escalation,
    IncidentType,
    PoliceAttendance,
    RiskGrade,
    Role,
    Stage,
)

Detail = str | bool | int | None


class TimelineActor(BaseModel):
    id: str
    role: Role
    agency: Agency


class DeadlineCheck(BaseModel):
    """A deadline against the moment the step was done: `margin` > 0 is early, < 0 late."""

    deadline: datetime | None = None
    done_at: datetime | None = None
    met: bool | None = None
    margin: timedelta | None = None


def check(deadline: datetime | None, done_at: datetime | None, until: datetime) -> DeadlineCheck:
    """`until`: when the history ends; a step not done by a passed deadline has missed it."""
    if deadline is None:
        return DeadlineCheck(done_at=done_at)
    if done_at is None:
        late = until > deadline
        return DeadlineCheck(deadline=deadline, met=False if late else None, margin=deadline - until if late else None)
    return DeadlineCheck(deadline=deadline, done_at=done_at, met=done_at <= deadline, margin=deadline - done_at)


class DeadlineChange(BaseModel):
    at: datetime
    deadline: datetime | None
    cause: str = Field(description="entered, risk_regraded or conference_booked")


class StageSpan(BaseModel):
    stage: Stage
    entered_at: datetime
    entered_by: TimelineActor
    left_at: datetime | None = None
    left_by: TimelineActor | None = None
    deadline_changes: list[DeadlineChange]
    timeliness: DeadlineCheck


class TimelineDecision(BaseModel):
    """A recorded fact made by a person (or the closure), with the update that carried it."""

    stream: str
    seq: int
    kind: str
    at: datetime
    actor: TimelineActor
    stage: Stage | None = None
    risk: RiskGrade | None = None
    update: str | None = None
    update_id: str | None = None
    details: dict[str, Detail] = Field(default_factory=dict)


class RiskChange(BaseModel):
    seq: int
    at: datetime
    actor: TimelineActor
    from_risk: RiskGrade
    to_risk: RiskGrade
    deadline: datetime | None = None


class MeetingAttendee(BaseModel):
    agency: Agency
    role: str


class StrategyMeeting(BaseModel):
    seq: int
    held_at: datetime
    recorded_at: datetime
    recorded_by: TimelineActor
    section_47: bool
    quorate: bool
    attendees: list[MeetingAttendee]


class TimelineAction(BaseModel):
    action_id: str
    agency: Agency
    agreed_at: datetime
    agreed_by: TimelineActor
    completed_by: str | None = None
    reminded_at: datetime | None = None
    reassignments: int = 0
    timeliness: DeadlineCheck


class TimelineEscalation(BaseModel):
    escalation_id: str
    subject: str
    rung: int
    rank: str
    reason: str
    due_at: datetime
    raised_at: datetime
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    acknowledged_after: timedelta | None = None
    resolved_at: datetime | None = None
    resolution: str | None = Field(default=None, description="referral_closed: resolved by the closure, unacknowledged")


class ConferenceCheck(BaseModel):
    booked_at: datetime | None = None
    conference_at: datetime | None = None
    police_attendance: PoliceAttendance | None = None
    booked_late: bool = Field(default=False, description="booked after its statutory due date")
    late_reason_given: bool = Field(
        default=False, description="a late booking's reason was recorded (the text is in the referral's state)"
    )
    held_at: datetime | None = None
    child_protection_plan: bool | None = None
    timeliness: DeadlineCheck = Field(description="the ICPC against its statutory due date")


class ReferralTimeline(BaseModel):
    reference: str
    run_id: str
    status: str
    incident_type: IncidentType
    initial_risk: RiskGrade
    final_risk: RiskGrade
    submitted_at: datetime
    ends_at: datetime = Field(description="when the history ends: closure, or its last recorded fact")
    closed_at: datetime | None = None
    close_reason: CloseReason | None = None
    stages: list[StageSpan]
    decisions: list[TimelineDecision]
    regrades: list[RiskChange]
    meetings: list[StrategyMeeting]
    actions: list[TimelineAction]
    escalations: list[TimelineEscalation]
    conference: ConferenceCheck | None = None


def _actor(fact: RecordedEvent) -> TimelineActor:
    return TimelineActor(id=fact.actor.id, role=fact.actor.role, agency=fact.actor.agency)


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _details(fact: RecordedEvent) -> dict[str, Detail]:
    """Structured fields only: rationales, notes and descriptions (free text) stay in the history."""
    p = fact.payload
    match fact.kind:
        case "vist_submitted" | "vist_resubmitted":
            form = p["submission"]
            return {
                "version": p["version"],
                "incident_type": form["incident"]["type"],
                "children": len(form["children"]),
                "initial_risk": form["initial_risk"],
                "section_46": form.get("section_46") is not None,
            }
        case "supervisor_reviewed":
            return {"approved": p["approved"]}
        case "screened":
            details: dict[str, Detail] = {
                "outcome": p["outcome"],
                "risk": p["risk"],
                "agencies_informed": ", ".join(p.get("agencies_informed") or []) or None,
                "repeat_referral_override": p.get("repeat_referral_override") is not None,
            }
            details |= {f"child {d['child_id']}": d["decision"] for d in p["child_decisions"]}
            return details
        case "strategy_discussion_held":
            return {
                "held_at": p["held_at"],
                "section_47": p["section_47"],
                "quorate": p["quorate"],
                "attendees": len(p["attendees"]),
                "agreed_actions": len(p.get("agreed_actions") or []),
            }
        case "conference_booked":
            return {
                "conference_at": p["conference_at"],
                "due_by": p.get("due_by"),
                "police_attendance": p["police_attendance"],
                "late_reason_given": p.get("late_reason") is not None,
            }
        case "conference_held":
            return {
                "held_at": p["held_at"],
                "child_protection_plan": p["child_protection_plan"],
                "police_attended": p["police_attended"],
                "agreed_actions": len(p.get("agreed_actions") or []),
            }
        case "closed":
            return {"reason": p["reason"]}
        case "risk_regraded":
            return {"from_risk": p["from_risk"], "to_risk": p["to_risk"], "deadline": p.get("deadline")}
        case "action_agreed":
            return {"agency": p["owner"]["agency"], "deadline": p["deadline"]}
        case "action_reassigned":
            return {"from_agency": p["from_owner"]["agency"], "to_agency": p["owner"]["agency"], "deadline": p.get("deadline")}
        case "escalation_acknowledged":
            # Rank and addressee are recorded since the rung rule; earlier acknowledgements lack them.
            return {"escalation_id": p["escalation_id"], "rank": p.get("rank"),
                    "as_named_addressee": p.get("as_named_addressee")}
        case "repeat_override_decided":
            return {"granted": p["granted"], "requested_by": p["requested_by"]}
        case "escalation_resolved":
            return {"escalation_id": p["escalation_id"], "resolution": p["resolution"]}
    return {}


def _update_for(fact: RecordedEvent, decisions: list[AcceptedDecision]) -> AcceptedDecision | None:
    """The accepted update that carried a fact: same workflow and actor, the latest handled by then."""
    candidates = [
        d for d in decisions if d.workflow_id == fact.stream and d.actor.id == fact.actor.id and d.handled_at <= fact.at
    ]
    return candidates[-1] if candidates else None


def _is_decision(fact: RecordedEvent) -> bool:
    # Stage changes and escalations have their own sections; an automatic closure is still the outcome.
    if fact.kind in ("stage_changed", "escalation_raised", "action_reminded"):
        return False
    return fact.actor.role is not Role.SYSTEM or fact.kind in DECISION_KINDS


def _stages(referral: DecodedReferral, facts: list[RecordedEvent], ends_at: datetime) -> list[StageSpan]:
    spans: list[StageSpan] = []
    changes: list[DeadlineChange] = []
    open_span: RecordedEvent | None = None

    def close_span(left: RecordedEvent | None) -> None:
        assert open_span is not None
        deadline = changes[-1].deadline if changes else None
        spans.append(
            StageSpan(
                stage=Stage(open_span.payload["to_stage"]),
                entered_at=open_span.at,
                entered_by=_actor(open_span),
                left_at=left.at if left else None,
                left_by=_actor(left) if left else None,
                deadline_changes=list(changes),
                timeliness=check(deadline, left.at if left else None, ends_at),
            )
        )

    for fact in facts:
        if fact.kind == "stage_changed":
            if open_span is not None:
                close_span(fact)
            open_span = fact
            changes = [DeadlineChange(at=fact.at, deadline=_ts(fact.payload.get("deadline")), cause="entered")]
        elif fact.kind == "risk_regraded" and open_span is not None:
            changes.append(DeadlineChange(at=fact.at, deadline=_ts(fact.payload.get("deadline")), cause="risk_regraded"))
        elif fact.kind == "conference_booked" and open_span is not None:
            # As the workflow does: once booked, the outcome is due on the conference's next working day.
            booked_deadline = add_duration(
                datetime.fromisoformat(fact.payload["conference_at"]), Duration(working_days=1), referral.policy
            )
            changes.append(DeadlineChange(at=fact.at, deadline=booked_deadline, cause="conference_booked"))
    if open_span is not None and open_span.payload["to_stage"] != Stage.CLOSED.value:
        close_span(None)
    return spans


def _action(action: ActionState, agreed: RecordedEvent, ends_at: datetime) -> TimelineAction:
    return TimelineAction(
        action_id=action.action_id,
        agency=action.owner.agency,
        agreed_at=agreed.at,
        agreed_by=_actor(agreed),
        completed_by=action.completed_by,
        reminded_at=action.reminded_at,
        reassignments=action.reassignments,
        timeliness=check(action.deadline, action.completed_at, ends_at),
    )


def _escalation(e: Escalation) -> TimelineEscalation:
    return TimelineEscalation(
        escalation_id=e.escalation_id,
        subject=e.subject,
        rung=e.rung,
        rank=e.rank.value,
        reason=e.reason,
        due_at=e.due_at,
        raised_at=e.raised_at,
        acknowledged_by=e.acknowledged_by,
        acknowledged_at=e.acknowledged_at,
        acknowledged_after=e.acknowledged_at - e.raised_at if e.acknowledged_at else None,
        resolved_at=e.resolved_at,
        resolution=e.resolution,
    )


def build_timeline(referral: DecodedReferral) -> ReferralTimeline:
    facts = referral.facts
    own = [f for f in facts if f.stream == referral.reference]
    state = state_from_facts(referral)
    closed = next((f for f in own if f.kind == "closed"), None)
    ends_at = closed.at if closed else max(referral.ended_at or facts[-1].at, facts[-1].at)

    agreed = {f.stream: f for f in facts if f.kind == "action_agreed"}

    conference = None
    booked = next((f for f in own if f.kind == "conference_booked"), None)
    held = next((f for f in own if f.kind == "conference_held"), None)
    if state.conference_due_by is not None:
        held_at = _ts(held.payload["held_at"]) if held else None
        conference = ConferenceCheck(
            booked_at=booked.at if booked else None,
            conference_at=state.conference_at,
            police_attendance=state.police_attendance,
            booked_late=state.conference_at is not None and state.conference_at > state.conference_due_by,
            late_reason_given=state.conference_late_reason is not None,
            held_at=held_at,
            child_protection_plan=state.child_protection_plan,
            timeliness=check(state.conference_due_by, held_at, ends_at),
        )

    decisions = []
    for fact in facts:
        if not _is_decision(fact):
            continue
        update = _update_for(fact, referral.decisions)
        decisions.append(
            TimelineDecision(
                stream=fact.stream,
                seq=fact.seq,
                kind=fact.kind,
                at=fact.at,
                actor=_actor(fact),
                stage=fact.stage,
                risk=fact.risk,
                update=update.update if update else None,
                update_id=update.update_id if update else None,
                details=_details(fact),
            )
        )

    return ReferralTimeline(
        reference=referral.reference,
        run_id=referral.run_id,
        status=referral.status,
        incident_type=state.incident_type,
        initial_risk=referral.start.submission.initial_risk,
        final_risk=state.risk,
        submitted_at=state.submitted_at,
        ends_at=ends_at,
        closed_at=closed.at if closed else None,
        close_reason=state.close_reason,
        stages=_stages(referral, own, ends_at),
        decisions=decisions,
        regrades=[
            RiskChange(
                seq=f.seq,
                at=f.at,
                actor=_actor(f),
                from_risk=RiskGrade(f.payload["from_risk"]),
                to_risk=RiskGrade(f.payload["to_risk"]),
                deadline=_ts(f.payload.get("deadline")),
            )
            for f in own
            if f.kind == "risk_regraded"
        ],
        meetings=[
            StrategyMeeting(
                seq=f.seq,
                held_at=datetime.fromisoformat(f.payload["held_at"]),
                recorded_at=f.at,
                recorded_by=_actor(f),
                section_47=f.payload["section_47"],
                quorate=f.payload["quorate"],
                attendees=[MeetingAttendee(agency=a["agency"], role=a["role"]) for a in f.payload["attendees"]],
            )
            for f in own
            if f.kind == "strategy_discussion_held"
        ],
        actions=[_action(a, agreed[a.action_id], ends_at) for a in state.actions],
        escalations=sorted(
            [_escalation(e) for e in state.escalations] + [_escalation(e) for a in state.actions for e in a.escalations],
            key=lambda e: e.raised_at,
        ),
        conference=conference,
    )


async def referral_timeline(client: Client, reference: str) -> ReferralTimeline:
    """The timeline of a referral on the server, from its history and its actions' histories."""
    return build_timeline(await decode_referral(await fetch_referral(client, reference), client.data_converter))
