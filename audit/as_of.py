"""A case's state as it stood at a given moment, folded from the facts its histories recorded up to then.

The result is the same `ReferralState` (a missing episode's `EpisodeState`, a day's triage's
`TriageState`) the workflow reports, so an auditor sees what the screener (or any decider) could see when they decided:
stage, risk, deadline, the prior referrals in view, actions and escalations as they stood.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from temporalio.client import Client

from audit.history import (
    DecodedCase,
    DecodedEpisode,
    DecodedReferral,
    DecodedSitting,
    DecodedTriage,
    decode_episode,
    decode_referral,
    fetch_referral,
)
from workflows.calendar import add_duration, local_moment
from workflows.panel_models import AgendaCriterion, AgendaItem, GradeApplied, SittingPhase, SittingState
from workflows.facts import (
    PanelAgendaEdited,
    PanelAttendanceRecorded,
    PanelCaseDecided,
    PanelGradeApplied,
    PanelMeetingOpened,
    PanelSittingClosed,
    PanelSittingOpened,
    ActionAgreed,
    ActionCompleted,
    ActionReassigned,
    ActionReminded,
    ChildFound,
    Closed,
    ConferenceBooked,
    ConferenceHeld,
    CscNotInformedDecided,
    EpisodeClosed,
    EpisodeReviewed,
    EpisodeTimes,
    EscalationAcknowledged,
    EscalationRaised,
    EscalationResolved,
    InterviewRecorded,
    LowGradeDecided,
    RecordedEvent,
    RepeatMissingFlagged,
    TriggerPlanRead,
    CseEpisodeLinked,
    CseReferralLinked,
    RepeatOverrideDecided,
    RepeatOverrideRequested,
    RiskRegraded,
    Screened,
    StageChanged,
    StrategyDiscussionHeld,
    TracingRecorded,
    TriageDecided,
    TriageListed,
    VistSubmitted,
    contents,
)
from workflows.missing_models import (
    EpisodePhase,
    EpisodeState,
    FoundWhere,
    InterviewOutcome,
    ReviewState,
    RiskAssessment,
)
from workflows.models import (
    ActionState,
    Agency,
    CloseReason,
    CscNotInformedState,
    Duration,
    Escalation,
    HistoryEntry,
    PartnerReferral,
    PoliceAttendance,
    ReferralForm,
    ReferralState,
    RepeatReferralOverrideState,
    RiskGrade,
    ScreeningOutcome,
    ScreeningView,
    SlaPolicy,
    Stage,
)
from workflows.triage_models import TriageItem, TriageState


def _acknowledged(escalations: list[Escalation], fact: RecordedEvent, ack: EscalationAcknowledged) -> None:
    for escalation in escalations:
        if escalation.escalation_id == ack.escalation_id:
            escalation.acknowledged_by = fact.actor.id
            escalation.acknowledged_at = fact.at


def _resolved(escalations: list[Escalation], fact: RecordedEvent, resolved: EscalationResolved) -> None:
    for escalation in escalations:
        if escalation.escalation_id == resolved.escalation_id:
            escalation.resolved_at = fact.at
            escalation.resolution = resolved.resolution


def _fold_action(action: ActionState | None, fact: RecordedEvent) -> ActionState | None:
    """One agreed action's state after one of its own facts."""
    content = fact.content
    if isinstance(content, ActionAgreed):
        return ActionState(action_id=fact.stream, reference=fact.reference, description=content.description,
                           owner=content.owner, deadline=content.deadline)
    if action is None:
        return None
    match content:
        case ActionReminded():
            action.reminded_at = fact.at
        case ActionReassigned(owner=owner, deadline=deadline):
            action.owner = owner
            if deadline:
                action.deadline = deadline
            action.reassignments += 1
            action.reminded_at = None
        case ActionCompleted(note=note):
            action.completed_at = fact.at
            action.completed_by = fact.actor.id
            action.completion_note = note
        case EscalationRaised(escalation=escalation):
            action.escalations.append(escalation)
        case EscalationAcknowledged():
            _acknowledged(action.escalations, fact, content)
    return action


def fold_escalation(escalations: list[Escalation], fact: RecordedEvent) -> None:
    """A case's escalations after one of its escalation facts (raised, acknowledged, resolved); others leave them."""
    match fact.content:
        case EscalationRaised(escalation=escalation):
            escalations.append(escalation)
        case EscalationAcknowledged() as ack:
            _acknowledged(escalations, fact, ack)
        case EscalationResolved() as resolved:
            _resolved(escalations, fact, resolved)


def escalations_from(facts: Iterable[RecordedEvent]) -> list[Escalation]:
    """The escalations a case's own facts raised, as they stand after those facts."""
    escalations: list[Escalation] = []
    for fact in facts:
        fold_escalation(escalations, fact)
    return escalations


def fold_actions(facts: Iterable[RecordedEvent]) -> list[ActionState]:
    """Each agreed action's state after its own facts (those of the action streams among `facts`)."""
    actions: dict[str, ActionState | None] = {}
    for fact in facts:
        actions[fact.stream] = _fold_action(actions.get(fact.stream), fact)
    return [a for a in actions.values() if a is not None]


@dataclass
class ReferralAsRecorded:
    """The referral as its own facts have told it so far: what each kind of fact changes."""

    policy: SlaPolicy
    stage_entered_at: datetime
    submissions: list[ReferralForm] = field(default_factory=list)
    stage: Stage = Stage.SUPERVISOR_REVIEW
    risk: RiskGrade | None = None
    deadline: datetime | None = None
    screening_outcome: ScreeningOutcome | None = None
    override: RepeatReferralOverrideState | None = None
    csc_not_informed: CscNotInformedState | None = None
    section_47: bool | None = None
    inquorate: bool = False
    conference_due_by: datetime | None = None
    conference_at: datetime | None = None
    conference_late_reason: str | None = None
    police_attendance: PoliceAttendance | None = None
    child_protection_plan: bool | None = None
    close_reason: CloseReason | None = None
    escalations: list[Escalation] = field(default_factory=list)
    history: list[HistoryEntry] = field(default_factory=list)
    linked_episodes: list[str] = field(default_factory=list)

    def take(self, fact: RecordedEvent) -> None:
        """Apply one of the referral's own facts; a decision (by the registry) joins the decision history."""
        if fact.entry.decision:
            self.history.append(_decision_entry(fact))
        match fact.content:
            case VistSubmitted(submission=form):  # and its resubmissions
                self.submissions.append(form)
                self.risk = self.risk or self.submissions[0].initial_risk
            case StageChanged(to_stage=stage, deadline=deadline) as changed:
                self.stage, self.stage_entered_at, self.deadline = stage, changed.entered(fact.at), deadline
                if stage is Stage.CONFERENCE:
                    self.conference_due_by = deadline
            case RiskRegraded(to_risk=risk, deadline=deadline):
                self.risk, self.deadline = risk, deadline
            case Screened(outcome=outcome):
                self.screening_outcome = outcome
            case CscNotInformedDecided(rationale=rationale):
                self.csc_not_informed = CscNotInformedState(decided_by=fact.actor.id, decided_at=fact.at, rationale=rationale)
            case RepeatOverrideRequested(reason=reason):
                self.override = RepeatReferralOverrideState(requested_by=fact.actor.id, requested_at=fact.at, reason=reason)
            case RepeatOverrideDecided(granted=granted, rationale=rationale) if self.override is not None:
                self.override.decided_by, self.override.decided_at = fact.actor.id, fact.at
                self.override.granted, self.override.rationale = granted, rationale
            case StrategyDiscussionHeld(section_47=section_47, quorate=quorate):
                self.section_47, self.inquorate = section_47, not quorate
            case ConferenceBooked() as booked:
                self.conference_at = booked.conference_at
                self.conference_late_reason = booked.late_reason
                self.police_attendance = booked.police_attendance
                # Once booked, the outcome is due on the conference's next working day.
                self.deadline = add_duration(booked.conference_at, Duration(working_days=1), self.policy)
            case ConferenceHeld(child_protection_plan=plan):
                self.child_protection_plan = plan
            case Closed(reason=reason):
                self.close_reason = reason
            case CseEpisodeLinked(episode_id=episode_id):
                self.linked_episodes.append(episode_id)
            case EscalationRaised() | EscalationAcknowledged() | EscalationResolved():
                fold_escalation(self.escalations, fact)

    def as_state(
        self, reference: str, submitted_at: datetime, actions: list[ActionState], view: ScreeningView | None
    ) -> ReferralState:
        """The state the workflow would report, with the actions and the screening view as of the same moment."""
        first, latest = self.submissions[0], self.submissions[-1]
        return ReferralState(
            reference=reference,
            stage=self.stage,
            risk=self.risk or first.initial_risk,
            incident_type=latest.incident.type,
            submitted_at=submitted_at,
            stage_entered_at=self.stage_entered_at,
            deadline=self.deadline,
            submission_versions=len(self.submissions),
            form_id=latest.form_id,
            form_digest=first.content_digest(),
            children=[c.child_id for c in latest.children],
            screening_view=view,
            screening_outcome=self.screening_outcome,
            repeat_referral_override=self.override,
            csc_not_informed=self.csc_not_informed,
            referring_agency=first.referring_agency if isinstance(first, PartnerReferral) else Agency.POLICE,
            section_47=self.section_47,
            strategy_discussion_inquorate=self.inquorate,
            conference_due_by=self.conference_due_by,
            conference_at=self.conference_at,
            conference_late_reason=self.conference_late_reason,
            police_attendance=self.police_attendance,
            child_protection_plan=self.child_protection_plan,
            close_reason=self.close_reason,
            actions=actions,
            escalations=self.escalations,
            history=self.history,
            linked_episodes=self.linked_episodes,
        )


def _facts_by(case: DecodedCase, moment: datetime | None) -> list[RecordedEvent]:
    facts = case.facts if moment is None else case.facts_until(moment)
    if not facts:
        raise ValueError(f"{case.reference}: no facts were recorded by {moment}")
    return facts


def _decision_entry(fact: RecordedEvent) -> HistoryEntry:
    return HistoryEntry(seq=fact.seq, kind=fact.kind, at=fact.at, actor_id=fact.actor.id, actor_role=fact.actor.role)


def state_from_facts(referral: DecodedReferral, moment: datetime | None = None) -> ReferralState:
    """Fold the facts recorded up to `moment` (all of them when None) into the referral's state."""
    facts = _facts_by(referral, moment)
    told = ReferralAsRecorded(policy=referral.policy, stage_entered_at=facts[0].at)
    for fact in facts:
        if fact.stream == referral.reference:
            told.take(fact)
    actions = fold_actions(f for f in facts if f.stream != referral.reference)
    views = [view for at, view in referral.screening_views if moment is None or at <= moment]
    submitted = facts[0].content
    submitted_at = submitted.submitted(facts[0].at) if isinstance(submitted, VistSubmitted) else facts[0].at
    return told.as_state(referral.reference, submitted_at, actions, views[-1] if views else None)


async def state_as_of(client: Client, reference: str, moment: datetime) -> ReferralState:
    """The referral's state at `moment`, from its histories on the server."""
    return state_from_facts(await decode_referral(await fetch_referral(client, reference), client.data_converter), moment)



def episode_from_facts(episode: DecodedEpisode, moment: datetime | None = None) -> EpisodeState:
    """Fold the facts recorded up to `moment` (all of them when None) into the missing episode's state."""
    facts = _facts_by(episode, moment)
    own = [f for f in facts if f.stream == episode.reference]
    assessment = episode.start.report.assessment
    state = EpisodeState(
        episode_id=episode.reference, phase=EpisodePhase.MISSING, grade=assessment.grade,
        assessed_grade=assessment.grade, indicators=list(assessment.indicators), low_grade_pending=False,
        reported_at=facts[0].at, reported_by=facts[0].actor.id, missing_since=episode.start.report.missing_since,
    )
    low_kept, found_at = False, None
    for fact in own:
        if fact.entry.decision:
            state.history.append(_decision_entry(fact))
        if isinstance(fact.content, EpisodeTimes):  # the report and every decision that moves grade or deadlines
            times = fact.content
            state.grade, state.assessed_grade = times.grade, times.assessed_grade
            state.review_due, state.tracing_due = times.review_due, times.tracing_due
        match fact.content:
            case LowGradeDecided(keep_low=keep_low):
                low_kept = low_kept or keep_low
            case EpisodeReviewed(grade=grade):
                state.reviews.append(ReviewState(reviewed_at=fact.at, reviewed_by=fact.actor.id, grade=grade))
            case TracingRecorded():
                state.last_tracing_at = fact.at
            case ChildFound(found_at=child_found_at, where=where):
                found_at = fact.at
                state.phase, state.found_at, state.where_found = EpisodePhase.RETURNED, child_found_at, FoundWhere(where)
                state.review_due = state.tracing_due = None
            case InterviewRecorded(outcome=outcome):
                state.interview_outcome = InterviewOutcome(outcome)
            case RepeatMissingFlagged():
                state.repeat_missing = True
            case TriggerPlanRead(plan=plan, required=required):
                state.trigger_plan, state.trigger_plan_required = plan, required
            case CseReferralLinked(reference=reference):
                state.linked_referrals.append(reference)
            case EpisodeClosed():
                state.phase = EpisodePhase.CLOSED
    implausible = RiskAssessment(grade=state.assessed_grade, indicators=state.indicators).low_needs_supervisor
    state.low_grade_pending = implausible and not low_kept
    state.actions = fold_actions(f for f in facts if f.stream != episode.reference)
    # The return-home interview is the action agreed once the child was found.
    agreed_since_found = {f.stream for f, _ in contents(facts, ActionAgreed) if found_at is not None and f.at >= found_at}
    interview = next((a for a in state.actions if a.action_id in agreed_since_found), None)
    if interview is not None:
        state.interview_action_id, state.interview_due = interview.action_id, interview.deadline
    state.escalations = escalations_from(own)
    counts = [count for at, count in episode.episode_counts if moment is None or at <= moment]
    state.episodes_in_window = counts[-1] if counts else None
    return state


async def episode_as_of(client: Client, reference: str, moment: datetime) -> EpisodeState:
    """The missing episode's state at `moment`, from its histories on the server."""
    decoded = await decode_episode(await fetch_referral(client, reference), client.data_converter)
    return episode_from_facts(decoded, moment)


def triage_from_facts(triage: DecodedTriage, moment: datetime | None = None) -> TriageState:
    """Fold the facts recorded up to `moment` into the day's triage: each referral listed (as the read model gave
    it), each decision and each escalation as they stood."""
    facts = _facts_by(triage, moment)
    candidates = {c.reference: c for c in (triage.listing.candidates if triage.listing else [])}
    items: dict[str, TriageItem] = {}
    for fact in facts:
        match fact.content:
            case TriageListed(due_at=due_at):
                items[fact.reference] = TriageItem(
                    **candidates[fact.reference].model_dump(), listed_at=fact.at, due_at=due_at
                )
            case TriageDecided(outcome=outcome):
                items[fact.reference] = items[fact.reference].model_copy(
                    update={"outcome": outcome, "decided_by": fact.actor.id, "decided_at": fact.at}
                )
    query = triage.listing_query
    return TriageState(
        triage_id=triage.reference,
        day=triage.start.day,
        listed=True,  # its first fact is a listing: the list was built before
        received_since=query.since if query else None,
        received_until=query.until if query else None,
        items=list(items.values()),
        escalations=escalations_from(facts),
    )


def sitting_from_facts(sitting: DecodedSitting, moment: datetime | None = None) -> SittingState:
    """Fold the facts recorded up to `moment` into a panel's sitting: its agenda as built and edited, the register,
    each case's outcome (its grade and what the live case made of it), what was carried, its actions and escalations."""
    facts = _facts_by(sitting, moment)
    own = [f for f in facts if f.stream == sitting.reference]
    panel = sitting.start.panel
    agenda: dict[str, AgendaItem] = {}
    state = SittingState(
        sitting_id=sitting.reference, panel_id=panel.panel_id, panel_name=panel.name, day=sitting.start.day,
        meets_at=local_moment(sitting.start.day, panel.meets_at, sitting.start.policy.timezone),
        phase=SittingPhase.AGENDA, agenda_built=True,  # its first fact holds the agenda built
    )

    def listed(case_id: str, reasons: list[AgendaCriterion], **more: object) -> None:
        agenda[case_id] = AgendaItem(case_id=case_id, reasons=reasons, required_roles=list(panel.required_roles), **more)

    for fact in own:
        if fact.entry.decision:
            state.history.append(_decision_entry(fact))
        match fact.content:
            case PanelSittingOpened(agenda=cases):
                for case in cases:
                    listed(case.case_id, case.reasons, carried_from=case.carried_from)
            case PanelAgendaEdited(add=added, remove=removed):
                for addition in added:
                    listed(addition.case_id, [AgendaCriterion.MEMBER_REFERRAL], referred_by=addition.referred_by)
                for case_id in removed:
                    agenda.pop(case_id, None)
            case PanelMeetingOpened(held_at=held_at):
                state.phase, state.held_at = SittingPhase.IN_SESSION, held_at
            case PanelAttendanceRecorded(attendees=attendees, absences=absences):
                state.attendees += attendees
                state.absences += absences
            case PanelCaseDecided(case_id=case_id, grade=grade, action_ids=action_ids, absent_roles=absent_roles):
                agenda[case_id] = agenda[case_id].model_copy(update={
                    "decided_at": fact.at, "decided_by": fact.actor.id, "grade": grade, "action_ids": action_ids,
                    "absent_roles": absent_roles})
            case PanelGradeApplied(case_id=case_id, result=result, reason=reason):
                agenda[case_id].grade_applied = GradeApplied(result=result, reason=reason)
            case PanelSittingClosed(not_reached=not_reached):
                state.phase, state.closed_at = SittingPhase.ACTIONS, fact.at
                for case_id in not_reached:
                    agenda[case_id].not_reached = True
    if sitting.ended_at is not None and (moment is None or moment >= sitting.ended_at) and state.closed_at:
        state.phase = SittingPhase.CLOSED
    state.agenda = list(agenda.values())
    state.actions = fold_actions(f for f in facts if f.stream != sitting.reference)
    state.escalations = escalations_from(own)
    return state
