"""The registry of fact kinds: what each fact a workflow records holds, how it reads, whether it is a decision, who sees it.

A fact's kind is a `FactKind` (its value is the string stored in PostgreSQL and in every
recorded history) and its payload one pydantic model per kind. Facts recorded by older code
decode into these models too: a field added since has a default. Deterministic and free of
I/O, so the workflows build their facts from it inside the sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from collections.abc import Iterable
from typing import Annotated, Any, Self, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from workflows.models import (
    Absence,
    ActionOwner,
    Actor,
    EscalationAlert,
    PriorReferralQuery,
    RecordOutcome,
    ScreeningView,
    StartProofCheck,
    AgreedActionSpec,
    Attendee,
    ChildScreeningDecision,
    CloseReason,
    Decision,
    Escalation,
    EscalationResolution,
    MissingChild,
    Model,
    NamedRole,
    PoliceAttendance,
    Rank,
    RiskGrade,
    Role,
    ScreeningOutcome,
    SocialWorker,
    Stage,
    Agency,
    PartnerReferral,
    VistSubmission,
)
from workflows.missing_models import MissingReport
from workflows.plan_models import TriggerPlan, TriggerPlanView
from workflows.models import MissingGrade
from workflows.triage_models import TriageOutcome
from workflows.panel_models import AgendaAddition, AgendaCriterion, PanelAbsence, PanelAttendee, PanelGrade


class FactKind(StrEnum):
    VIST_SUBMITTED = "vist_submitted"
    VIST_RESUBMITTED = "vist_resubmitted"
    STAGE_CHANGED = "stage_changed"
    SUPERVISOR_REVIEWED = "supervisor_reviewed"
    SCREENED = "screened"
    REPEAT_OVERRIDE_REQUESTED = "repeat_override_requested"
    REPEAT_OVERRIDE_DECIDED = "repeat_override_decided"
    # A partner agency's referral, opening its referral at screening; a supervisor's decision not to inform CSC.
    PARTNER_REFERRAL_RECEIVED = "partner_referral_received"
    CSC_NOT_INFORMED_DECIDED = "csc_not_informed_decided"
    STRATEGY_DISCUSSION_HELD = "strategy_discussion_held"
    CONFERENCE_BOOKED = "conference_booked"
    CONFERENCE_HELD = "conference_held"
    RISK_REGRADED = "risk_regraded"
    CLOSED = "closed"
    ESCALATION_RAISED = "escalation_raised"
    ESCALATION_ACKNOWLEDGED = "escalation_acknowledged"
    ESCALATION_RESOLVED = "escalation_resolved"
    ACTION_AGREED = "action_agreed"
    ACTION_REMINDED = "action_reminded"
    ACTION_REASSIGNED = "action_reassigned"
    ACTION_COMPLETED = "action_completed"
    # A missing episode's (workflows/missing.py).
    MISSING_REPORTED = "missing_reported"
    LOW_GRADE_DECIDED = "low_grade_decided"
    EPISODE_REVIEWED = "episode_reviewed"
    TRACING_RECORDED = "tracing_recorded"
    EPISODE_REGRADED = "episode_regraded"
    CHILD_FOUND = "child_found"
    INTERVIEW_RECORDED = "interview_recorded"
    EPISODE_CLOSED = "episode_closed"
    REPEAT_MISSING_FLAGGED = "repeat_missing_flagged"
    TRIAGE_LISTED = "triage_listed"
    TRIAGE_DECIDED = "triage_decided"
    # A child's trigger plan's (workflows/plan.py), and a missing episode reading it.
    TRIGGER_PLAN_WRITTEN = "trigger_plan_written"
    POLICE_ADDENDUM_ADDED = "police_addendum_added"
    TRIGGER_PLAN_ENDED = "trigger_plan_ended"
    TRIGGER_PLAN_READ = "trigger_plan_read"
    # A missing episode with a CSE concern and the open referral about its child, each side recording the link.
    CSE_REFERRAL_LINKED = "cse_referral_linked"
    CSE_EPISODE_LINKED = "cse_episode_linked"
    # A panel's sitting's (workflows/panel.py), each on the sitting's own stream and under its ID.
    PANEL_SITTING_OPENED = "panel_sitting_opened"
    PANEL_AGENDA_EDITED = "panel_agenda_edited"
    PANEL_MEETING_OPENED = "panel_meeting_opened"
    PANEL_ATTENDANCE_RECORDED = "panel_attendance_recorded"
    PANEL_CASE_DECIDED = "panel_case_decided"
    PANEL_GRADE_APPLIED = "panel_grade_applied"
    PANEL_SITTING_CLOSED = "panel_sitting_closed"


# A deadline the workflow computes is recorded as `datetime.isoformat()` ("+00:00", never "Z"):
# kept so, the facts recorded now are byte for byte what they were before they were typed.
IsoTime = Annotated[datetime, PlainSerializer(lambda moment: moment.isoformat(), return_type=str, when_used="json")]
# A structured field shown on a timeline: codes, counts, flags and times, never free text.
Detail = str | bool | int | datetime | None
Summary = dict[str, Detail]


class FactPayload(BaseModel):
    """What a fact says. Free text is plain `str` here: it was checked as the decision came in."""

    # A field a newer recorder added is ignored by older readers, never refused.
    model_config = ConfigDict(extra="ignore", use_enum_values=False)

    @classmethod
    def of(cls, decision: Decision, **more: Any) -> Self:
        """The fact of a decision: its fields as recorded (without who made it or the proof), and `more`."""
        return cls.model_validate(decision.details() | more)

    def summary(self) -> Summary:
        """Its structured fields as a timeline shows them; free text (rationales, notes, names) stays out."""
        return {}

    def recorded(self) -> dict[str, Any]:
        """The payload as stored in PostgreSQL and carried in the history: JSON values."""
        return self.model_dump(mode="json")


# --- the payload of each kind -------------------------------------------------------------


class VistSubmitted(FactPayload):
    version: int = 1
    submission: VistSubmission
    submitted_at: IsoTime | None = Field(
        default=None, description="when the start was accepted, the SLA clock's start; older facts: the fact's own time"
    )

    def submitted(self, recorded_at: datetime) -> datetime:
        return self.submitted_at or recorded_at

    def summary(self) -> Summary:
        form = self.submission
        return {
            "version": self.version,
            "incident_type": form.incident.type.value,
            "children": len(form.children),
            "initial_risk": form.initial_risk.value,
            "section_46": form.section_46 is not None,
        }


class VistResubmitted(VistSubmitted):
    pass


class StageChanged(FactPayload):
    from_stage: Stage | None = None
    to_stage: Stage
    deadline: IsoTime | None = None
    entered_at: IsoTime | None = Field(
        default=None, description="when the decision moving it was made, the stage's clock; older facts: the fact's own time"
    )

    def entered(self, recorded_at: datetime) -> datetime:
        return self.entered_at or recorded_at

    def summary(self) -> Summary:
        return {"from_stage": self.from_stage.value if self.from_stage else None, "to_stage": self.to_stage.value}


class SupervisorReviewed(FactPayload):
    approved: bool
    reasons: str | None = None

    def summary(self) -> Summary:
        return {"approved": self.approved}


class Screened(FactPayload):
    risk: RiskGrade
    child_decisions: list[ChildScreeningDecision]
    outcome: ScreeningOutcome
    rationale: str
    agencies_informed: list[Agency] = Field(default_factory=list)
    # Screenings recorded before a supervisor granted overrides under their own token named one here.
    repeat_referral_override: dict[str, Any] | None = Field(default=None, exclude=True)

    def summary(self) -> Summary:
        return {
            "outcome": self.outcome.value,
            "risk": self.risk.value,
            "agencies_informed": ", ".join(a.value for a in self.agencies_informed) or None,
            # Only screenings recorded before supervisors granted overrides themselves can name one.
            "repeat_referral_override": True if self.repeat_referral_override is not None else None,
        } | {f"child {d.child_id}": d.decision.value for d in self.child_decisions}


class PartnerReferralReceived(VistSubmitted):
    """A partner agency's referral: read like a VIST's first version wherever the form is read."""

    submission: PartnerReferral

    def summary(self) -> Summary:
        return {"agency": self.submission.referring_agency.value, "tool": self.submission.tool.value}


class CscNotInformedDecided(FactPayload):
    rationale: str


class RepeatOverrideRequested(FactPayload):
    reason: str


class RepeatOverrideDecided(FactPayload):
    granted: bool
    rationale: str
    requested_by: str

    def summary(self) -> Summary:
        return {"granted": self.granted, "requested_by": self.requested_by}


class StrategyDiscussionHeld(FactPayload):
    held_at: datetime
    attendees: list[Attendee]
    section_47: bool
    rationale: str
    risk: RiskGrade | None = None
    agreed_actions: list[AgreedActionSpec] = Field(default_factory=list)
    quorate: bool
    # Recorded since named attendance: the required roles absent (with or without a reason in `absences`).
    absences: list[Absence] = Field(default_factory=list)
    missing_roles: list[NamedRole] = Field(default_factory=list)

    def summary(self) -> Summary:
        return {
            "held_at": self.held_at,
            "section_47": self.section_47,
            "quorate": self.quorate,
            "missing_roles": ", ".join(r.value for r in self.missing_roles) or None,
            "attendees": len(self.attendees),
            "agreed_actions": len(self.agreed_actions),
        }


class ConferenceBooked(FactPayload):
    conference_at: datetime
    late_reason: str | None = None
    police_attendance: PoliceAttendance
    attendance_rationale: str | None = None
    report_owner: str | None = None
    due_by: IsoTime | None = None
    # Bookings recorded before the booking moved the deadline carry none.
    deadline: IsoTime | None = None

    def summary(self) -> Summary:
        return {
            "conference_at": self.conference_at,
            "due_by": self.due_by,
            "police_attendance": self.police_attendance.value,
            "late_reason_given": self.late_reason is not None,
        }


class ConferenceHeld(FactPayload):
    held_at: datetime
    child_protection_plan: bool
    police_attended: bool
    rationale: str
    risk: RiskGrade | None = None
    agreed_actions: list[AgreedActionSpec] = Field(default_factory=list)
    # Recorded since plans were held against the child; none before, and none without a plan.
    allocated_social_worker: SocialWorker | None = None

    def summary(self) -> Summary:
        return {
            "held_at": self.held_at,
            "child_protection_plan": self.child_protection_plan,
            "police_attended": self.police_attended,
            "agreed_actions": len(self.agreed_actions),
        }


class RiskRegraded(FactPayload):
    from_risk: RiskGrade
    to_risk: RiskGrade
    reason: str
    deadline: IsoTime | None = None

    def summary(self) -> Summary:
        return {"from_risk": self.from_risk.value, "to_risk": self.to_risk.value, "deadline": self.deadline}


class Closed(FactPayload):
    reason: CloseReason
    note: str | None = None

    def summary(self) -> Summary:
        return {"reason": self.reason.value}


class EscalationRaised(FactPayload):
    escalation: Escalation

    def summary(self) -> Summary:
        e = self.escalation
        return {"escalation_id": e.escalation_id, "rank": e.rank.value, "reason": e.reason}


class EscalationAcknowledged(FactPayload):
    escalation_id: str
    # Recorded since the rung rule; earlier acknowledgements lack them.
    rank: Rank | None = None
    as_named_addressee: bool | None = None

    def summary(self) -> Summary:
        return {
            "escalation_id": self.escalation_id,
            "rank": self.rank.value if self.rank else None,
            "as_named_addressee": self.as_named_addressee,
        }


class EscalationResolved(FactPayload):
    escalation_id: str
    resolution: EscalationResolution

    def summary(self) -> Summary:
        return {"escalation_id": self.escalation_id, "resolution": self.resolution}


class ActionAgreed(FactPayload):
    description: str
    owner: ActionOwner
    deadline: datetime

    def summary(self) -> Summary:
        return {"agency": self.owner.agency.value, "deadline": self.deadline}


class ActionReminded(FactPayload):
    owner: ActionOwner

    def summary(self) -> Summary:
        return {"agency": self.owner.agency.value}


class ActionReassigned(FactPayload):
    owner: ActionOwner
    reason: str
    deadline: datetime | None = None
    from_owner: ActionOwner

    def summary(self) -> Summary:
        return {"from_agency": self.from_owner.agency.value, "to_agency": self.owner.agency.value,
                "deadline": self.deadline}


class ActionCompleted(FactPayload):
    note: str


# --- a missing episode's ---------------------------------------------------------------------


class EpisodeTimes(FactPayload):
    """The grade an episode is treated at (fail safe while a low grade awaits a supervisor), as assessed, and
    the deadlines it sets, as of the fact."""

    grade: MissingGrade
    assessed_grade: MissingGrade
    review_due: IsoTime | None = None
    tracing_due: IsoTime | None = None

    def summary(self) -> Summary:
        return {"grade": self.grade.value, "assessed_grade": self.assessed_grade.value,
                "review_due": self.review_due, "tracing_due": self.tracing_due}


class MissingReported(EpisodeTimes):
    report: MissingReport

    def summary(self) -> Summary:
        return super().summary() | {
            "indicators": ", ".join(i.value for i in self.report.assessment.indicators) or None,
            "missing_since": self.report.missing_since,
        }


class LowGradeDecided(EpisodeTimes):
    keep_low: bool
    rationale: str

    def summary(self) -> Summary:
        return super().summary() | {"keep_low": self.keep_low}


class EpisodeReviewed(EpisodeTimes):
    tracing_done: str
    next_steps: str
    reviewer_rank: str | None = None
    tracing_actions: list[AgreedActionSpec] = Field(default_factory=list)

    def summary(self) -> Summary:
        return super().summary() | {"reviewer_rank": self.reviewer_rank, "tracing_actions": len(self.tracing_actions)}


class TracingRecorded(EpisodeTimes):
    activity: str
    note: str | None = None
    # A tracing action's completion is tracing too: its ID, when that is what was recorded.
    action_id: str | None = None

    def summary(self) -> Summary:
        return super().summary() | {"activity": self.activity, "action_id": self.action_id}


class EpisodeRegraded(EpisodeTimes):
    from_grade: MissingGrade
    reason: str

    def summary(self) -> Summary:
        return super().summary() | {"from_grade": self.from_grade.value}


class ChildFound(FactPayload):
    found_at: datetime
    where: str
    how: str
    safe_and_well: str
    safe_and_well_at: datetime
    interviewer: ActionOwner
    interview_due: IsoTime

    def summary(self) -> Summary:
        return {
            "found_at": self.found_at,
            "where": self.where,
            "how": self.how,
            "safe_and_well": self.safe_and_well,
            "interview_due": self.interview_due,
        }


class InterviewRecorded(FactPayload):
    outcome: str
    held_at: datetime | None = None
    reasons: str | None = None
    intelligence_for_police: str | None = None

    def summary(self) -> Summary:
        return {"outcome": self.outcome, "held_at": self.held_at,
                "intelligence_for_police": self.intelligence_for_police is not None}


class RepeatMissingFlagged(FactPayload):
    """At report time the child had this many episodes (this one included) in the policy's window."""

    episodes: int
    window_days: int

    def summary(self) -> Summary:
        return {"episodes": self.episodes, "window_days": self.window_days}


class EpisodeClosed(FactPayload):
    interview_outcome: str

    def summary(self) -> Summary:
        return {"interview_outcome": self.interview_outcome}


class TriageListed(FactPayload):
    """A referral put on a day's domestic-abuse triage list, with how much history it brings."""

    day: date
    due_at: IsoTime
    prior_referrals: int = 0

    def summary(self) -> Summary:
        return {"day": self.day.isoformat(), "due_at": self.due_at, "prior_referrals": self.prior_referrals}


class TriageDecided(FactPayload):
    day: date
    outcome: TriageOutcome
    rationale: str

    def summary(self) -> Summary:
        return {"day": self.day.isoformat(), "outcome": self.outcome.value}


# --- a child's trigger plan's -------------------------------------------------------------------


class TriggerPlanWritten(FactPayload):
    """A version of the plan: the first names the child (matched in the read model by identity key only)."""

    version: int
    plan: TriggerPlan
    child: MissingChild | None = None
    folds_in: list[int] = Field(default_factory=list)

    def summary(self) -> Summary:
        return {"version": self.version, "review_by": self.plan.review_by,
                "folds_in": ", ".join(str(n) for n in self.folds_in) or None}


class PoliceAddendumAdded(FactPayload):
    number: int
    information: str
    fold_in_action_id: str | None = None

    def summary(self) -> Summary:
        return {"number": self.number, "fold_in_action_id": self.fold_in_action_id}


class TriggerPlanEnded(FactPayload):
    reason: str


class TriggerPlanRead(FactPayload):
    """What a new missing report found of the child's trigger plan, and whether the child must have a current one."""

    plan: TriggerPlanView | None = None
    required: bool

    def summary(self) -> Summary:
        plan = self.plan
        return {"plan_id": plan.plan_id if plan else None, "version": plan.version if plan else None,
                "current": plan.current if plan else False, "required": self.required}


class CseReferralLinked(FactPayload):
    """On the episode: an open referral about the child, linked because of the episode's CSE concern."""

    reference: str

    def summary(self) -> Summary:
        return {"reference": self.reference}


class CseEpisodeLinked(FactPayload):
    """On the referral: a missing episode of its child with a CSE concern, linked to it."""

    episode_id: str

    def summary(self) -> Summary:
        return {"episode_id": self.episode_id}


class ListedCase(FactPayload):
    case_id: str
    reasons: list[AgendaCriterion]
    carried_from: str | None = None


class PanelSittingOpened(FactPayload):
    """A sitting opened by its panel's cadence, with the agenda its criteria built."""

    panel_id: str
    panel_name: str
    day: date
    meets_at: IsoTime
    agenda: list[ListedCase] = Field(default_factory=list)

    def summary(self) -> Summary:
        return {"panel_id": self.panel_id, "day": self.day.isoformat(), "meets_at": self.meets_at,
                "cases": len(self.agenda), "carried": sum(1 for c in self.agenda if c.carried_from) or None}


class PanelAgendaEdited(FactPayload):
    add: list[AgendaAddition] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)
    reason: str

    def summary(self) -> Summary:
        return {"added": ", ".join(a.case_id for a in self.add) or None, "removed": ", ".join(self.remove) or None,
                "referred_by": ", ".join(sorted({a.referred_by.value for a in self.add})) or None}


class PanelMeetingOpened(FactPayload):
    held_at: IsoTime

    def summary(self) -> Summary:
        return {"held_at": self.held_at}


class PanelAttendanceRecorded(FactPayload):
    attendees: list[PanelAttendee] = Field(default_factory=list)
    absences: list[PanelAbsence] = Field(default_factory=list)

    def summary(self) -> Summary:
        return {"attendees": len(self.attendees), "agencies": ", ".join(sorted({a.agency.value for a in self.attendees})) or None,
                "absences": len(self.absences)}


class PanelCaseDecided(FactPayload):
    case_id: str
    grade: PanelGrade | None = None
    rationale: str
    agreed_actions: list[AgreedActionSpec] = Field(default_factory=list)
    action_ids: list[str] = Field(default_factory=list)
    absent_roles: list[NamedRole] = Field(default_factory=list)

    def summary(self) -> Summary:
        return {"case_id": self.case_id, "grade": self.grade.value if self.grade else None,
                "agreed_actions": len(self.agreed_actions),
                "absent_roles": ", ".join(r.value for r in self.absent_roles) or None}


class PanelGradeApplied(FactPayload):
    """What became of a panel's grade on the child's live case: applied, unchanged, or refused (with its reason)."""

    case_id: str
    grade: PanelGrade
    result: str
    reason: str | None = None

    def summary(self) -> Summary:
        return {"case_id": self.case_id, "grade": self.grade.value, "result": self.result}


class PanelSittingClosed(FactPayload):
    """The meeting ended and its minutes were made; cases not reached are carried to the next sitting."""

    decided: list[str] = Field(default_factory=list)
    not_reached: list[str] = Field(default_factory=list)

    def summary(self) -> Summary:
        return {"decided": len(self.decided), "not_reached": ", ".join(self.not_reached) or None}


# --- the registry ----------------------------------------------------------------------------

# Who reads a referral's facts today: its timeline on the dashboard, its decision history in the
# API. A partner agency sees its own agreed actions only, never the facts.
FACT_READERS = frozenset(Role) - {Role.PARTNER, Role.CALL_HANDLER, Role.SYSTEM}


@dataclass(frozen=True)
class FactEntry:
    """One kind of fact: its payload model, its label on a timeline, and the rules that read it."""

    payload: type[FactPayload]
    label: str
    # A person's decision, kept in the referral's decision history (`ReferralState.history`).
    decision: bool = False
    visible_to: frozenset[Role] = FACT_READERS


FACTS: dict[FactKind, FactEntry] = {
    FactKind.VIST_SUBMITTED: FactEntry(VistSubmitted, "VIST submitted"),
    FactKind.VIST_RESUBMITTED: FactEntry(VistResubmitted, "VIST resubmitted"),
    FactKind.STAGE_CHANGED: FactEntry(StageChanged, "stage changed"),
    FactKind.SUPERVISOR_REVIEWED: FactEntry(SupervisorReviewed, "supervisor reviewed", decision=True),
    FactKind.SCREENED: FactEntry(Screened, "screened", decision=True),
    FactKind.REPEAT_OVERRIDE_REQUESTED: FactEntry(RepeatOverrideRequested, "override requested", decision=True),
    FactKind.REPEAT_OVERRIDE_DECIDED: FactEntry(RepeatOverrideDecided, "override decided", decision=True),
    FactKind.PARTNER_REFERRAL_RECEIVED: FactEntry(PartnerReferralReceived, "partner referral received"),
    FactKind.CSC_NOT_INFORMED_DECIDED: FactEntry(
        CscNotInformedDecided, "children's social care not to be informed", decision=True
    ),
    FactKind.STRATEGY_DISCUSSION_HELD: FactEntry(StrategyDiscussionHeld, "strategy discussion held", decision=True),
    FactKind.CONFERENCE_BOOKED: FactEntry(ConferenceBooked, "conference booked", decision=True),
    FactKind.CONFERENCE_HELD: FactEntry(ConferenceHeld, "conference held", decision=True),
    FactKind.RISK_REGRADED: FactEntry(RiskRegraded, "risk regraded", decision=True),
    FactKind.CLOSED: FactEntry(Closed, "closed", decision=True),
    FactKind.ESCALATION_RAISED: FactEntry(EscalationRaised, "escalation raised"),
    FactKind.ESCALATION_ACKNOWLEDGED: FactEntry(EscalationAcknowledged, "escalation acknowledged"),
    FactKind.ESCALATION_RESOLVED: FactEntry(EscalationResolved, "escalation resolved"),
    FactKind.ACTION_AGREED: FactEntry(ActionAgreed, "action agreed"),
    FactKind.ACTION_REMINDED: FactEntry(ActionReminded, "action reminded"),
    FactKind.ACTION_REASSIGNED: FactEntry(ActionReassigned, "action reassigned"),
    FactKind.ACTION_COMPLETED: FactEntry(ActionCompleted, "action completed"),
    FactKind.MISSING_REPORTED: FactEntry(MissingReported, "reported missing", decision=True),
    FactKind.LOW_GRADE_DECIDED: FactEntry(LowGradeDecided, "low grade decided", decision=True),
    FactKind.EPISODE_REVIEWED: FactEntry(EpisodeReviewed, "episode reviewed", decision=True),
    FactKind.TRACING_RECORDED: FactEntry(TracingRecorded, "tracing recorded", decision=True),
    FactKind.EPISODE_REGRADED: FactEntry(EpisodeRegraded, "episode regraded", decision=True),
    FactKind.CHILD_FOUND: FactEntry(ChildFound, "child found", decision=True),
    FactKind.INTERVIEW_RECORDED: FactEntry(InterviewRecorded, "return-home interview recorded", decision=True),
    FactKind.EPISODE_CLOSED: FactEntry(EpisodeClosed, "episode closed"),
    FactKind.REPEAT_MISSING_FLAGGED: FactEntry(RepeatMissingFlagged, "flagged repeat-missing", decision=True),
    FactKind.TRIAGE_LISTED: FactEntry(TriageListed, "listed for triage"),
    FactKind.TRIAGE_DECIDED: FactEntry(TriageDecided, "triaged", decision=True),
    FactKind.TRIGGER_PLAN_WRITTEN: FactEntry(TriggerPlanWritten, "trigger plan written", decision=True),
    FactKind.POLICE_ADDENDUM_ADDED: FactEntry(PoliceAddendumAdded, "police addendum added", decision=True),
    FactKind.TRIGGER_PLAN_ENDED: FactEntry(TriggerPlanEnded, "trigger plan ended", decision=True),
    FactKind.TRIGGER_PLAN_READ: FactEntry(TriggerPlanRead, "trigger plan read"),
    FactKind.CSE_REFERRAL_LINKED: FactEntry(CseReferralLinked, "referral linked (CSE concern)"),
    FactKind.CSE_EPISODE_LINKED: FactEntry(CseEpisodeLinked, "missing episode linked (CSE concern)"),
    FactKind.PANEL_SITTING_OPENED: FactEntry(PanelSittingOpened, "panel sitting opened"),
    FactKind.PANEL_AGENDA_EDITED: FactEntry(PanelAgendaEdited, "panel agenda edited", decision=True),
    FactKind.PANEL_MEETING_OPENED: FactEntry(PanelMeetingOpened, "panel meeting opened", decision=True),
    FactKind.PANEL_ATTENDANCE_RECORDED: FactEntry(PanelAttendanceRecorded, "panel attendance recorded", decision=True),
    FactKind.PANEL_CASE_DECIDED: FactEntry(PanelCaseDecided, "panel decided a case", decision=True),
    FactKind.PANEL_GRADE_APPLIED: FactEntry(PanelGradeApplied, "panel grade applied"),
    FactKind.PANEL_SITTING_CLOSED: FactEntry(PanelSittingClosed, "panel minutes made", decision=True),
}

DECISION_KINDS = frozenset(kind for kind, entry in FACTS.items() if entry.decision)


def visible_to(role: Role, kind: str) -> bool:
    """Whether `role` may see facts of `kind` (a stored kind, or a decision history's entry)."""
    return role in FACTS[FactKind(kind)].visible_to
KIND_OF: dict[type[FactPayload], FactKind] = {entry.payload: kind for kind, entry in FACTS.items()}


def kind_of(payload: FactPayload) -> FactKind:
    return KIND_OF[type(payload)]


class RecordedEvent(Model):
    """A fact for the PostgreSQL read model; (stream, seq) makes its write idempotent.

    `payload` is the fact's content as recorded (JSON values); `content` reads it as its kind's model.
    """

    stream: str = Field(description="the workflow that recorded it: a case (a referral, a missing episode) or one of its agreed actions")
    seq: int
    reference: str
    kind: FactKind
    at: datetime
    actor: Actor
    stage: Stage | None = Field(
        default=None, description="the referral's stage; none on an agreed action's or a missing episode's facts"
    )
    risk: RiskGrade | None = None
    payload: dict[str, Any] = Field(default_factory=dict)

    @property
    def entry(self) -> FactEntry:
        return FACTS[FactKind(self.kind)]

    @property
    def content(self) -> FactPayload:
        """The payload as its kind's model; a ValidationError (a ValueError) when it is not one."""
        return self.entry.payload.model_validate(self.payload)


class FactBatch(Model):
    """A workflow's waiting facts, in order, for one `record_facts` activity; with the escalations' alerts among
    them, by the fact's seq, each written in-app in the same transaction as its fact."""

    events: list[RecordedEvent]
    alerts: dict[int, EscalationAlert] = Field(default_factory=dict)
    then_read: PriorReferralQuery | None = Field(
        default=None, description="a screening view to read in the same transaction, once the facts are written"
    )
    start_check: StartProofCheck | None = Field(
        default=None, description="a referral's start, its proof checked before any fact of the batch is written"
    )


class RecordedBatch(Model):
    """What `record_facts` did with each fact of a batch, and the screening view it read after them, if asked;
    or, when the start it was to check has no valid proof, why (and nothing is written)."""

    outcomes: list[RecordOutcome]
    screening_view: ScreeningView | None = None
    start_refusal: str | None = None
    written: list[RecordedEvent] | None = Field(
        default=None,
        description="the batch's facts, echoed by a local activity: its marker in the history holds its result, "
        "not its input, and the audit reads the facts from here",
    )


P = TypeVar("P", bound=FactPayload)


def contents(facts: Iterable[RecordedEvent], model: type[P]) -> list[tuple[RecordedEvent, P]]:
    """Each fact whose kind records `model` (or a model derived from it), with its payload read as one."""
    return [(fact, cast(P, fact.content)) for fact in facts if issubclass(fact.entry.payload, model)]
