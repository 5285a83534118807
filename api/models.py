"""The API's bodies: each decision's request is the workflow's decision model without `actor`, `proof` or what it forwards.

The actor comes from the caller's token, and the proof of it from the API's own key; a body
that names either is rejected like any other unknown field. Request models are derived from the decision models
(starter/decisions.py), so a field's type, limits and description are written once, in workflows/models.py; the
decision's own cross-field rules run when the API builds the decision from the request and the actor.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

# Each decision's request model, made where the dashboard's forms make theirs too.
from starter.decisions import request_model  # noqa: F401
from workflows.missing_models import EpisodePhase, InterviewOutcome
from workflows.panel_models import Panel
from workflows.plan_models import TriggerPlanView
from workflows.models import (
    Agency,
    NamedRole,
    MissingGrade,
    CloseReason,
    Escalation,
    IncidentType,
    Model,
    RiskGrade,
    Stage,
    Text,
)


# --- responses ----------------------------------------------------------------------------


class Intake(BaseModel):
    """A submitted form's referral (a VIST's or a partner agency's): new (201) or the one this form already made (200)."""

    reference: str
    stage: Stage
    risk: RiskGrade
    deadline: datetime | None = None
    created: bool = Field(description="false when the same form had already been submitted")


class ReferralSummary(BaseModel):
    """One referral in a list, from the read model: references and grades only, no personal data."""

    reference: str
    stage: Stage
    risk: RiskGrade
    incident_type: IncidentType | None = Field(description="none while the submission's fact is quarantined")
    submitted_at: datetime
    updated_at: datetime
    deadline: datetime | None = None
    overdue: bool
    closed_at: datetime | None = None
    close_reason: CloseReason | None = None
    record_incomplete: bool = Field(
        default=False, description="a fact of this referral could not be recorded and is quarantined"
    )


class ReferralPage(BaseModel):
    items: list[ReferralSummary]
    next_cursor: str | None = Field(default=None, description="pass as `cursor` for the next page; none on the last")


class EscalationPage(BaseModel):
    items: list[Escalation]
    next_cursor: str | None = None


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="where the bad value is, e.g. body.children.0.date_of_birth")
    msg: str = Field(description="why it is rejected; never repeats the submitted value")
    type: str


class ProblemDetails(BaseModel):
    """Every error, as RFC 9457 problem details (`application/problem+json`): never a submitted value."""

    type: str = Field(default="about:blank", description="the kind of problem: its HTTP status says it all")
    title: str = Field(description="the HTTP status's phrase, e.g. Conflict")
    status: int = Field(description="the HTTP status code")
    detail: str = Field(description="why, in words: for a refused decision, the field and the rule")
    instance: str = Field(description="this occurrence's ID (urn:uuid:...), also in the API's log")
    field: str | None = Field(default=None, description="the field the reason is about, when there is one")


class ValidationProblem(ProblemDetails):
    """A request refused as it came in (422): each bad field and why."""

    errors: list[FieldError]


class Undecided(ProblemDetails):
    """A decision not confirmed in time (504): it is applied at most once; the same key tells the outcome."""

    idempotency_key: str = Field(description="send it again as the Idempotency-Key header to learn the outcome")


class MissingIntake(BaseModel):
    """A missing report's episode: new (201) or the one this report already opened (200)."""

    episode_id: str
    phase: EpisodePhase
    grade: MissingGrade = Field(description="the grade it is treated at: high while an implausible low grade awaits a supervisor")
    low_grade_pending: bool
    review_due: datetime | None = None
    tracing_due: datetime | None = None
    trigger_plan: TriggerPlanView | None = Field(
        default=None, description="the child's trigger plan, for the tracing officers at once: where to look first"
    )
    trigger_plan_required: bool | None = Field(
        default=None, description="a repeat-missing child or a CSE concern must have a current plan (none: not read yet)"
    )
    created: bool = Field(description="false when the same report had already been made")


class EpisodeSummary(BaseModel):
    """One missing episode in a list, from the read model: IDs, grades, codes and times, no personal data."""

    episode_id: str
    phase: EpisodePhase
    grade: MissingGrade
    assessed_grade: MissingGrade
    reported_at: datetime
    missing_since: datetime
    updated_at: datetime
    review_due: datetime | None = None
    tracing_due: datetime | None = None
    overdue: bool = Field(description="still missing and a review or tracing is late")
    found_at: datetime | None = None
    interview_due: datetime | None = None
    interview_outcome: InterviewOutcome | None = None
    closed_at: datetime | None = None


class FrequentlyMissingChild(BaseModel):
    """A child with episodes in the window, named by their latest episode's ID only: counts and times."""

    latest_episode_id: str
    episodes: int = Field(description="episodes reported in the window")
    open_episodes: int = Field(description="of them, not yet closed")
    missing_now: bool = Field(description="an episode has the child missing still")
    repeat_missing: bool = Field(description="the episodes reach the policy's repeat-missing count")
    last_reported_at: datetime


class MostFrequentlyMissing(BaseModel):
    since: datetime = Field(description="the window's start: the policy's repeat-missing window back from now")
    items: list[FrequentlyMissingChild]


class EpisodePage(BaseModel):
    items: list[EpisodeSummary]
    next_cursor: str | None = Field(default=None, description="pass as `cursor` for the next page; none on the last")


class PlanDue(BaseModel):
    """A trigger plan due for review, from the read model: its ID, version, owner and review date; no child data."""

    plan_id: str
    version: int
    owner: str
    owner_manager: str | None = None
    review_by: datetime
    overdue: bool = Field(description="past its review date without a new version")
    addenda_waiting: int = Field(description="police addenda not yet folded into the plan")


class PlansDue(BaseModel):
    until: datetime
    items: list[PlanDue]


class AddressEnquiry(Model):
    """An address an officer is about to attend: sent in a body, never a URL, and never kept or logged."""

    address: Text


class AddressWarning(BaseModel):
    """Whether children at risk are known at an address: the minimum an attending officer needs, counts only."""

    children_at_risk: bool = Field(description="any of the counts below is above zero: ask the CRU before attending")
    open_referrals: int = Field(description="open referrals about children living there, or about an incident there")
    children_on_plans: int = Field(description="those children on a live child protection plan")
    children_missing: int = Field(description="those children missing now")


class PanelListing(BaseModel):
    """A panel whose cadence is scheduled, and when its next agendas are built."""

    panel: Panel
    next_agendas: list[datetime] = Field(description="when the schedule next builds an agenda (the sitting follows)")


class SittingSummary(BaseModel):
    """One sitting in a list, from the read model: IDs, counts and times."""

    sitting_id: str
    panel_id: str
    panel_name: str
    day: date
    meets_at: datetime
    phase: str = Field(description="agenda, in_session, or minuted")
    held_at: datetime | None = None
    closed_at: datetime | None = None
    cases: int
    decided: int
    carried: int = Field(description="cases carried from an earlier sitting")
    not_reached: int


class AbsentAttendee(BaseModel):
    """A required role absent when a case was decided at a panel, and the escalation it raised."""

    sitting_id: str
    panel_name: str
    day: date
    case_id: str
    named_role: NamedRole
    reason_given: bool
    escalated: bool
    at: datetime
    escalation_id: str | None = None
    open: bool | None = Field(default=None, description="the escalation is neither acknowledged nor resolved")


class PanelAction(BaseModel):
    """An action a panel set, with its case, owner's agency and deadline."""

    action_id: str
    sitting_id: str
    case_id: str | None = None
    agency: Agency
    owner: str
    deadline: datetime
    completed_at: datetime | None = None


class TriageListing(BaseModel):
    """A day's triage that listed the referral, and its decision."""

    triage_id: str
    day: date
    listed_at: datetime
    due_at: datetime
    outcome: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None


class PanelListingOfCase(BaseModel):
    """A panel sitting that had the case on its agenda, and what it decided for it."""

    sitting_id: str
    panel_name: str
    day: date
    reasons: list[str]
    decided_at: datetime | None = None
    grade: str | None = None
    grade_result: str | None = Field(default=None, description="applied, unchanged or refused on the live case")
    action_ids: list[str]
    absent_roles: list[str]
    not_reached: bool


class CaseMeetings(BaseModel):
    """The meetings a case was listed at: the days' triages (a referral's), the panels' sittings."""

    triage: list[TriageListing]
    panels: list[PanelListingOfCase]
