"""A case's decision timeline, reconstructed from its histories: each step, who, when, its deadline and the margin.

A referral's timeline has its stages, regrades, meetings and conference; a missing episode's
has its reviews and return-home interview against their deadlines; a day's triage has each
listed referral's decision against the end of the triage day. A step still open is measured
to now while the case runs (or to the moment asked for), so an overdue open step reads as
late as it is. Both read each fact
through the facts registry: its label, whether it is a decision, and its summary.

The timeline names people only by staff ID, role and agency, and carries no free text: it
can be shared with senior leaders without revealing who the children are.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from typing import TypeVar

from pydantic import BaseModel, Field
from temporalio.client import Client

from audit.as_of import escalations_from, fold_actions, sitting_from_facts, state_from_facts, triage_from_facts
from audit.history import (
    AcceptedDecision,
    DecodedCase,
    DecodedEpisode,
    DecodedReferral,
    DecodedSitting,
    DecodedTriage,
    decode_episode,
    decode_referral,
    fetch_referral,
)
from workflows.calendar import add_duration
from workflows.facts import (
    ActionAgreed,
    ActionReassigned,
    ChildFound,
    Closed,
    ConferenceBooked,
    ConferenceHeld,
    Detail,
    EpisodeClosed,
    EpisodeReviewed,
    EpisodeTimes,
    FactKind,
    InterviewRecorded,
    RecordedEvent,
    contents,
    RiskRegraded,
    StageChanged,
    StrategyDiscussionHeld,
)
from workflows.models import (
    ActionState,
    Agency,
    CloseReason,
    Duration,
    Escalation,
    IncidentType,
    MissingGrade,
    NamedRole,
    PoliceAttendance,
    ReferralState,
    RiskGrade,
    Role,
    Stage,
)
from workflows.panel_models import AgendaCriterion, PanelGrade
from workflows.triage_models import TriageOutcome


MEASURED_TO = ("what open steps are measured to: now while the case runs, the moment asked for, or when its "
               "history ends")


C = TypeVar("C", bound=DecodedCase)


class TimelineActor(BaseModel):
    id: str
    role: Role
    agency: Agency


class DeadlineCheck(BaseModel):
    """A deadline against the moment the step was done, or for an open step the moment it is measured to:
    `margin` > 0 is to spare (time left, while open), < 0 late."""

    deadline: datetime | None = None
    done_at: datetime | None = None
    met: bool | None = Field(default=None, description="none while open and not yet due")
    margin: timedelta | None = None


def check(deadline: datetime | None, done_at: datetime | None, until: datetime) -> DeadlineCheck:
    """`until`: the moment an open step is measured to (now, the moment asked for, or the history's end)."""
    if deadline is None:
        return DeadlineCheck(done_at=done_at)
    if done_at is None:
        return DeadlineCheck(deadline=deadline, met=False if until > deadline else None, margin=deadline - until)
    return DeadlineCheck(deadline=deadline, done_at=done_at, met=done_at <= deadline, margin=deadline - done_at)


class DeadlineChange(BaseModel):
    at: datetime
    deadline: datetime | None
    cause: str = Field(description="entered, or the kind of fact that moved it: risk_regraded or conference_booked")


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
    kind: FactKind
    label: str = Field(description="how the fact reads: its registry entry's label")
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
    reassigned_at: list[datetime] = Field(default_factory=list, description="when each reassignment was made")
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
    measured_to: datetime = Field(description=MEASURED_TO)
    closed_at: datetime | None = None
    close_reason: CloseReason | None = None
    stages: list[StageSpan]
    decisions: list[TimelineDecision]
    regrades: list[RiskChange]
    meetings: list[StrategyMeeting]
    actions: list[TimelineAction]
    escalations: list[TimelineEscalation]
    conference: ConferenceCheck | None = None


class EpisodeTimeline(BaseModel):
    """A missing episode from report to closure: each review and the return-home interview against its deadline."""

    reference: str
    run_id: str
    status: str
    reported_at: datetime
    missing_since: datetime
    assessed_grade: MissingGrade = Field(description="the grade as reported")
    final_grade: MissingGrade = Field(description="the grade the episode was treated at when its history ends")
    ends_at: datetime = Field(description="when the history ends: closure, or its last recorded fact")
    measured_to: datetime = Field(description=MEASURED_TO)
    found_at: datetime | None = None
    closed_at: datetime | None = None
    decisions: list[TimelineDecision]
    reviews: list[DeadlineCheck] = Field(description="each review against the review due when it was done; "
                                         "a last one not done while the child was missing")
    interview: DeadlineCheck | None = Field(default=None, description="the interview's outcome against its due time")
    actions: list[TimelineAction]
    escalations: list[TimelineEscalation]


class TriageItemCheck(BaseModel):
    """A referral on the day's list: its decision against the end of the triage day."""

    reference: str
    risk: RiskGrade
    prior_referrals: int
    listed_at: datetime
    outcome: TriageOutcome | None = None
    decided_by: str | None = None
    timeliness: DeadlineCheck


class TriageTimeline(BaseModel):
    """A day's domestic-abuse triage: each listed referral decided (or not) against its due time."""

    reference: str
    run_id: str
    status: str
    day: date
    ends_at: datetime = Field(description="when the history ends: its last recorded fact, or its end")
    measured_to: datetime = Field(description=MEASURED_TO)
    items: list[TriageItemCheck]
    decisions: list[TimelineDecision]
    escalations: list[TimelineEscalation]


class SittingCaseCheck(BaseModel):
    """A case on a panel's agenda: why it was listed, what was decided, whether the live case took the grade, who
    was absent, its actions against their deadlines, or that it was carried."""

    case_id: str
    reasons: list[AgendaCriterion]
    carried_from: str | None = None
    decided_at: datetime | None = None
    grade: PanelGrade | None = None
    grade_applied: str | None = None
    absent_roles: list[NamedRole]
    actions: list[TimelineAction]
    not_reached: bool


class SittingTimeline(BaseModel):
    """A panel's sitting: its agenda to its minutes, each case's outcome, its decisions and escalations."""

    reference: str
    run_id: str
    status: str
    day: date
    meets_at: datetime
    held_at: datetime | None = None
    closed_at: datetime | None = None
    ends_at: datetime = Field(description="when the history ends: its last recorded fact, or its end")
    measured_to: datetime = Field(description=MEASURED_TO)
    attendees: int
    cases: list[SittingCaseCheck]
    actions: list[TimelineAction]
    decisions: list[TimelineDecision]
    escalations: list[TimelineEscalation]


def _actor(fact: RecordedEvent) -> TimelineActor:
    return TimelineActor(id=fact.actor.id, role=fact.actor.role, agency=fact.actor.agency)


def _update_for(fact: RecordedEvent, decisions: list[AcceptedDecision]) -> AcceptedDecision | None:
    """The accepted update that carried a fact: same workflow and actor, the latest handled by then."""
    candidates = [
        d for d in decisions if d.workflow_id == fact.stream and d.actor.id == fact.actor.id and d.handled_at <= fact.at
    ]
    return candidates[-1] if candidates else None


def _is_decision(fact: RecordedEvent) -> bool:
    """A step a person took (stage changes have their own section), or a decision the workflow took: the automatic closure."""
    if fact.entry.decision:
        return True
    return fact.actor.role is not Role.SYSTEM and fact.entry.payload is not StageChanged


def _stages(referral: DecodedReferral, facts: list[RecordedEvent], ends_at: datetime) -> list[StageSpan]:
    spans: list[StageSpan] = []
    changes: list[DeadlineChange] = []
    entered: tuple[RecordedEvent, StageChanged] | None = None

    def close_span(leaving: tuple[RecordedEvent, StageChanged] | None) -> None:
        assert entered is not None
        fact, change = entered
        deadline = changes[-1].deadline if changes else None
        # A stage is left when the decision ending it was made, however long the workflow took to get to it.
        left, left_at = (leaving[0], leaving[1].entered(leaving[0].at)) if leaving else (None, None)
        spans.append(
            StageSpan(
                stage=change.to_stage,
                entered_at=change.entered(fact.at),
                entered_by=_actor(fact),
                left_at=left_at,
                left_by=_actor(left) if left else None,
                deadline_changes=list(changes),
                timeliness=check(deadline, left_at, ends_at),
            )
        )

    for fact in facts:
        match fact.content:
            case StageChanged() as change:
                if entered is not None:
                    close_span((fact, change))
                entered = (fact, change)
                changes = [DeadlineChange(at=fact.at, deadline=change.deadline, cause="entered")]
            case RiskRegraded(deadline=deadline) if entered is not None:
                changes.append(DeadlineChange(at=fact.at, deadline=deadline, cause=fact.kind))
            case ConferenceBooked(conference_at=conference_at) if entered is not None:
                # As the workflow does: once booked, the outcome is due on the conference's next working day.
                booked_deadline = add_duration(conference_at, Duration(working_days=1), referral.policy)
                changes.append(DeadlineChange(at=fact.at, deadline=booked_deadline, cause=fact.kind))
    if entered is not None and entered[1].to_stage is not Stage.CLOSED:
        close_span(None)
    return spans


def _action(action: ActionState, facts: list[RecordedEvent], ends_at: datetime) -> TimelineAction:
    agreed = next(fact for fact, _ in contents(facts, ActionAgreed) if fact.stream == action.action_id)
    return TimelineAction(
        action_id=action.action_id,
        agency=action.owner.agency,
        agreed_at=agreed.at,
        agreed_by=_actor(agreed),
        completed_by=action.completed_by,
        reminded_at=action.reminded_at,
        reassignments=action.reassignments,
        reassigned_at=[fact.at for fact, _ in contents(facts, ActionReassigned) if fact.stream == action.action_id],
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


def _conference(state: ReferralState, own: list[RecordedEvent], ends_at: datetime) -> ConferenceCheck | None:
    """The ICPC against its statutory due date; none without section 47 enquiries."""
    if state.conference_due_by is None:
        return None
    booked = next((fact for fact, _ in contents(own, ConferenceBooked)), None)
    held_at = next((held.held_at for _, held in contents(own, ConferenceHeld)), None)
    return ConferenceCheck(
        booked_at=booked.at if booked else None,
        conference_at=state.conference_at,
        police_attendance=state.police_attendance,
        booked_late=state.conference_at is not None and state.conference_at > state.conference_due_by,
        late_reason_given=state.conference_late_reason is not None,
        held_at=held_at,
        child_protection_plan=state.child_protection_plan,
        timeliness=check(state.conference_due_by, held_at, ends_at),
    )


def _decisions(referral: DecodedCase) -> list[TimelineDecision]:
    """Each decision as its registry entry reads it, with the accepted update that carried it."""
    decisions = []
    for fact in filter(_is_decision, referral.facts):
        update = _update_for(fact, referral.decisions)
        decisions.append(
            TimelineDecision(
                stream=fact.stream,
                seq=fact.seq,
                kind=fact.kind,
                label=fact.entry.label,
                at=fact.at,
                actor=_actor(fact),
                stage=fact.stage,
                risk=fact.risk,
                update=update.update if update else None,
                update_id=update.update_id if update else None,
                details=fact.content.summary(),
            )
        )
    return decisions


def _regrades(own: list[RecordedEvent]) -> list[RiskChange]:
    return [
        RiskChange(seq=f.seq, at=f.at, actor=_actor(f), from_risk=r.from_risk, to_risk=r.to_risk, deadline=r.deadline)
        for f, r in contents(own, RiskRegraded)
    ]


def _meetings(own: list[RecordedEvent]) -> list[StrategyMeeting]:
    return [
        StrategyMeeting(
            seq=f.seq,
            held_at=m.held_at,
            recorded_at=f.at,
            recorded_by=_actor(f),
            section_47=m.section_47,
            quorate=m.quorate,
            attendees=[MeetingAttendee(agency=a.agency, role=a.role) for a in m.attendees],
        )
        for f, m in contents(own, StrategyDiscussionHeld)
    ]


def build_timeline(referral: DecodedReferral, at: datetime | None = None, now: datetime | None = None) -> ReferralTimeline:
    """The referral's timeline; `at`: as it stood then, from the facts recorded by then."""
    referral = _as_of(referral, at)
    facts = referral.facts
    own = [f for f in facts if f.stream == referral.reference]
    state = state_from_facts(referral, at)
    closed = next((fact for fact, _ in contents(own, Closed)), None)
    ends_at = _measured_to(referral, closed, at, now)
    return ReferralTimeline(
        reference=referral.reference,
        run_id=referral.run_id,
        status=referral.status,
        incident_type=state.incident_type,
        initial_risk=referral.start.submission.initial_risk,
        final_risk=state.risk,
        submitted_at=state.submitted_at,
        ends_at=_ends_at(referral, closed),
        measured_to=ends_at,
        closed_at=closed.at if closed else None,
        close_reason=state.close_reason,
        stages=_stages(referral, own, ends_at),
        decisions=_decisions(referral),
        regrades=_regrades(own),
        meetings=_meetings(own),
        actions=[_action(a, facts, ends_at) for a in state.actions],
        escalations=sorted(
            [_escalation(e) for e in state.escalations] + [_escalation(e) for a in state.actions for e in a.escalations],
            key=lambda e: e.raised_at,
        ),
        conference=_conference(state, own, ends_at),
    )


def _ends_at(case: DecodedCase, closed: RecordedEvent | None) -> datetime:
    facts = case.facts
    return closed.at if closed else max(case.ended_at or facts[-1].at, facts[-1].at)


def _as_of(case: C, at: datetime | None) -> C:
    """The case as its history stood at `at`: the facts and decisions recorded by then, still running."""
    if at is None:
        return case
    facts = case.facts_until(at)
    if not facts:
        raise ValueError(f"{case.reference}: no facts were recorded by {at.isoformat()}")
    ended = case.ended_at is not None and case.ended_at <= at
    return replace(case, facts=facts, decisions=[d for d in case.decisions if d.accepted_at <= at],
                   status=case.status if ended else "running", ended_at=case.ended_at if ended else None)


def _measured_to(case: DecodedCase, closed: RecordedEvent | None, at: datetime | None, now: datetime | None) -> datetime:
    """What an open step is measured to: the moment asked for, now while the case runs, else its history's end."""
    if closed is None and case.status == "running":
        return at or now or datetime.now(timezone.utc)
    return _ends_at(case, closed)


def _reviews(own: list[RecordedEvent], ends_at: datetime) -> list[DeadlineCheck]:
    """Each review against the due time the facts before it set; the next, if due while the child was missing."""
    checks, due = [], None
    for fact in own:
        match fact.content:
            case EpisodeReviewed() as reviewed:
                checks.append(check(due, fact.at, ends_at))
                due = reviewed.review_due
            case EpisodeTimes(review_due=review_due):
                due = review_due
            case ChildFound():
                due = None
    return checks + ([check(due, None, ends_at)] if due is not None else [])


def build_episode_timeline(episode: DecodedEpisode, at: datetime | None = None, now: datetime | None = None) -> EpisodeTimeline:
    """The missing episode's timeline; `at`: as it stood then, from the facts recorded by then."""
    episode = _as_of(episode, at)
    facts = episode.facts
    own = [f for f in facts if f.stream == episode.reference]
    closed = next((fact for fact, _ in contents(own, EpisodeClosed)), None)
    ends_at = _measured_to(episode, closed, at, now)
    found = next(((fact, c) for fact, c in contents(own, ChildFound)), None)
    interviewed = next((fact for fact, _ in contents(own, InterviewRecorded)), None)
    grades = [times.grade for _, times in contents(own, EpisodeTimes)]
    actions = fold_actions(f for f in facts if f.stream != episode.reference)
    return EpisodeTimeline(
        reference=episode.reference,
        run_id=episode.run_id,
        status=episode.status,
        reported_at=facts[0].at,
        missing_since=episode.start.report.missing_since,
        assessed_grade=episode.start.report.assessment.grade,
        final_grade=grades[-1],
        ends_at=_ends_at(episode, closed),
        measured_to=ends_at,
        found_at=found[1].found_at if found else None,
        closed_at=closed.at if closed else None,
        decisions=_decisions(episode),
        reviews=_reviews(own, ends_at),
        interview=check(found[1].interview_due, interviewed.at if interviewed else None, ends_at) if found else None,
        actions=[_action(a, facts, ends_at) for a in actions],
        escalations=sorted(
            [_escalation(e) for e in escalations_from(own)] + [_escalation(e) for a in actions for e in a.escalations],
            key=lambda e: e.raised_at,
        ),
    )


def build_triage_timeline(triage: DecodedTriage, at: datetime | None = None, now: datetime | None = None) -> TriageTimeline:
    """The day's triage timeline; `at`: as it stood then, from the facts recorded by then."""
    triage = _as_of(triage, at)
    state = triage_from_facts(triage)
    measured_to = _measured_to(triage, None, at, now)
    return TriageTimeline(
        reference=triage.reference,
        run_id=triage.run_id,
        status=triage.status,
        day=state.day,
        ends_at=_ends_at(triage, None),
        measured_to=measured_to,
        items=[
            TriageItemCheck(reference=item.reference, risk=item.risk, prior_referrals=len(item.history.prior_referrals),
                            listed_at=item.listed_at, outcome=item.outcome, decided_by=item.decided_by,
                            timeliness=check(item.due_at, item.decided_at, measured_to))
            for item in state.items
        ],
        decisions=_decisions(triage),
        escalations=[_escalation(e) for e in state.escalations],
    )


def build_sitting_timeline(sitting: DecodedSitting, at: datetime | None = None, now: datetime | None = None) -> SittingTimeline:
    """A panel sitting's timeline; `at`: as it stood then, from the facts recorded by then."""
    sitting = _as_of(sitting, at)
    state = sitting_from_facts(sitting)
    measured_to = _measured_to(sitting, None, at, now)
    actions = {a.action_id: _action(a, sitting.facts, measured_to) for a in state.actions}
    return SittingTimeline(
        reference=sitting.reference,
        run_id=sitting.run_id,
        status=sitting.status,
        day=state.day,
        meets_at=state.meets_at,
        held_at=state.held_at,
        closed_at=state.closed_at,
        ends_at=_ends_at(sitting, None),
        measured_to=measured_to,
        attendees=len(state.attendees),
        cases=[
            SittingCaseCheck(case_id=item.case_id, reasons=item.reasons, carried_from=item.carried_from,
                             decided_at=item.decided_at, grade=item.grade,
                             grade_applied=item.grade_applied.result if item.grade_applied else None,
                             absent_roles=item.absent_roles, not_reached=item.not_reached,
                             actions=[actions[a] for a in item.action_ids if a in actions])
            for item in state.agenda
        ],
        actions=list(actions.values()),
        decisions=_decisions(sitting),
        escalations=[_escalation(e) for e in state.escalations],
    )


async def episode_timeline(client: Client, reference: str) -> EpisodeTimeline:
    """The timeline of a missing episode on the server, from its history and its actions' histories."""
    return build_episode_timeline(await decode_episode(await fetch_referral(client, reference), client.data_converter))


async def referral_timeline(client: Client, reference: str) -> ReferralTimeline:
    """The timeline of a referral on the server, from its history and its actions' histories."""
    return build_timeline(await decode_referral(await fetch_referral(client, reference), client.data_converter))
