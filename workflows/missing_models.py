"""A missing episode's data: the report and its risk assessment, every decision on the episode, and its state.

The shared vocabulary (actors, grades, durations, agreed actions, escalations, the episode's ID)
is workflows/models.py's; what only a missing episode says is here. A child reported missing is
always missing: there is no "absent" category. Free text stays in the fields named for it; where
the child was found and how are codes, so no address reaches a log or a summary.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import Field, field_validator, model_validator

from workflows.plan_models import TriggerPlanView
from workflows.models import (
    CLOCK_SKEW,
    ActionOwner,
    ActionState,
    Actor,
    Agency,
    AgreedActionSpec,
    AwareDatetime,
    Decision,
    DecisionProof,
    Escalation,
    HistoryEntry,
    MissingChild,
    MissingGrade,
    Model,
    ShortText,
    SlaPolicy,
    Text,
)


class RiskIndicator(StrEnum):
    SELF_HARM = "self_harm"
    DRUGS_OR_ALCOHOL = "drugs_or_alcohol"
    UNKNOWN_ADULT = "unknown_adult"
    CSE_CONCERN = "cse_concern"
    FIRST_EPISODE = "first_episode"
    UNDER_12 = "under_12"
    IN_CARE = "in_care"


# Indicators with which a low grade is implausible: it stands only on a supervisor's decision.
LOW_GRADE_IMPLAUSIBLE = frozenset(
    {RiskIndicator.SELF_HARM, RiskIndicator.CSE_CONCERN, RiskIndicator.UNKNOWN_ADULT, RiskIndicator.UNDER_12}
)
# The grade an episode is treated at while a low grade with those indicators awaits that decision.
FAIL_SAFE_GRADE = MissingGrade.HIGH


class RiskAssessment(Model):
    grade: MissingGrade
    indicators: list[RiskIndicator] = Field(default_factory=list, max_length=len(RiskIndicator))

    @field_validator("indicators")
    @classmethod
    def _each_once(cls, indicators: list[RiskIndicator]) -> list[RiskIndicator]:
        if len(set(indicators)) != len(indicators):
            raise ValueError("an indicator is listed more than once")
        return indicators

    @property
    def low_needs_supervisor(self) -> bool:
        """A low grade that only a supervisor's decision may keep (indicators make it implausible)."""
        return self.grade is MissingGrade.LOW and bool(LOW_GRADE_IMPLAUSIBLE.intersection(self.indicators))


class MissingReport(Model):
    report_id: uuid.UUID = Field(description="the report's own ID (the call handler's log): the same report, the same episode")
    child: MissingChild
    missing_since: AwareDatetime
    assessment: RiskAssessment
    station: ShortText = Field(description="the station whose supervisors review the episode")
    circumstances: Text | None = Field(default=None, description="how the child went missing (never logged)")


class StartMissingEpisode(Model):
    report: MissingReport
    reported_by: Actor
    sla_policy: SlaPolicy | None = Field(
        default=None, description="omitted: the worker's configured policy is loaded by an activity"
    )
    proof: DecisionProof | None = Field(default=None, description="set by the API's client, never by a caller")


class EpisodeCountQuery(Model):
    """The episodes of this episode's child (by identity key) reported from `since` up to this one, itself included."""

    episode_id: str
    since: datetime


class OpenReferralQuery(Model):
    """The referrals not yet closed about a missing episode's child (same identity key)."""

    episode_id: str


class OpenReferrals(Model):
    references: list[str] = Field(default_factory=list)


class EpisodeStartProofCheck(Model):
    """An episode's start, checked against its proof before anything is recorded."""

    workflow_id: str
    workflow_type: str
    start: StartMissingEpisode


# The steps whose lateness climbs the ladder while the child is missing (an escalation's subject), as alerts name them.
REVIEW = "review"
TRACING = "tracing"
# Not late but missing: the referral a child missing with a CSE concern must have (reason `no_cse_referral`).
CSE_REFERRAL = "cse_referral"
# Not late but missing: the trigger plan a repeat-missing child or one with a CSE concern must have (reason `no_trigger_plan`).
TRIGGER_PLAN = "trigger_plan"
EPISODE_STEPS = {REVIEW: "review of a missing child's episode", TRACING: "tracing activity for a missing child"}


# --- decisions on an episode (each a workflow update) --------------------------------------


class LowGradeDecision(Decision):
    """A supervisor keeps a low grade that the indicators make implausible, or refuses it (the episode goes high)."""

    keep_low: bool
    rationale: Text


class TracingActivity(StrEnum):
    HOME_ADDRESS_SEARCHED = "home_address_searched"
    ADDRESSES_VISITED = "addresses_visited"
    ASSOCIATES_CONTACTED = "associates_contacted"
    PHONE_OR_SOCIAL_MEDIA = "phone_or_social_media"
    CCTV_REVIEWED = "cctv_reviewed"
    HOSPITALS_CHECKED = "hospitals_checked"
    PARTNER_AGENCIES_ASKED = "partner_agencies_asked"
    PUBLICITY = "publicity"
    OTHER = "other"


class TracingRecord(Decision):
    """Tracing done for the missing child: what kind, and a note."""

    activity: TracingActivity
    note: Text | None = None


class EpisodeReview(Decision):
    """A supervisor's review: what tracing was done, what is next, the grade now, and tracing actions agreed."""

    tracing_done: Text
    next_steps: Text
    grade: MissingGrade | None = Field(default=None, description="the grade the review sets, when it changes it")
    tracing_actions: list[AgreedActionSpec] = Field(default_factory=list, max_length=20)


class EpisodeRegrade(Decision):
    grade: MissingGrade
    reason: Text


class FoundWhere(StrEnum):
    HOME = "home"
    CARE_PLACEMENT = "care_placement"
    RELATIVE_OR_FRIEND = "relative_or_friend"
    PUBLIC_PLACE = "public_place"
    HOSPITAL = "hospital"
    POLICE_STATION = "police_station"
    OTHER_ADDRESS = "other_address"


class FoundHow(StrEnum):
    RETURNED_THEMSELVES = "returned_themselves"
    FOUND_BY_POLICE = "found_by_police"
    FOUND_BY_FAMILY_OR_CARER = "found_by_family_or_carer"
    FOUND_BY_OTHER_AGENCY = "found_by_other_agency"


class SafeAndWell(StrEnum):
    SAFE_AND_WELL = "safe_and_well"
    CONCERNS_RAISED = "concerns_raised"
    REFUSED = "refused"


class Found(Decision):
    """The child is found or has returned: where and how (codes), the police safe-and-well check, and who
    in children's social care holds the return-home interview (their manager is alerted when it is late)."""

    found_at: AwareDatetime
    where: FoundWhere
    how: FoundHow
    safe_and_well: SafeAndWell
    safe_and_well_at: AwareDatetime
    interviewer: ActionOwner

    @model_validator(mode="after")
    def _consistent(self) -> "Found":
        if self.safe_and_well_at < self.found_at:
            raise ValueError("safe_and_well_at: is before the child was found")
        if self.interviewer.agency is not Agency.CHILDRENS_SOCIAL_CARE:
            raise ValueError("interviewer.agency: the return-home interview is children's social care's")
        if self.interviewer.supervisor is None:
            raise ValueError("interviewer.supervisor: the social worker's manager is alerted when it is late")
        return self


class InterviewOutcome(StrEnum):
    DONE = "done"
    DECLINED = "declined"
    COULD_NOT_BE_HELD = "could_not_be_held"


class ReturnHomeInterview(Decision):
    """The return-home interview's outcome, with reasons when it was not held, and the intelligence for police."""

    outcome: InterviewOutcome
    held_at: AwareDatetime | None = Field(default=None, description="when it was held (required when done)")
    reasons: Text | None = Field(default=None, description="why it was declined or could not be held")
    intelligence_for_police: Text | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "ReturnHomeInterview":
        if self.outcome is InterviewOutcome.DONE and self.held_at is None:
            raise ValueError("held_at: required when the interview was held")
        if self.outcome is not InterviewOutcome.DONE and self.reasons is None:
            raise ValueError("reasons: required when the interview was declined or could not be held")
        return self


# --- what the episode reports ---------------------------------------------------------------


class EpisodePhase(StrEnum):
    MISSING = "missing"
    RETURNED = "returned"  # found; the return-home interview is awaited
    CLOSED = "closed"


class ReviewState(Model):
    reviewed_at: datetime
    reviewed_by: str
    grade: MissingGrade


class EpisodeState(Model):
    episode_id: str
    phase: EpisodePhase
    grade: MissingGrade = Field(description="the grade the episode is treated at (fail safe while a low grade awaits a supervisor)")
    assessed_grade: MissingGrade = Field(description="the grade as assessed, before the fail-safe rule")
    indicators: list[RiskIndicator] = Field(default_factory=list)
    low_grade_pending: bool = Field(description="a low grade awaits a supervisor's decision; treated high until then")
    reported_at: datetime
    reported_by: str
    missing_since: datetime
    repeat_missing: bool = Field(default=False, description="the child had the policy's count of episodes in its window at report time")
    episodes_in_window: int | None = Field(
        default=None, description="the child's episodes in the policy's window at report time, this one included"
    )
    trigger_plan: TriggerPlanView | None = Field(
        default=None, description="the child's trigger plan as the report found it, shown to the tracing officers"
    )
    trigger_plan_required: bool | None = Field(
        default=None,
        description="a repeat-missing child or a CSE concern: the child must have a current plan (none until the plan is read)",
    )
    linked_referrals: list[str] = Field(
        default_factory=list, description="open referrals about the child, linked because of a CSE concern"
    )
    review_due: datetime | None = None
    tracing_due: datetime | None = Field(default=None, description="tracing activity is due by then, or the ladder climbs")
    last_tracing_at: datetime | None = None
    reviews: list[ReviewState] = Field(default_factory=list)
    found_at: datetime | None = None
    where_found: FoundWhere | None = None
    interview_action_id: str | None = None
    interview_due: datetime | None = None
    interview_outcome: InterviewOutcome | None = None
    actions: list[ActionState] = Field(default_factory=list)
    escalations: list[Escalation] = Field(default_factory=list)
    history: list[HistoryEntry] = Field(default_factory=list)

    @property
    def open_actions(self) -> list[ActionState]:
        return [a for a in self.actions if a.completed_at is None]


def not_in_future(moment: datetime, now: datetime, field: str) -> str | None:
    """"field: reason" when `moment` has not happened yet at `now` (the reporter's clock may run a little fast)."""
    return f"{field}: is in the future" if moment > now + CLOCK_SKEW else None
