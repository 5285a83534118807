"""The referral's data: the VIST form, every human decision, and the state the workflow reports.

One home for the pydantic models that workflows, activities and starters all import.
Models reject incomplete or contradictory input with an error naming the field and the
reason; the messages never repeat the submitted values (they may be personal data).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import unicodedata
import uuid
from datetime import date, datetime, time, timedelta, timezone
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)


# The window every date and time must lie in: what the domain can mean and PostgreSQL can store.
EARLIEST = datetime(1900, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2200, 1, 1, tzinfo=timezone.utc)
# Real-world offsets run from -12:00 to +14:00: an offset beyond ±14:00 is no clock's.
MAX_OFFSET = timedelta(hours=14)
# Free text may run over lines; nothing else in a field may be a control character.
FREE_TEXT_CONTROLS = frozenset("\n\r\t")


# A time written without an offset is a London wall-clock time, as the people who write it mean it.
LOCAL_ZONE_NAME = "Europe/London"


@functools.cache
def local_zone() -> ZoneInfo:
    """London's zone, read once when first needed (never at import, inside the workflow sandbox too)."""
    return ZoneInfo(LOCAL_ZONE_NAME)

# How a moment may be written: with an offset, or London's wall clock without one.
MOMENT_FORMAT = "an ISO 8601 time, e.g. 2026-11-26T10:00 (London time) or 2026-11-26T10:00+00:00"
BARE_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def in_london(value: datetime) -> datetime:
    """A wall-clock time without an offset, as London's clocks showed it.

    Refused when London's clocks never showed it (the hour skipped when they go forward) or
    showed it twice (the hour repeated when they go back): a record about a child must not guess
    the hour; the writer gives the offset.
    """
    local = value.replace(tzinfo=local_zone())
    if local.astimezone(timezone.utc).astimezone(local_zone()).replace(tzinfo=None) != value:
        raise ValueError("London's clocks skip this time as they go forward: give an offset (+00:00 or +01:00)")
    if local.utcoffset() != local.replace(fold=1).utcoffset():
        raise ValueError(
            "London's clocks show this time twice as they go back: give an offset (+01:00 the first, +00:00 the second)"
        )
    return local


def _aware(value: datetime) -> datetime:
    """A real moment: it has an offset a clock could show (London's when none is written), and lies in the domain's window."""
    if value.tzinfo is None:
        if not EARLIEST.replace(tzinfo=None) <= value < LATEST.replace(tzinfo=None):
            raise ValueError("must lie between 1900 and 2200")
        value = in_london(value)
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("must include a timezone offset")
    if abs(offset) > MAX_OFFSET:
        raise ValueError("the timezone offset must be within -14:00 to +14:00")
    # Compared without converting to UTC first: a moment near year 1 or 9999 cannot be converted.
    if not EARLIEST.replace(tzinfo=None) + offset <= value.replace(tzinfo=None) < LATEST.replace(tzinfo=None) + offset:
        raise ValueError("must lie between 1900 and 2200")
    return value


def moment(value: datetime) -> datetime:
    """A moment as every field reads it (London's when written without an offset); ValueError says why not."""
    return _aware(value)


def _is_bare_date(value: object) -> bool:
    return (isinstance(value, date) and not isinstance(value, datetime)) or (
        isinstance(value, str) and BARE_DATE.fullmatch(value.strip()) is not None
    )


def _time_of_day_required(value: object) -> object:
    """A moment written as a date alone is refused: the hour matters (a date is taken where a date is meant)."""
    if _is_bare_date(value):
        raise ValueError(f"needs a time of day as well as the date: {MOMENT_FORMAT}")
    return value


def _end_of_day_for_a_date(value: object) -> object:
    """A deadline written as a date alone is the end of that day in London: "by 26 November"."""
    if _is_bare_date(value):
        try:
            day = value if isinstance(value, date) else date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError("is not a day of the calendar") from None
        return datetime.combine(day, time(23, 59), local_zone())
    return value


def _in_window(value: date) -> date:
    if not EARLIEST.date() <= value < LATEST.date():
        raise ValueError("must lie between 1900 and 2200")
    return value


def _storable(value: str, allowed: frozenset[str]) -> str:
    """Text PostgreSQL can hold and a reader can see: no control characters, no lone surrogates."""
    for char in value:
        category = unicodedata.category(char)
        if category == "Cs":
            raise ValueError("must be valid Unicode text (it holds a lone surrogate)")
        if category == "Cc" and char not in allowed:
            raise ValueError("must not hold control characters" + (" other than line breaks and tabs" if allowed else ""))
    return value


def _free_text(value: str) -> str:
    return _storable(value, FREE_TEXT_CONTROLS)


def _plain_text(value: str) -> str:
    return _storable(value, frozenset())


AwareDatetime = Annotated[datetime, BeforeValidator(_time_of_day_required), AfterValidator(_aware)]
# A moment something is due by: a date alone means the end of that London day.
DeadlineDatetime = Annotated[datetime, BeforeValidator(_end_of_day_for_a_date), AfterValidator(_aware)]
DomainDate = Annotated[date, AfterValidator(_in_window)]
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000), AfterValidator(_free_text)
]
ShortText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(_plain_text)
]
StaffId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=2, max_length=40, pattern=r"^[A-Za-z0-9._-]+$")
]
ChildId = Annotated[str, StringConstraints(pattern=r"^C[1-9][0-9]?$")]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, use_enum_values=False)


# --- vocabulary -------------------------------------------------------------------------


class RiskGrade(StrEnum):
    STANDARD = "standard"
    MEDIUM = "medium"
    HIGH = "high"


class MissingGrade(StrEnum):
    """A missing child's risk assessment: there is no "absent" grade, a child reported missing is missing."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class IncidentType(StrEnum):
    DOMESTIC_ABUSE = "domestic_abuse"
    SEXUAL_OFFENCE = "sexual_offence"
    MISSING = "missing"
    CSE = "cse"
    NEGLECT = "neglect"
    PHYSICAL_ABUSE = "physical_abuse"
    ONLINE_HARM = "online_harm"
    OTHER = "other"


class Agency(StrEnum):
    POLICE = "police"
    CHILDRENS_SOCIAL_CARE = "childrens_social_care"
    HEALTH = "health"
    EDUCATION = "education"
    PROBATION = "probation"
    HOUSING = "housing"
    OTHER = "other"


class Role(StrEnum):
    OFFICER = "officer"
    SUPERVISOR = "supervisor"
    SCREENER = "screener"
    CALL_HANDLER = "call_handler"  # the control room: takes calls, such as a missing report
    PARTNER = "partner"
    AUDITOR = "auditor"
    ADMIN = "admin"
    SYSTEM = "system"  # the workflow itself: timers, automatic closure; never a caller's role


class Stage(StrEnum):
    SUPERVISOR_REVIEW = "supervisor_review"
    RETURNED_TO_OFFICER = "returned_to_officer"
    SCREENING = "screening"
    STRATEGY_DISCUSSION = "strategy_discussion"
    CONFERENCE = "conference"
    ACTIONS = "actions"
    CLOSED = "closed"


OPEN_STAGES = frozenset(Stage) - {Stage.CLOSED}


class ScreeningOutcome(StrEnum):
    NO_FURTHER_ACTION = "no_further_action"
    EARLY_HELP = "early_help"
    SINGLE_AGENCY = "single_agency"
    STRATEGY_DISCUSSION = "strategy_discussion"


class ChildDecision(StrEnum):
    NO_FURTHER_ACTION = "no_further_action"
    EARLY_HELP = "early_help"
    SINGLE_AGENCY = "single_agency"
    STRATEGY_DISCUSSION = "strategy_discussion"
    REFER_TO_CHILDRENS_SOCIAL_CARE = "refer_to_childrens_social_care"


class PoliceAttendance(StrEnum):
    ATTEND = "attend"
    REPORT_IN_LIEU = "report_in_lieu"


class CloseReason(StrEnum):
    NO_FURTHER_ACTION = "no_further_action"
    EARLY_HELP = "early_help"
    SINGLE_AGENCY = "single_agency"
    NO_SECTION_47 = "no_section_47"
    NO_CHILD_PROTECTION_PLAN = "no_child_protection_plan"
    CHILD_PROTECTION_PLAN = "child_protection_plan"
    DUPLICATE = "duplicate"
    TRANSFERRED_OUT = "transferred_out"
    WITHDRAWN = "withdrawn"


class NamedRole(StrEnum):
    """A part in the case a strategy discussion needs filled by its person, whatever their agency sends."""

    ALLOCATED_SOCIAL_WORKER = "allocated_social_worker"
    INVESTIGATING_OFFICER = "investigating_officer"
    # A panel's (a CSE/missing MARAC): the officer holding the child's case, and the CSE team.
    ALLOCATED_OFFICER = "allocated_officer"
    CSE_TEAM = "cse_team"


class Rank(StrEnum):
    """A supervisor's rank, most junior first: the escalation ladder climbs them in this order."""

    SERGEANT = "sergeant"
    INSPECTOR = "inspector"
    SUPERINTENDENT = "superintendent"

    @property
    def seniority(self) -> int:
        return list(Rank).index(self)


# --- who decides ------------------------------------------------------------------------


class Actor(Model):
    """Who made a decision: taken from the caller's credentials, never from a form body."""

    id: StaffId
    role: Role
    agency: Agency = Agency.POLICE
    rank: Rank | None = Field(default=None, description="a supervisor's rank, from the credentials")


SYSTEM_ACTOR = Actor(id="system", role=Role.SYSTEM)


# --- stage 1: the VIST submission ---------------------------------------------------------


class Incident(Model):
    type: IncidentType = Field(description="domestic_abuse requires each child's voice_of_the_child")
    occurred_at: AwareDatetime = Field(
        description="when it happened: not in the future; London time when written without an offset"
    )
    location: Text = Field(description="where it happened (personal data: never logged)")
    summary: Text | None = None


class ChildPresent(Model):
    child_id: ChildId = Field(
        description="the child's key within this referral (C1, C2...): decisions refer to it, never to a name"
    )
    name: ShortText
    date_of_birth: DomainDate = Field(description="a date (YYYY-MM-DD): on or before the incident, under 18 at it")
    home_address: Text | None = None
    observed: Text = Field(description="what the officer (or the referring partner) saw of the child")
    voice_of_the_child: Text | None = Field(
        default=None,
        description="what the child said, their behaviour and demeanour: required when the incident is domestic abuse",
    )


class AdultRole(StrEnum):
    SUSPECT = "suspect"
    VICTIM = "victim"
    PARENT_OR_CARER = "parent_or_carer"
    PARTNER = "partner"
    WITNESS = "witness"
    OTHER = "other"


class AdultInvolved(Model):
    name: ShortText
    role: AdultRole
    date_of_birth: DomainDate | None = Field(
        default=None, description="with the name, the adult's identity key: an adult without one is never matched"
    )


def adult_id(position: int) -> str:
    """An adult's key within a referral (A1, A2...), by their place in the form: decisions and views name it, never a name."""
    return f"A{position}"


class Section46(Model):
    """Police protection used at the incident: only with a high initial risk, for children of this form."""

    used_at: AwareDatetime = Field(description="at or after the incident, not in the future (London time without an offset)")
    child_ids: list[ChildId] = Field(min_length=1, max_length=20, description="children of this form (C1, C2...)")
    accommodation: Text


class ReferralForm(Model):
    """What every form that opens a referral holds: the incident or concern, the children, the adults, the risk."""

    form_id: uuid.UUID = Field(description="the form's own ID, assigned by the app that made it: the same ID finds the same referral")
    incident: Incident
    children: list[ChildPresent] = Field(min_length=1, max_length=20)
    adults: list[AdultInvolved] = Field(default_factory=list, max_length=30)
    initial_risk: RiskGrade

    def police_protection_used(self) -> bool:
        """Whether police protection (section 46) was used: only a VIST can say it was."""
        return False

    def content_digest(self) -> str:
        """A digest of the form's content: the same form ID with other content is a different form."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


def children_problem(form: ReferralForm, voice_required: bool) -> str | None:
    """The first child a form cannot hold, as "field: reason": one key per child, born before the incident, under 18."""
    ids = [child.child_id for child in form.children]
    if len(set(ids)) != len(ids):
        return "children: each child_id must be unique within the referral"
    for index, child in enumerate(form.children):
        if child.date_of_birth > form.incident.occurred_at.date():
            return f"children[{index}].date_of_birth: is after the incident"
        if voice_required and child.voice_of_the_child is None:
            return f"children[{index}].voice_of_the_child: required when the incident is domestic abuse"
        if (form.incident.occurred_at.date() - child.date_of_birth).days > 18 * 366:
            return f"children[{index}].date_of_birth: the child was 18 or over at the incident"
    return None


class VistSubmission(ReferralForm):
    """A VIST form. Its rules across fields: each child_id unique; every child born on or before the incident and
    under 18 at it; domestic abuse requires each child's voice_of_the_child; section 46 police protection is
    allowed only with a high initial_risk, names children of this form and was used at or after the incident;
    no time in the future. A time without an offset is London's; a date of birth is a date."""

    initial_risk: RiskGrade = Field(description="high when section_46 is given")
    section_46: Section46 | None = Field(default=None, description="police protection used: only with a high initial_risk")
    officer_id: StaffId = Field(description="the submitting officer's own staff ID, as their credentials name them")
    station: ShortText

    @model_validator(mode="after")
    def _consistent(self) -> "VistSubmission":
        problem = children_problem(self, voice_required=self.incident.type is IncidentType.DOMESTIC_ABUSE)
        if problem is not None:
            raise ValueError(problem)
        if self.section_46 is not None:
            unknown = set(self.section_46.child_ids) - {child.child_id for child in self.children}
            if unknown:
                raise ValueError("section_46.child_ids: names a child not in the referral")
            if self.section_46.used_at < self.incident.occurred_at:
                raise ValueError("section_46.used_at: is before the incident")
            if self.initial_risk is not RiskGrade.HIGH:
                raise ValueError("initial_risk: must be high when section 46 police protection was used")
        return self

    def police_protection_used(self) -> bool:
        return self.section_46 is not None


# The partner agencies that refer a child straight to screening.
REFERRING_AGENCIES = frozenset({Agency.HEALTH, Agency.EDUCATION, Agency.CHILDRENS_SOCIAL_CARE})


class PartnerTool(StrEnum):
    """The form a partner agency refers with."""

    CSE_SCREENING_TOOL = "cse_screening_tool"
    SAFEGUARDING_CONCERN = "safeguarding_concern"


class CseIndicator(StrEnum):
    """What a CSE screening tool marks as seen: a closed list, never free text."""

    MISSING_EPISODES = "missing_episodes"
    OLDER_PARTNER = "older_partner"
    UNEXPLAINED_GIFTS_OR_MONEY = "unexplained_gifts_or_money"
    UNKNOWN_ADULTS_ONLINE = "unknown_adults_online"
    SUBSTANCE_MISUSE = "substance_misuse"
    SEXUAL_HEALTH = "sexual_health"
    SCHOOL_ABSENCE = "school_absence"
    GANG_ASSOCIATION = "gang_association"
    SELF_HARM = "self_harm"
    TRANSPORTED_BY_UNKNOWN_ADULTS = "transported_by_unknown_adults"


class PartnerReferral(ReferralForm):
    """A partner agency's referral (health, education, children's social care), made straight to screening.

    Its referrer and their agency are the token's: the form names them and must name the caller.
    """

    referrer_id: StaffId = Field(description="the referrer's own staff ID, from their credentials")
    referring_agency: Agency = Field(description="the referrer's agency, from their credentials")
    tool: PartnerTool
    cse_indicators: list[CseIndicator] = Field(
        default_factory=list, max_length=len(CseIndicator), description="what the CSE screening tool marked as seen"
    )

    @model_validator(mode="after")
    def _consistent(self) -> "PartnerReferral":
        if self.referring_agency not in REFERRING_AGENCIES:
            allowed = ", ".join(sorted(a.value for a in REFERRING_AGENCIES))
            raise ValueError(f"referring_agency: a partner referral comes from {allowed}")
        problem = children_problem(self, voice_required=False)
        if problem is not None:
            raise ValueError(problem)
        if len(set(self.cse_indicators)) != len(self.cse_indicators):
            raise ValueError("cse_indicators: an indicator is marked more than once")
        if self.tool is PartnerTool.CSE_SCREENING_TOOL:
            if self.incident.type is not IncidentType.CSE:
                raise ValueError("incident.type: a CSE screening tool's concern is cse")
            if not self.cse_indicators:
                raise ValueError("cse_indicators: a CSE screening tool marks at least one indicator")
        elif self.cse_indicators:
            raise ValueError("cse_indicators: only a CSE screening tool marks them")
        return self


# How far ahead of the clock a reported time may be: the reporter's clock may run a little fast.
CLOCK_SKEW = timedelta(minutes=5)


def future_time_in(submission: ReferralForm, now: datetime) -> str | None:
    """The first time in a form that has not happened yet at `now`, as "field: reason".

    Read against the caller's clock: by the API at intake, by the workflow (its own clock) at a resubmission.
    """
    latest = now + CLOCK_SKEW
    if submission.incident.occurred_at > latest:
        return "incident.occurred_at: is in the future"
    if isinstance(submission, VistSubmission) and submission.section_46 is not None and submission.section_46.used_at > latest:
        return "section_46.used_at: is in the future"
    return None


# --- workflow IDs: the one definition of each ID's shape; the workflows make them, the clients check them ---
# (checked with `fullmatch`: `$` alone would let a trailing newline through)

REFERENCE_PREFIX = "REF-"
REFERENCE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
REFERENCE_PATTERN = rf"{REFERENCE_PREFIX}[{REFERENCE_ALPHABET}]{{5}}-[{REFERENCE_ALPHABET}]{{5}}"
# A missing episode's ID is made like a reference, from its report's ID alone: MIS-XXXXX-XXXXX.
EPISODE_PREFIX = "MIS-"
EPISODE_PATTERN = rf"{EPISODE_PREFIX}[{REFERENCE_ALPHABET}]{{5}}-[{REFERENCE_ALPHABET}]{{5}}"
# A child's trigger plan's ID is a keyed digest of the child's identity key: PLAN-XXXXX-XXXXX.
PLAN_PREFIX = "PLAN-"
PLAN_PATTERN = rf"{PLAN_PREFIX}[{REFERENCE_ALPHABET}]{{5}}-[{REFERENCE_ALPHABET}]{{5}}"
# A date in an ID (YYYY-MM-DD, a London date).
DATE_PATTERN = r"(?:19|2[0-9])[0-9]{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
# A panel (a CSE/missing MARAC of an area) is named by a short code of its own: CSENORTH.
PANEL_ID_PATTERN = r"[A-Z][A-Z0-9]{1,11}"
# A panel's sitting is named by its panel and the date it meets, nothing about any child: PANEL-CSENORTH-2026-12-01.
SITTING_PREFIX = "PANEL-"
SITTING_ID_PATTERN = rf"{SITTING_PREFIX}{PANEL_ID_PATTERN}-{DATE_PATTERN}"
# A child's live case: a referral or a missing episode (what a panel discusses and regrades).
LIVE_CASE_PATTERN = rf"(?:{REFERENCE_PATTERN}|{EPISODE_PATTERN})"
# A case is a workflow that agrees actions and raises escalations: a referral, a missing episode, a trigger plan or a
# panel's sitting.
CASE_PATTERN = rf"(?:{REFERENCE_PATTERN}|{EPISODE_PATTERN}|{PLAN_PATTERN}|{SITTING_ID_PATTERN})"
# An agreed action's ID is its case's ID and its number: REF-XXXXX-XXXXX.A1, MIS-XXXXX-XXXXX.A2, ...
ACTION_MARK = ".A"
ACTION_ID_PATTERN = rf"{CASE_PATTERN}{re.escape(ACTION_MARK)}[1-9][0-9]*"
# A day's domestic-abuse triage is named by its date alone (London): TRIAGE-2026-11-24.
TRIAGE_PREFIX = "TRIAGE-"
TRIAGE_ID_PATTERN = rf"{TRIAGE_PREFIX}{DATE_PATTERN}"
# An escalation's ID names the workflow that raised it: a case, one of its agreed actions, or a day's triage.
ESCALATION_MARK = ".E"
ESCALATION_ID = re.compile(
    rf"^(?P<owner>{ACTION_ID_PATTERN}|{CASE_PATTERN}|{TRIAGE_ID_PATTERN}){re.escape(ESCALATION_MARK)}[1-9][0-9]*$"
)


def agreed_action_id(reference: str, number: int) -> str:
    """The workflow ID of a referral's `number`th agreed action (from 1)."""
    return f"{reference}{ACTION_MARK}{number}"


def action_number(action_id: str) -> int:
    """Which of its referral's agreed actions this is: .A10 comes after .A9 (0 if not an action's ID)."""
    number = action_id.rpartition(ACTION_MARK)[2]
    return int(number) if number.isdigit() else 0


def triage_id(day: date) -> str:
    """The workflow ID of the domestic-abuse triage held on `day`: its date, nothing about anyone."""
    return f"{TRIAGE_PREFIX}{day.isoformat()}"


def panel_sitting_id(panel_id: str, day: date) -> str:
    """The workflow ID of a panel's sitting on `day`: the panel's code and the date, nothing about anyone."""
    return f"{SITTING_PREFIX}{panel_id}-{day.isoformat()}"


def triage_day(workflow_id: str) -> date:
    """The day a triage's workflow ID names (the ID checked against TRIAGE_ID_PATTERN first)."""
    return date.fromisoformat(workflow_id.removeprefix(TRIAGE_PREFIX))


def escalation_id_for(owner: str, number: int) -> str:
    """The ID of the `number`th escalation (from 1) raised by the referral or agreed action `owner`."""
    return f"{owner}{ESCALATION_MARK}{number}"


def escalation_owner(escalation_id: str) -> str | None:
    """The workflow ID of the referral or agreed action that raised the escalation, if well formed."""
    match = ESCALATION_ID.fullmatch(escalation_id)
    return match["owner"] if match else None


def referral_reference(form_id: uuid.UUID) -> str:
    """The referral's non-identifying reference, derived from the VIST form ID alone.

    It is the workflow ID, so submitting the same form twice finds the same referral.
    """
    return _case_id(REFERENCE_PREFIX, b"referral:", form_id)


def episode_id(report_id: uuid.UUID) -> str:
    """A missing episode's ID, derived from its report's ID alone: the same report finds the same episode."""
    return _case_id(EPISODE_PREFIX, b"missing:", report_id)


def trigger_plan_id(identity_key: str, secret: bytes) -> str:
    """A child's trigger plan's ID: one per child, keyed so that it cannot be matched against a guessed name and date of birth."""
    return _coded(PLAN_PREFIX, hmac.new(secret, b"trigger-plan:" + identity_key.encode(), hashlib.sha256).digest())


def match_key(*parts: str) -> str:
    """A digest of normalised identity text, for matching without comparing raw names (a child's identity key)."""
    normalised = "|".join(re.sub(r"[^a-z0-9]+", " ", part.lower()).strip() for part in parts)
    return hashlib.sha256(normalised.encode()).hexdigest()


def identity_key(name: str, date_of_birth: date) -> str:
    """The key a person's records are matched by, a child's or an adult's: their normalised name and date of birth, digested."""
    return match_key(name, date_of_birth.isoformat())


def _case_id(prefix: str, namespace: bytes, key: uuid.UUID) -> str:
    return _coded(prefix, hashlib.sha256(namespace + key.bytes).digest())


def _coded(prefix: str, digest: bytes) -> str:
    number = int.from_bytes(digest[:8], "big")
    chars = []
    for _ in range(10):
        number, rem = divmod(number, 32)
        chars.append(REFERENCE_ALPHABET[rem])
    code = "".join(chars)
    return f"{prefix}{code[:5]}-{code[5:]}"


# --- the SLA policy --------------------------------------------------------------------


class Duration(Model):
    """A deadline: so many hours, or so many working days (weekends and bank holidays skipped)."""

    hours: float | None = Field(default=None, gt=0)
    working_days: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_unit(self) -> "Duration":
        if (self.hours is None) == (self.working_days is None):
            raise ValueError("give exactly one of hours or working_days")
        return self


class StageDeadlines(Model):
    standard: Duration
    medium: Duration
    high: Duration
    # Policies recorded before had none: their referrals keep the grade's time, on replay too.
    section_46: Duration | None = Field(
        default=None, description="when police protection was used, whatever the grade; none: the grade's time"
    )

    def for_risk(self, risk: RiskGrade, section_46: bool = False) -> Duration:
        if section_46 and self.section_46 is not None:
            return self.section_46
        return getattr(self, risk.value)


def _same(duration: Duration) -> StageDeadlines:
    return StageDeadlines(standard=duration, medium=duration, high=duration)


class EscalationPolicy(Model):
    ladder: list[Rank] = Field(default=[Rank.SERGEANT, Rank.INSPECTOR, Rank.SUPERINTENDENT], min_length=1)
    grace: Duration = Field(default_factory=lambda: Duration(hours=4))
    # An alert's delivery is retried until it succeeds (SMTP or a webhook may be down for hours),
    # backing off from the first interval to the longest.
    alert_retry_first_seconds: float = Field(default=5.0, gt=0)
    alert_retry_longest_seconds: float = Field(default=300.0, gt=0)


class GradeTimes(Model):
    """A time per missing-episode grade."""

    low: Duration
    medium: Duration
    high: Duration

    def for_grade(self, grade: MissingGrade) -> Duration:
        return getattr(self, grade.value)


def _hours(low: float, medium: float, high: float) -> GradeTimes:
    return GradeTimes(low=Duration(hours=low), medium=Duration(hours=medium), high=Duration(hours=high))


class MissingTimetable(Model):
    """A missing episode's timescales (local policy defaults, except the return-home interview's 72 hours)."""

    risk_assessment_review: GradeTimes = Field(
        default_factory=lambda: _hours(4, 2, 1), description="a supervisor reviews the risk assessment within"
    )
    review_every: GradeTimes = Field(
        default_factory=lambda: _hours(24, 8, 4), description="then reviews the episode again within each"
    )
    tracing_quiet: GradeTimes = Field(
        default_factory=lambda: _hours(24, 6, 2), description="no tracing activity recorded for this long escalates"
    )
    return_home_interview: Duration = Field(
        default_factory=lambda: Duration(hours=72), description="children's social care interviews the child within"
    )
    high_risk_reviewer: Rank = Field(default=Rank.INSPECTOR, description="the lowest rank that reviews a high-risk episode")
    repeat_missing_episodes: int = Field(
        default=3, ge=2, description="a child with this many episodes (this one included) in the window is repeat-missing"
    )
    repeat_missing_days: int = Field(default=90, gt=0, description="the window, in days, a repeat-missing count looks back")
    trigger_plan_review_within_days: int = Field(
        default=90, gt=0, description="a trigger plan's review date lies at most this many days after its version"
    )
    police_addendum_fold_in: Duration = Field(
        default_factory=lambda: Duration(working_days=5),
        description="the social worker folds a police addendum into the trigger plan within",
    )


class SlaPolicy(Model):
    """Per-stage, per-risk deadlines and the escalation ladder.

    `bank_holidays` is filled outside the workflow (the `holidays` package cannot run in
    the sandbox) and travels with the policy into the history, so replays see the same dates.
    """

    supervisor_review: StageDeadlines = Field(
        default_factory=lambda: StageDeadlines(
            standard=Duration(hours=24), medium=Duration(hours=24), high=Duration(hours=2)
        )
    )
    resubmission: StageDeadlines = Field(default_factory=lambda: _same(Duration(hours=24)))
    screening: StageDeadlines = Field(
        default_factory=lambda: StageDeadlines(
            standard=Duration(working_days=1),
            medium=Duration(working_days=1),
            high=Duration(hours=4),
            section_46=Duration(hours=2),
        )
    )
    strategy_discussion: StageDeadlines = Field(
        default_factory=lambda: StageDeadlines(
            standard=Duration(working_days=3), medium=Duration(working_days=3), high=Duration(hours=8)
        )
    )
    # Police tell children's social care of a screened referral within this (an agreed action of the CRU's).
    csc_notification: Duration = Field(default_factory=lambda: Duration(working_days=1))
    conference_working_days: int = Field(default=15, ge=1)
    conference_report_working_days_before: int = Field(default=2, ge=0)
    action_reminder_before: Duration = Field(default_factory=lambda: Duration(hours=24))
    escalation: EscalationPolicy = Field(default_factory=EscalationPolicy)
    missing: MissingTimetable = Field(default_factory=MissingTimetable)
    repeat_referral_threshold: int = Field(default=3, ge=2)
    repeat_referral_window_days: int = Field(default=90, ge=1)
    # Screening sees everything known about the child this far back; the repeat flag counts the window above.
    look_back_days: int = Field(default=1826, ge=1, description="five years, by default")
    # A referral listed at a day's domestic-abuse triage is decided within this many working days
    # of the triage day's start: 1 is by the end of the triage day, the working day after receipt.
    triage_decision_working_days: int = Field(default=1, ge=1)
    # Beside the three agencies, a strategy discussion is quorate only with these people present.
    strategy_required_roles: list[NamedRole] = Field(
        default_factory=lambda: [NamedRole.ALLOCATED_SOCIAL_WORKER, NamedRole.INVESTIGATING_OFFICER]
    )
    timezone: str = "Europe/London"
    bank_holidays: list[date] = Field(default_factory=list)

    def deadlines_for(self, stage: Stage) -> StageDeadlines | None:
        return {
            Stage.SUPERVISOR_REVIEW: self.supervisor_review,
            Stage.RETURNED_TO_OFFICER: self.resubmission,
            Stage.SCREENING: self.screening,
            Stage.STRATEGY_DISCUSSION: self.strategy_discussion,
        }.get(stage)


# --- human decisions (each a workflow update) ---------------------------------------------


class DecisionProof(Model):
    """The API's signature over a decision and its actor, for this referral and message (runtime/proofs.py)."""

    key_id: Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._-]+$")]
    signature: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class Decision(Model):
    actor: Actor
    proof: DecisionProof | None = Field(default=None, description="set by the API's client, never by a caller")
    made_at: AwareDatetime | None = Field(
        default=None,
        description="when the API received the decision, signed with it by the API's client, never set by a caller:"
        " the stage it starts runs from then, however long the workflow takes to get to it",
    )

    def details(self) -> dict[str, Any]:
        """The decision as recorded: its fields, without who made it, when it reached the API, or the proof of that."""
        return self.model_dump(mode="json", exclude={"actor", "proof", "made_at"})


class ForwardedDecision(Model):
    """A decision one workflow passes on to another as that workflow's own update (a panel's grade to the child's
    live case), signed by the API with the decision that carries it (runtime/proofs.py), so it is proven there too."""

    workflow_id: str
    update: str
    update_id: str
    decision: Decision


class StartReferral(Model):
    submission: VistSubmission | PartnerReferral = Field(
        description="a VIST, which a supervisor reviews, or a partner agency's referral, which starts at screening"
    )
    submitted_by: Actor
    sla_policy: SlaPolicy | None = Field(
        default=None, description="omitted: the worker's configured policy is loaded by an activity"
    )
    proof: DecisionProof | None = Field(default=None, description="set by the API's client, never by a caller")
    received_at: AwareDatetime | None = Field(
        default=None,
        description="when the API received the form, which the SLA clock runs from; set (and signed) by the API's "
        "client, never by a caller; omitted: Temporal's acceptance of the start",
    )


class StartProofCheck(Model):
    """A referral's start, checked against its proof before anything is recorded."""

    workflow_id: str
    workflow_type: str
    start: StartReferral


class ProofVerdict(Model):
    refusal: str | None = Field(default=None, description="why the proof does not hold; none when it does")


class SupervisorReview(Decision):
    approved: bool
    reasons: Text | None = Field(default=None, description="required when returning the VIST to the officer")

    @model_validator(mode="after")
    def _reasons_when_returned(self) -> "SupervisorReview":
        if not self.approved and self.reasons is None:
            raise ValueError("reasons: required when the VIST is returned to the officer")
        return self


class Resubmission(Decision):
    submission: VistSubmission


class ChildScreeningDecision(Model):
    child_id: ChildId
    decision: ChildDecision
    rationale: Text


class RepeatReferralOverride(Model):
    """Retired: a screening once named its supervisor here. Kept so recorded screenings still decode."""

    supervisor_id: StaffId
    rationale: Text


class Screening(Decision):
    risk: RiskGrade
    child_decisions: list[ChildScreeningDecision] = Field(min_length=1)
    outcome: ScreeningOutcome
    rationale: Text
    agencies_informed: list[Agency] = Field(default_factory=list)
    # Retired: a supervisor now grants the override under their own token (OverrideDecision).
    # Recorded screenings may carry it, so it still decodes; the workflow refuses a new one,
    # and the API's request model leaves it out.
    repeat_referral_override: RepeatReferralOverride | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _unique_children(self) -> "Screening":
        ids = [d.child_id for d in self.child_decisions]
        if len(set(ids)) != len(ids):
            raise ValueError("child_decisions: a child has more than one decision")
        return self


class Attendee(Model):
    name: ShortText
    agency: Agency
    role: ShortText
    named_role: NamedRole | None = Field(
        default=None, description="the part in the case this attendee fills, when the policy names it"
    )


class Absence(Model):
    """A named role the policy requires that did not attend, and why."""

    named_role: NamedRole
    reason: Text


class MissingChild(Model):
    """A child a missing report or a trigger plan is about (personal data: kept in the sealed history, matched in
    the read model by a digest)."""

    name: ShortText
    date_of_birth: DomainDate


class ActionOwner(Model):
    agency: Agency
    owner: ShortText = Field(description="the named person who owns the action")
    supervisor: ShortText | None = Field(default=None, description="the owner's supervisor, who is alerted when late")


class AgreedActionSpec(Model):
    description: Text
    owner: ActionOwner
    deadline: DeadlineDatetime = Field(description="a date alone means the end of that day (London)")


def require_owner_and_deadline(actions: object, field: str) -> object:
    """Every agreed action a meeting sets has an owner and a deadline: checked before field validation, so the
    reason reads as the inspectors' rule."""
    if isinstance(actions, list):
        for index, action in enumerate(actions):
            if isinstance(action, dict):
                if not action.get("owner"):
                    raise ValueError(f"{field}[{index}].owner: every agreed action needs an owner")
                if not action.get("deadline"):
                    raise ValueError(f"{field}[{index}].deadline: every agreed action needs a deadline")
    return actions


QUORUM = frozenset({Agency.CHILDRENS_SOCIAL_CARE, Agency.HEALTH, Agency.POLICE})


class StrategyDiscussion(Decision):
    held_at: AwareDatetime
    attendees: list[Attendee] = Field(min_length=1)
    section_47: bool
    rationale: Text
    risk: RiskGrade | None = Field(
        default=None, description="the risk grade the meeting agreed, when it changes the referral's grade"
    )
    agreed_actions: list[AgreedActionSpec] = Field(default_factory=list, max_length=50)
    absences: list[Absence] = Field(
        default_factory=list, max_length=10,
        description="each named role the policy requires that did not attend, with the reason",
    )

    @property
    def quorate(self) -> bool:
        """Children's social care, health and police all present (the named roles are the policy's: `missing_roles`)."""
        return QUORUM <= {a.agency for a in self.attendees}

    def missing_roles(self, required: list[NamedRole]) -> list[NamedRole]:
        """The named roles `required` that no attendee filled: each makes the discussion inquorate."""
        present = {a.named_role for a in self.attendees}
        return [role for role in required if role not in present]

    @model_validator(mode="after")
    def _absent_not_present(self) -> "StrategyDiscussion":
        present = {a.named_role for a in self.attendees}
        named = [a.named_role for a in self.absences]
        for index, absence in enumerate(self.absences):
            if absence.named_role in present:
                raise ValueError(f"absences[{index}].named_role: an attendee fills this role")
            if named.index(absence.named_role) != index:
                raise ValueError(f"absences[{index}].named_role: this role's absence is already recorded")
        return self

    @field_validator("agreed_actions", mode="before")
    @classmethod
    def _owner_and_deadline(cls, actions: object) -> object:
        return require_owner_and_deadline(actions, "agreed_actions")


class ConferenceBooking(Decision):
    conference_at: AwareDatetime
    late_reason: Text | None = Field(
        default=None, description="required when the ICPC is later than the statutory working days"
    )
    police_attendance: PoliceAttendance
    attendance_rationale: Text | None = Field(
        default=None, description="the risk-based rationale, required for a report in lieu"
    )
    report_owner: ShortText | None = Field(default=None, description="who writes the report in lieu")

    @model_validator(mode="after")
    def _rationale_for_report(self) -> "ConferenceBooking":
        if self.police_attendance is PoliceAttendance.REPORT_IN_LIEU:
            if self.attendance_rationale is None:
                raise ValueError("attendance_rationale: required for a report in lieu")
            if self.report_owner is None:
                raise ValueError("report_owner: required for a report in lieu")
        return self


class SocialWorker(Model):
    """The social worker a child protection plan is allocated to: alerted when the child is referred again."""

    staff_id: StaffId = Field(description="their ID in children's social care: the supervision directory finds them by it")
    name: ShortText


class ConferenceOutcome(Decision):
    held_at: AwareDatetime
    child_protection_plan: bool
    police_attended: bool
    rationale: Text
    risk: RiskGrade | None = Field(
        default=None, description="the risk grade the conference agreed, when it changes the referral's grade"
    )
    agreed_actions: list[AgreedActionSpec] = Field(default_factory=list, max_length=50)
    # Required by the workflow for a plan; outcomes recorded before it was asked for have none.
    allocated_social_worker: SocialWorker | None = Field(
        default=None, description="required when the conference makes a child protection plan"
    )


class RiskRegrade(Decision):
    risk: RiskGrade
    reason: Text


class Closure(Decision):
    reason: CloseReason
    note: Text | None = None


class EscalationAcknowledgement(Decision):
    escalation_id: Annotated[str, StringConstraints(max_length=80, pattern=ESCALATION_ID.pattern)]
    as_named_addressee: bool = Field(
        default=False,
        description="the supervision directory names the actor as this rung's addressee (resolved by the API)",
    )


class OverrideRequest(Decision):
    """A screener asks a supervisor to let a repeat referral close with no further action."""

    reason: Text


class OverrideDecision(Decision):
    """A supervisor grants or refuses the requested repeat-referral override, with a rationale."""

    granted: bool
    rationale: Text


class CscNotInformed(Decision):
    """A supervisor decides that children's social care need not be informed of this referral, and why."""

    rationale: Text


class ActionCompletion(Decision):
    note: Text


class ActionReassignment(Decision):
    owner: ActionOwner
    reason: Text
    deadline: DeadlineDatetime | None = Field(default=None, description="a date alone means the end of that day (London)")


# --- what the workflows report ---------------------------------------------------------


# Why an escalation stopped needing an acknowledgement: its referral closed, or its referral was triaged.
EscalationResolution = Literal["referral_closed", "triaged", "episode_closed", "referral_linked", "sitting_closed"]
# Why an escalation was raised: a late step, an inquorate meeting, a quarantined fact, a missing child who needs
# a trigger plan without one, a child missing with a CSE concern and no open referral, a child on a child
# protection plan referred again, or a required attendee absent at a panel.
EscalationReason = Literal[
    "overdue", "inquorate", "recording_failed", "no_trigger_plan", "no_cse_referral", "child_on_plan", "absent_attendee"
]


class Escalation(Model):
    escalation_id: str
    reference: str
    subject: str = Field(description="the late step: a stage, or an agreed action's ID")
    rung: int = Field(description="its place on the ladder from 0; people count rungs from 1 (`rung_number`), as every "
                      "page, table and alert shows them")
    rank: Rank
    addressed_to: str
    due_at: datetime
    raised_at: datetime
    reason: EscalationReason = "overdue"
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = Field(
        default=None, description="when it stopped needing an acknowledgement without one: the referral closed"
    )
    resolution: EscalationResolution | None = None

    @property
    def open(self) -> bool:
        return self.acknowledged_at is None and self.resolved_at is None

    @property
    def rung_number(self) -> int:
        """The rung as people count it: 1 for the first (a sergeant's), 2, 3."""
        return rung_number(self.rung)


def rung_number(rung: int) -> int:
    """A ladder's rung as people count it, from 1, for a place on it counted from 0 (`Escalation.rung`)."""
    return rung + 1


class EscalationAlert(Model):
    """An escalation to deliver to its addressee, with who it is for: a team's chain or an agency's."""

    escalation: Escalation
    agency: Agency
    team: str | None = Field(default=None, description="the team whose ladder it climbs (a station, CRU, MASH)")
    staff_id: str | None = Field(
        default=None, description="the named person it is for (a plan's social worker); else the team's chain"
    )


class AlertDelivery(Model):
    """What one delivery attempt did, per channel: sent now, or already sent by an earlier attempt."""

    escalation_id: str
    sent: list[str] = Field(default_factory=list)
    already_sent: list[str] = Field(default_factory=list)


class RepeatReferralOverrideState(Model):
    """The override a repeat referral needs to close with no further action: asked for, then decided."""

    requested_by: str
    requested_at: datetime
    reason: str
    decided_by: str | None = None
    decided_at: datetime | None = None
    granted: bool | None = Field(default=None, description="none while the request waits for a supervisor")
    rationale: str | None = None


class CscNotInformedState(Model):
    """A supervisor's decision that children's social care need not be informed: a screening may then leave them out."""

    decided_by: str
    decided_at: datetime
    rationale: str


class PriorReferral(Model):
    """An earlier referral in view at screening, once, with every reason it matched."""

    reference: str
    submitted_at: datetime
    incident_type: IncidentType
    matched_on: list[Literal["child", "address"]] = Field(description="the same child, the same address, or both")
    child_ids: list[str] = Field(default_factory=list, description="this referral's children it is also about")
    outcome: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_row_per_match(cls, data: object) -> object:
        # Screening views recorded before a referral was listed once: one reason and one child per row.
        if isinstance(data, dict) and isinstance(data.get("matched_on"), str):
            data = dict(data)
            data["matched_on"] = [data["matched_on"]]
            child_id = data.pop("child_id", None)
            data["child_ids"] = [child_id] if child_id else []
        return data


class AboutTheChildren(Model):
    """Something known about the referral's children, found by their identity keys: why it matched and whom."""

    matched_on: list[Literal["child"]] = Field(description="the same child (name and date of birth)")
    child_ids: list[str] = Field(default_factory=list, description="this referral's children it is about")


class PriorEpisode(AboutTheChildren):
    """A missing episode of a child the referral is about, once, with every reason it matched."""

    episode_id: str
    reported_at: datetime
    phase: str
    grade: MissingGrade


class PriorConference(AboutTheChildren):
    """An earlier referral's conference outcome about a child this referral is about, once, with every reason."""

    reference: str
    held_at: datetime
    child_protection_plan: bool


class PriorPanelDecision(AboutTheChildren):
    """A panel's decision on another case (a referral or a missing episode) about a child this referral is about."""

    sitting_id: str = Field(description="the panel's sitting that decided it")
    case_id: str = Field(description="the referral or missing episode decided on")
    decided_at: datetime
    grade: str | None = Field(default=None, description="the grade the panel decided, if any")
    actions_agreed: int = Field(default=0, description="how many agreed actions the panel set")


class AdultInvolvement(Model):
    """An earlier referral an adult of this referral was involved in, once, with every role they had in it."""

    reference: str
    submitted_at: datetime
    incident_type: IncidentType
    roles: list[AdultRole]


class AdultHistory(Model):
    """An adult of this referral (by `adult_id`) with earlier involvement, newest first; a suspect again is flagged."""

    adult_id: str
    role: AdultRole
    earlier: list[AdultInvolvement]

    @property
    def repeat_suspect(self) -> bool:
        return self.role is AdultRole.SUSPECT and any(AdultRole.SUSPECT in e.roles for e in self.earlier)


class ChildOnPlan(Model):
    """A child of this referral on a live child protection plan, made at another referral's conference."""

    child_id: str
    plan_reference: str = Field(description="the referral whose conference made the plan")
    since: datetime
    social_worker: SocialWorker | None = Field(default=None, description="none on plans made before it was named")


class ScreeningView(Model):
    """What is known about the referral's children before it, each source newest first.

    Earlier referrals about the child, their missing episodes, conference outcomes and panels' decisions reach back
    over the look-back window; earlier referrals at the address, and the repeat flag, over the
    repeat window. Views recorded before the look-back read their lists as the repeat window's.
    """

    prior_referrals: list[PriorReferral] = Field(default_factory=list)
    missing_episodes: list[PriorEpisode] = Field(
        default_factory=list, description="the children's missing episodes in the window, newest first"
    )
    conference_outcomes: list[PriorConference] = Field(
        default_factory=list, description="earlier conferences' outcomes about the children, newest first"
    )
    panel_decisions: list[PriorPanelDecision] = Field(
        default_factory=list, description="panels' decisions on the children's other cases, newest first"
    )
    look_back_since: datetime | None = Field(
        default=None, description="how far back the view reaches about the children; none: the repeat window's start"
    )
    children_on_plans: list[ChildOnPlan] = Field(
        default_factory=list, description="the children on a live child protection plan: no further action needs an override"
    )
    adults: list[AdultHistory] = Field(
        default_factory=list, description="each adult of the referral with earlier involvement over the look-back"
    )
    repeat_children: list[str] = Field(
        default_factory=list, description="child_ids with a repeat-referral flag"
    )

    @property
    def repeat(self) -> bool:
        return bool(self.repeat_children)

    @property
    def repeat_suspects(self) -> list[str]:
        """The adults who are suspects now and were suspects in an earlier referral."""
        return [adult.adult_id for adult in self.adults if adult.repeat_suspect]

    @property
    def override_needed(self) -> str | None:
        """Why no further action needs a supervisor's granted override, if it does."""
        if self.children_on_plans:
            return "a referral about a child on a child protection plan"
        if self.repeat:
            return "a repeat referral"
        return None


class ActionState(Model):
    action_id: str
    reference: str
    description: str
    owner: ActionOwner
    deadline: datetime
    completed_at: datetime | None = None
    completed_by: str | None = None
    completion_note: str | None = None
    reminded_at: datetime | None = None
    reassignments: int = 0
    escalations: list[Escalation] = Field(default_factory=list)


class ActionStart(Model):
    action_id: str
    reference: str
    spec: AgreedActionSpec
    agreed_by: Actor
    agreed_at: datetime
    policy: SlaPolicy


class HistoryEntry(Model):
    seq: int
    kind: str = Field(description="a decision's FactKind (workflows/facts.py), as stored")
    at: datetime
    actor_id: str
    actor_role: Role


class ReferralState(Model):
    reference: str
    stage: Stage
    risk: RiskGrade
    incident_type: IncidentType
    submitted_at: datetime
    stage_entered_at: datetime
    deadline: datetime | None = None
    submission_versions: int = 1
    form_id: uuid.UUID
    form_digest: str = Field(description="digest of the first submitted version: the same form ID with other content is a conflict")
    children: list[str] = Field(default_factory=list, description="child_ids only")
    screening_view: ScreeningView | None = None
    screening_outcome: ScreeningOutcome | None = None
    repeat_referral_override: RepeatReferralOverrideState | None = None
    csc_not_informed: CscNotInformedState | None = Field(
        default=None, description="a supervisor's decision that children's social care need not be informed"
    )
    referring_agency: Agency = Field(
        default=Agency.POLICE, description="who referred: police (a VIST) or the partner agency whose referral it is"
    )
    section_47: bool | None = None
    strategy_discussion_inquorate: bool = False
    conference_due_by: datetime | None = None
    conference_at: datetime | None = None
    conference_late_reason: str | None = Field(
        default=None, description="why the ICPC is later than the statutory working days, when it is"
    )
    police_attendance: PoliceAttendance | None = None
    child_protection_plan: bool | None = None
    close_reason: CloseReason | None = None
    actions: list[ActionState] = Field(default_factory=list)
    escalations: list[Escalation] = Field(default_factory=list)
    history: list[HistoryEntry] = Field(default_factory=list)
    linked_episodes: list[str] = Field(
        default_factory=list, description="missing episodes of its children with a CSE concern, linked to it"
    )

    @property
    def open_actions(self) -> list[ActionState]:
        return [a for a in self.actions if a.completed_at is None]


class EpisodeLink(Model):
    """A missing episode with a CSE concern links itself to a referral about the same child (a signal to the referral)."""

    episode_id: Annotated[str, StringConstraints(pattern=rf"^{EPISODE_PATTERN}$")]


class RecordOutcome(Model):
    """What `record_event` did with a fact: wrote it, found it written, or quarantined it.

    A fact PostgreSQL refuses for good is quarantined with its reason (never its values), so
    the outbox goes on; the workflow raises a "recording failed" escalation to the administrators.
    """

    recorded: bool = Field(description="false when the fact was already recorded, or was quarantined")
    quarantine_reason: str | None = None
    alert_left: bool | None = Field(
        default=None,
        description="for an escalation recorded with its alert: whether channels are left for `deliver_escalation` "
        "(false once the in-app alert, written with the fact, was all the addressee has)",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_older_workers(cls, value: object) -> object:
        # Histories from before quarantine hold a bare true/false: written, or already there.
        return {"recorded": value} if isinstance(value, bool) else value

    @property
    def quarantined(self) -> bool:
        return self.quarantine_reason is not None


class PriorReferralQuery(Model):
    reference: str
    since: datetime = Field(description="the repeat window's start: the address, and the repeat flag's count")
    policy_threshold: int
    look_back_since: datetime | None = Field(
        default=None, description="the look-back's start for what is about the children; none: `since`"
    )
