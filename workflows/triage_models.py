"""The daily domestic-abuse triage's models: the day's list, each referral's history, the decision on it and the state reported.

Imported by the triage workflow, the activity that builds the list and the clients alike. The
list holds references, grades, counts and times only: no child's name, date or address.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import Field

from workflows.models import (
    AdultHistory,
    ChildOnPlan,
    DomainDate,
    Decision,
    Escalation,
    IncidentType,
    Model,
    PriorEpisode,
    PriorReferral,
    REFERENCE_PATTERN,
    RiskGrade,
    SlaPolicy,
    Text,
)

# The referrals a triage takes: domestic abuse, graded below high (high risk goes straight to the MASH).
TRIAGE_INCIDENT = IncidentType.DOMESTIC_ABUSE
TRIAGE_RISKS = (RiskGrade.STANDARD, RiskGrade.MEDIUM)


class TriageOutcome(StrEnum):
    """What the triage meeting decides for one referral."""

    NO_FURTHER_ACTION = "no_further_action"
    EARLY_HELP = "early_help"
    SINGLE_AGENCY = "single_agency"  # support by one agency, an independent domestic violence advisor among them
    JOINT_VISIT = "joint_visit"  # police and children's social care visit together
    REFER_TO_MASH = "refer_to_mash"  # full MASH screening: cumulative risk seen in the history
    REFER_TO_MARAC = "refer_to_marac"  # the history shows high risk: the multi-agency risk assessment conference


class TriageStart(Model):
    """A day's triage: the day, and the policy (bank holidays included) its deadlines are read by."""

    day: DomainDate
    policy: SlaPolicy


class TriageOpening(Model):
    """The scheduled run's input: it opens today's triage (London date) when today is a working day."""

    policy: SlaPolicy


class TriageOpened(Model):
    triage_id: str | None = Field(default=None, description="none when today is not a working day")
    reason: str | None = None


class TriageListQuery(Model):
    """The referrals received in [since, until) that the triage takes, each with its history since `history_since`."""

    since: datetime
    until: datetime
    history_window_days: int = Field(ge=1)


class FamilyHistory(Model):
    """What is known about the referral's children, adults and address before it: the meeting never discusses it
    in isolation. Screening's own look-up over the repeat window (`activities/triage.py`, `family_history`); lists
    added since read as empty on triages listed before them."""

    prior_referrals: list[PriorReferral] = Field(default_factory=list)
    missing_episodes: list[PriorEpisode] = Field(default_factory=list)
    children_on_plans: list[ChildOnPlan] = Field(default_factory=list)
    adults: list[AdultHistory] = Field(default_factory=list, description="adults with earlier involvement")

    @property
    def repeat_suspects(self) -> list[str]:
        return [adult.adult_id for adult in self.adults if adult.repeat_suspect]


class TriageCandidate(Model):
    """One referral on the day's list, as the read model knows it."""

    reference: str = Field(pattern=rf"^{REFERENCE_PATTERN}$")
    submitted_at: datetime
    risk: RiskGrade
    children: int = Field(ge=1, description="how many children were present")
    history: FamilyHistory = Field(default_factory=FamilyHistory)


class TriageList(Model):
    candidates: list[TriageCandidate] = Field(default_factory=list)


class TriageDecision(Decision):
    """The triage meeting's decision on one listed referral, with its rationale."""

    reference: str = Field(pattern=rf"^{REFERENCE_PATTERN}$", description="the listed referral decided on")
    outcome: TriageOutcome
    rationale: Text


class TriageItem(Model):
    """A listed referral: its history, when it was listed, when it is due, and the decision once made."""

    reference: str
    submitted_at: datetime
    risk: RiskGrade
    children: int
    history: FamilyHistory
    listed_at: datetime
    due_at: datetime
    outcome: TriageOutcome | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None

    @property
    def decided(self) -> bool:
        return self.outcome is not None


class TriageState(Model):
    triage_id: str
    day: date
    working_day: bool = True
    listed: bool = Field(default=False, description="false while the list is being built")
    received_since: datetime | None = None
    received_until: datetime | None = None
    items: list[TriageItem] = Field(default_factory=list)
    escalations: list[Escalation] = Field(default_factory=list)

    @property
    def waiting(self) -> list[TriageItem]:
        return [item for item in self.items if not item.decided]
