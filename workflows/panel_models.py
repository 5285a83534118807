"""A multi-agency panel's models (a CSE/missing MARAC): the panel and its cadence, a sitting's agenda, attendance, each case's outcome and the minutes.

Imported by the panel workflows, the activities that build an agenda and apply a grade, and the
clients alike. An agenda names cases by their workflow IDs (a referral, a missing episode) with
codes and counts: never a child's name, date or address.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from enum import StrEnum

from pydantic import Field, field_validator, model_validator

from workflows.missing_models import EpisodeRegrade
from workflows.models import (
    EPISODE_PREFIX,
    LIVE_CASE_PATTERN,
    PANEL_ID_PATTERN,
    Agency,
    AgreedActionSpec,
    Decision,
    DomainDate,
    Escalation,
    ActionState,
    ForwardedDecision,
    HistoryEntry,
    MissingGrade,
    Model,
    NamedRole,
    RiskGrade,
    RiskRegrade,
    ShortText,
    SlaPolicy,
    Text,
    require_owner_and_deadline,
)

LiveCaseId = str  # checked by LIVE_CASE_PATTERN where it enters
LIVE_CASE = re.compile(rf"^{LIVE_CASE_PATTERN}$")


class AgendaCriterion(StrEnum):
    """Why a case is on a sitting's agenda."""

    REPEAT_MISSING = "repeat_missing"  # an episode flagged repeat-missing in the panel's window
    CSE_CONCERN = "cse_concern"  # an episode with a CSE concern, or an open CSE referral
    TRIGGER_PLAN_DUE = "trigger_plan_due"  # the child's trigger plan is due for review by the meeting
    MEMBER_REFERRAL = "member_referral"  # referred to the panel by one of its member agencies
    CARRIED = "carried"  # not reached at the last sitting


class Cadence(StrEnum):
    MONTHLY = "monthly"
    FORTNIGHTLY = "fortnightly"


class SittingPhase(StrEnum):
    AGENDA = "agenda"  # the agenda is built and may be edited
    IN_SESSION = "in_session"  # the meeting is held: attendance and each case's outcome
    ACTIONS = "actions"  # the minutes are made; the agreed actions run to completion
    CLOSED = "closed"


class PanelGrade(StrEnum):
    """The grade a panel decides: a referral's (standard, medium, high) or a missing episode's (low, medium, high)."""

    LOW = "low"
    STANDARD = "standard"
    MEDIUM = "medium"
    HIGH = "high"


def is_episode(case_id: str) -> bool:
    return case_id.startswith(EPISODE_PREFIX)


# --- the panel and its cadence ---------------------------------------------------------------


class Panel(Model):
    """A standing multi-agency panel of an area: who sits on it, when it meets, and what it takes."""

    panel_id: str = Field(pattern=rf"^{PANEL_ID_PATTERN}$", description="a short code naming the panel: CSENORTH")
    name: ShortText = Field(description="e.g. CSE and missing MARAC, North area")
    area: ShortText
    cadence: Cadence
    first_sitting: DomainDate = Field(description="the date of a sitting: the cadence runs on from it")
    meets_at: time = Field(default=time(10, 0), description="the local time a sitting starts")
    agenda_days_before: int = Field(default=7, ge=1, le=28, description="the agenda is built this many days before")
    member_agencies: list[Agency] = Field(
        default_factory=lambda: [Agency.POLICE, Agency.CHILDRENS_SOCIAL_CARE, Agency.HEALTH, Agency.EDUCATION],
        min_length=1,
    )
    criteria: list[AgendaCriterion] = Field(
        default_factory=lambda: [
            AgendaCriterion.REPEAT_MISSING, AgendaCriterion.CSE_CONCERN, AgendaCriterion.TRIGGER_PLAN_DUE,
            AgendaCriterion.MEMBER_REFERRAL,
        ],
        min_length=1,
    )
    required_roles: list[NamedRole] = Field(
        default_factory=lambda: [NamedRole.ALLOCATED_SOCIAL_WORKER, NamedRole.ALLOCATED_OFFICER, NamedRole.CSE_TEAM],
        description="who must attend for each case: by role, each filled by a named person",
    )
    lookback_days: int = Field(default=90, ge=1, le=366, description="the window the agenda's criteria read")

    @field_validator("meets_at")
    @classmethod
    def _local_time(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("a local time of day, without an offset")
        return value


class PanelOpening(Model):
    """The scheduled run's input: opens the sitting `agenda_days_before` from today (London date)."""

    panel: Panel
    policy: SlaPolicy


class SittingOpened(Model):
    sitting_id: str
    created: bool


class SittingStart(Model):
    panel: Panel
    day: DomainDate
    policy: SlaPolicy


# --- the agenda -------------------------------------------------------------------------------


class AgendaQuery(Model):
    """The cases `criteria` put on a panel's sitting, read from `since` up to the meeting (`until`); carried cases from
    its earlier sittings."""

    panel_id: str
    sitting_id: str
    criteria: list[AgendaCriterion]
    since: datetime
    until: datetime | None = Field(default=None, description="the meeting: a trigger plan due by then is on the agenda")


class AgendaCandidate(Model):
    case_id: str = Field(pattern=rf"^{LIVE_CASE_PATTERN}$")
    reasons: list[AgendaCriterion] = Field(min_length=1)
    carried_from: str | None = None


class Agenda(Model):
    candidates: list[AgendaCandidate] = Field(default_factory=list)


class AgendaAddition(Model):
    case_id: str = Field(pattern=rf"^{LIVE_CASE_PATTERN}$", description="the child's live referral or missing episode")
    referred_by: Agency = Field(description="the member agency referring the case to the panel")


class AgendaEdit(Decision):
    """Before the meeting: cases added (each referred by a member agency) and cases taken off, with the reason."""

    add: list[AgendaAddition] = Field(default_factory=list, max_length=40)
    remove: list[str] = Field(default_factory=list, max_length=40, description="case IDs taken off the agenda")
    reason: Text

    @model_validator(mode="after")
    def _changes_something(self) -> AgendaEdit:
        if not self.add and not self.remove:
            raise ValueError("add: an edit adds or removes at least one case")
        added = [a.case_id for a in self.add]
        if len(set(added)) != len(added):
            raise ValueError("add: a case is added twice")
        if set(added) & set(self.remove):
            raise ValueError("remove: a case is both added and removed")
        return self


class MeetingStart(Decision):
    """The meeting opens: the agenda is fixed from here."""


class PanelAttendee(Model):
    """Who attended, by name, agency and role; the named role they fill, for some cases or all."""

    name: ShortText
    agency: Agency
    role: ShortText = Field(description="their job, e.g. CSE coordinator")
    named_role: NamedRole | None = Field(default=None, description="the part they fill in the cases they attend for")
    case_ids: list[str] = Field(
        default_factory=list, max_length=40, description="the cases they fill it for; none: every case on the agenda"
    )


class PanelAbsence(Model):
    """A required role not filled for a case, and why."""

    case_id: str = Field(pattern=rf"^{LIVE_CASE_PATTERN}$")
    named_role: NamedRole
    reason: Text


class AttendanceRecord(Decision):
    """The meeting's register: who attended (added to those recorded before) and the absences known with a reason."""

    attendees: list[PanelAttendee] = Field(default_factory=list, max_length=60)
    absences: list[PanelAbsence] = Field(default_factory=list, max_length=60)

    @model_validator(mode="after")
    def _someone(self) -> AttendanceRecord:
        if not self.attendees and not self.absences:
            raise ValueError("attendees: record at least one attendee or absence")
        return self


# --- a case's outcome -------------------------------------------------------------------------


class ForwardedRegrade(ForwardedDecision):
    """The panel's grade as the live case's own regrade decision, signed by the API with the outcome that carries it.

    The sitting sends it as that case's update (`update`, under `update_id`), so it is proven and applied once.
    """

    workflow_id: str = Field(pattern=rf"^{LIVE_CASE_PATTERN}$")
    update: str
    update_id: str
    decision: RiskRegrade | EpisodeRegrade


class PanelCaseOutcome(Decision):
    """The panel's decision on one case: the grade (applied at once to the live case), the rationale, the actions."""

    case_id: str = Field(pattern=rf"^{LIVE_CASE_PATTERN}$", description="the case on the agenda decided on")
    grade: PanelGrade | None = Field(default=None, description="the grade decided, applied at once to the live case")
    rationale: Text
    agreed_actions: list[AgreedActionSpec] = Field(default_factory=list, max_length=30)
    forwarded: ForwardedRegrade | None = Field(default=None, description="set by the API's client, never by a caller")

    @field_validator("agreed_actions", mode="before")
    @classmethod
    def _owner_and_deadline(cls, actions: object) -> object:
        return require_owner_and_deadline(actions, "agreed_actions")

    @model_validator(mode="after")
    def _grade_fits_the_case(self) -> PanelCaseOutcome:
        if self.grade is None:
            return self
        if is_episode(self.case_id) and self.grade not in set(MissingGrade):
            raise ValueError("grade: a missing episode is graded low, medium or high")
        if not is_episode(self.case_id) and self.grade not in set(RiskGrade):
            raise ValueError("grade: a referral is graded standard, medium or high")
        return self


class SittingClosure(Decision):
    """The meeting ends: the minutes are made from the record; cases not reached are carried to the next sitting."""


class GradeApplied(Model):
    """What became of a panel's grade on the live case."""

    result: str = Field(description="applied, unchanged (already so graded), or refused")
    reason: str | None = Field(default=None, description="the live case's refusal, naming the field")


# --- the state reported ---------------------------------------------------------------------


class AgendaItem(Model):
    case_id: str
    reasons: list[AgendaCriterion]
    carried_from: str | None = None
    referred_by: Agency | None = None
    required_roles: list[NamedRole] = Field(default_factory=list)
    decided_at: datetime | None = None
    decided_by: str | None = None
    grade: PanelGrade | None = None
    grade_applied: GradeApplied | None = None
    action_ids: list[str] = Field(default_factory=list)
    absent_roles: list[NamedRole] = Field(default_factory=list, description="required roles no attendee filled")
    not_reached: bool = Field(default=False, description="carried to the next sitting")

    @property
    def decided(self) -> bool:
        return self.decided_at is not None


class MinutesCase(Model):
    case_id: str
    reasons: list[AgendaCriterion]
    carried_from: str | None = None
    grade: PanelGrade | None = None
    grade_applied: str | None = None
    attended_by: list[str] = Field(default_factory=list, description="named role: name (agency)")
    absent_roles: list[NamedRole] = Field(default_factory=list)
    absence_reasons: dict[str, str] = Field(default_factory=dict)
    actions: list[ActionState] = Field(default_factory=list)
    not_reached: bool = False


class Minutes(Model):
    """The sitting's minutes, produced from its record: who attended, each case's grade and actions, what was carried."""

    sitting_id: str
    panel_name: str
    meets_at: datetime
    held_at: datetime | None = None
    closed_at: datetime | None = None
    attendees: list[PanelAttendee] = Field(default_factory=list)
    cases: list[MinutesCase] = Field(default_factory=list)


class SittingState(Model):
    sitting_id: str
    panel_id: str
    panel_name: str
    day: date
    meets_at: datetime
    phase: SittingPhase
    agenda_built: bool = Field(default=False, description="false while the agenda is being built")
    agenda: list[AgendaItem] = Field(default_factory=list)
    attendees: list[PanelAttendee] = Field(default_factory=list)
    absences: list[PanelAbsence] = Field(default_factory=list)
    held_at: datetime | None = None
    closed_at: datetime | None = None
    actions: list[ActionState] = Field(default_factory=list)
    escalations: list[Escalation] = Field(default_factory=list)
    history: list[HistoryEntry] = Field(default_factory=list)

    @property
    def open_actions(self) -> list[ActionState]:
        return [a for a in self.actions if a.completed_at is None]
