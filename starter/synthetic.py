"""Synthetic VIST submissions and decisions: made-up people, for tests and the demo only."""

from __future__ import annotations

import random
import uuid
from datetime import date, datetime, timedelta, timezone

from workflows.plan_models import PoliceActivity, TriggerPlan
from workflows.missing_models import (
    Found,
    FoundHow,
    FoundWhere,
    MissingChild,
    MissingReport,
    RiskAssessment,
    RiskIndicator,
    SafeAndWell,
)
from workflows.models import (
    MissingGrade,
    Actor,
    AdultInvolved,
    AdultRole,
    Agency,
    AgreedActionSpec,
    ActionOwner,
    Attendee,
    ChildDecision,
    ChildPresent,
    ChildScreeningDecision,
    CseIndicator,
    Incident,
    IncidentType,
    NamedRole,
    PartnerReferral,
    PartnerTool,
    RiskGrade,
    Rank,
    Role,
    Screening,
    ScreeningOutcome,
    SocialWorker,
    StrategyDiscussion,
    SupervisorReview,
    VistSubmission,
)

FIRST_NAMES = ["Alder", "Bramble", "Cobalt", "Dune", "Ember", "Fennel", "Garnet", "Hazel", "Indigo", "Juniper"]
FAMILY_NAMES = ["Synthton", "Fakely", "Mockridge", "Testwell", "Sampleby"]
STREETS = ["Imaginary Lane", "Nowhere Road", "Placeholder Street", "Fiction Close"]

OFFICER = Actor(id="PC-1001", role=Role.OFFICER, agency=Agency.POLICE)
SERGEANT = Actor(id="PS-2001", role=Role.SUPERVISOR, agency=Agency.POLICE, rank=Rank.SERGEANT)
INSPECTOR = Actor(id="INSP-2501", role=Role.SUPERVISOR, agency=Agency.POLICE, rank=Rank.INSPECTOR)
SCREENER = Actor(id="CRU-3001", role=Role.SCREENER, agency=Agency.POLICE)
CALL_HANDLER = Actor(id="CH-3501", role=Role.CALL_HANDLER, agency=Agency.POLICE)
AUDITOR = Actor(id="AUD-4001", role=Role.AUDITOR, agency=Agency.POLICE)
HEALTH_PARTNER = Actor(id="HV-5001", role=Role.PARTNER, agency=Agency.HEALTH)
CSC_PARTNER = Actor(id="SW-6001", role=Role.PARTNER, agency=Agency.CHILDRENS_SOCIAL_CARE)
# The social worker a synthetic child protection plan is allocated to: the children's social care partner.
ALLOCATED_SOCIAL_WORKER = SocialWorker(staff_id=CSC_PARTNER.id, name="Social Worker Synthetic")


def synthetic_vist(
    *,
    rng: random.Random | None = None,
    children: int = 1,
    incident_type: IncidentType = IncidentType.DOMESTIC_ABUSE,
    risk: RiskGrade = RiskGrade.MEDIUM,
    occurred_at: datetime | None = None,
    family: str | None = None,
    address: str | None = None,
    form_id: uuid.UUID | None = None,
) -> VistSubmission:
    rng = rng or random.Random()
    occurred_at = occurred_at or datetime.now(timezone.utc) - timedelta(hours=1)
    # Unique unless a test asks for the same family or address (the repeat-referral rule).
    family = family or f"{rng.choice(FAMILY_NAMES)}-{rng.randrange(10**6):06d}"
    address = address or f"{rng.randint(1, 999)} {rng.choice(STREETS)}, Testtown TT{rng.randrange(10**4):04d}"
    return VistSubmission(
        form_id=form_id or uuid.UUID(int=rng.getrandbits(128), version=4),
        incident=Incident(type=incident_type, occurred_at=occurred_at, location=address),
        children=[
            ChildPresent(
                child_id=f"C{n}",
                name=f"{FIRST_NAMES[(n * 3 + len(family)) % len(FIRST_NAMES)]} {family}",
                date_of_birth=date(occurred_at.year - 4 - 3 * n, 1 + n, 10 + n),
                home_address=address,
                observed="Synthetic observation: the child was in the next room.",
                voice_of_the_child="Synthetic account: quiet, held a toy, said they were scared.",
            )
            for n in range(1, children + 1)
        ],
        initial_risk=risk,
        officer_id=OFFICER.id,
        station="Testtown",
    )


def synthetic_partner_referral(
    *, rng: random.Random | None = None, referrer: Actor = HEALTH_PARTNER, risk: RiskGrade = RiskGrade.MEDIUM,
    form_id: uuid.UUID | None = None,
) -> PartnerReferral:
    """A partner's CSE screening tool about one made-up child, by `referrer` (a partner of a referring agency)."""
    vist = synthetic_vist(rng=rng, incident_type=IncidentType.CSE, risk=risk, form_id=form_id)
    return PartnerReferral(
        form_id=vist.form_id,
        incident=vist.incident.model_copy(update={"summary": "Synthetic concern: seen getting into cars after school."}),
        children=vist.children,
        initial_risk=risk,
        referrer_id=referrer.id,
        referring_agency=referrer.agency,
        tool=PartnerTool.CSE_SCREENING_TOOL,
        cse_indicators=[CseIndicator.MISSING_EPISODES, CseIndicator.TRANSPORTED_BY_UNKNOWN_ADULTS],
    )


def synthetic_adult(rng: random.Random, role: AdultRole = AdultRole.SUSPECT) -> AdultInvolved:
    """A made-up adult with a name and date of birth: their identity key matches them across referrals."""
    family = f"{rng.choice(FAMILY_NAMES)}-{rng.randrange(10**6):06d}"
    return AdultInvolved(
        name=f"{rng.choice(FIRST_NAMES)} {family}",
        role=role,
        date_of_birth=date(1970 + rng.randrange(30), 1 + rng.randrange(12), 1 + rng.randrange(28)),
    )


def approval() -> SupervisorReview:
    return SupervisorReview(actor=SERGEANT, approved=True)


def screening(submission: VistSubmission, outcome: ScreeningOutcome, risk: RiskGrade | None = None) -> Screening:
    decision = ChildDecision(outcome.value)
    return Screening(
        actor=SCREENER,
        risk=risk or submission.initial_risk,
        child_decisions=[
            ChildScreeningDecision(child_id=c.child_id, decision=decision, rationale="Synthetic rationale.")
            for c in submission.children
        ],
        outcome=outcome,
        rationale="Synthetic screening rationale.",
        agencies_informed=[Agency.CHILDRENS_SOCIAL_CARE],
    )


QUORATE_ATTENDEES = [
    Attendee(name="Social Worker Synthetic", agency=Agency.CHILDRENS_SOCIAL_CARE, role="social worker",
             named_role=NamedRole.ALLOCATED_SOCIAL_WORKER),
    Attendee(name="Team Manager Synthetic", agency=Agency.CHILDRENS_SOCIAL_CARE, role="team manager"),
    Attendee(name="Health Visitor Synthetic", agency=Agency.HEALTH, role="health visitor"),
    Attendee(name="DC Synthetic", agency=Agency.POLICE, role="investigating officer",
             named_role=NamedRole.INVESTIGATING_OFFICER),
]


def strategy_discussion(
    held_at: datetime, *, section_47: bool, actions: int = 2, attendees: list[Attendee] | None = None
) -> StrategyDiscussion:
    owners = [
        ActionOwner(agency=Agency.HEALTH, owner="Health Visitor Synthetic", supervisor="Health Lead Synthetic"),
        ActionOwner(agency=Agency.CHILDRENS_SOCIAL_CARE, owner="Social Worker Synthetic"),
        ActionOwner(agency=Agency.POLICE, owner="DC Synthetic", supervisor="DS Synthetic"),
    ]
    return StrategyDiscussion(
        actor=SCREENER,
        held_at=held_at,
        attendees=attendees if attendees is not None else QUORATE_ATTENDEES,
        section_47=section_47,
        rationale="Synthetic strategy rationale.",
        agreed_actions=[
            AgreedActionSpec(
                description=f"Synthetic action {n + 1}",
                owner=owners[n % len(owners)],
                deadline=held_at + timedelta(days=3 + n),
            )
            for n in range(actions)
        ],
    )


# --- missing episodes ---------------------------------------------------------------------

SOCIAL_WORKER = ActionOwner(
    agency=Agency.CHILDRENS_SOCIAL_CARE, owner="Social Worker Synthetic", supervisor="Team Manager Synthetic"
)


def synthetic_missing_report(
    *,
    rng: random.Random | None = None,
    grade: MissingGrade = MissingGrade.MEDIUM,
    indicators: list[RiskIndicator] | None = None,
    missing_since: datetime | None = None,
) -> MissingReport:
    rng = rng or random.Random()
    missing_since = missing_since or datetime.now(timezone.utc) - timedelta(hours=2)
    family = f"{rng.choice(FAMILY_NAMES)}-{rng.randrange(10**6):06d}"
    return MissingReport(
        report_id=uuid.UUID(int=rng.getrandbits(128), version=4),
        child=MissingChild(name=f"{rng.choice(FIRST_NAMES)} {family}", date_of_birth=date(missing_since.year - 14, 3, 9)),
        missing_since=missing_since,
        assessment=RiskAssessment(grade=grade, indicators=indicators or [RiskIndicator.FIRST_EPISODE]),
        station="Testtown",
        circumstances="Synthetic circumstances: did not come home from school.",
    )


def found_report(found_at: datetime, actor: Actor = OFFICER) -> Found:
    return Found(
        actor=actor,
        found_at=found_at,
        where=FoundWhere.RELATIVE_OR_FRIEND,
        how=FoundHow.FOUND_BY_POLICE,
        safe_and_well=SafeAndWell.SAFE_AND_WELL,
        safe_and_well_at=found_at,
        interviewer=SOCIAL_WORKER,
    )


def synthetic_trigger_plan(review_by: datetime, owner: ActionOwner = SOCIAL_WORKER) -> TriggerPlan:
    """A plan with every police field filled with synthetic text, reviewed by `review_by`."""
    return TriggerPlan(
        owner=owner,
        triggers="Synthetic triggers: arguments at home about curfew.",
        police_activity=PoliceActivity(
            where_to_look_first="Synthetic: the retail park by the station.",
            may_be_with="Synthetic: an older friend, first name only.",
            places="Synthetic: the skate park; a relative's flat across town.",
            phone="07700 900000",
        ),
        review_by=review_by,
    )
