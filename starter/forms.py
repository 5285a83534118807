"""Forms people can copy: a valid VIST per incident type and a partner's referral per tool (examples/,
`referrals template vist|partner`), synthetic people only.

Times are written as people write them, London wall-clock time without an offset; the form's own
rules (what an incident type requires, when section 46 is allowed) are shown by example.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any

from starter.synthetic import HEALTH_PARTNER, OFFICER
from workflows.models import AdultRole, Agency, CseIndicator, IncidentType, PartnerTool, RiskGrade, local_zone

# The examples' fixed incident time (London) and their form IDs' namespace: the same file every time.
EXAMPLE_OCCURRED_AT = datetime(2026, 11, 20, 21, 40)
EXAMPLE_FORMS = uuid.UUID("5f0c1c7e-4b1a-4c55-9a1e-7d0e3c2b9a10")

# What each incident type's example shows: the initial risk, the adults involved, and what the officer saw.
INCIDENTS: dict[IncidentType, tuple[RiskGrade, list[AdultRole], str]] = {
    IncidentType.DOMESTIC_ABUSE: (RiskGrade.MEDIUM, [AdultRole.SUSPECT, AdultRole.VICTIM],
                                  "Synthetic: the child was in the next room during the argument."),
    IncidentType.SEXUAL_OFFENCE: (RiskGrade.HIGH, [AdultRole.SUSPECT, AdultRole.PARENT_OR_CARER],
                                  "Synthetic: the child disclosed to a teacher, who called police."),
    IncidentType.MISSING: (RiskGrade.MEDIUM, [AdultRole.PARENT_OR_CARER],
                           "Synthetic: the child was found at a friend's address after six hours missing."),
    IncidentType.CSE: (RiskGrade.HIGH, [AdultRole.SUSPECT],
                       "Synthetic: the child was found in a car with an older adult not known to the family."),
    IncidentType.NEGLECT: (RiskGrade.STANDARD, [AdultRole.PARENT_OR_CARER],
                           "Synthetic: no food in the house; the child was cold and unwashed."),
    IncidentType.PHYSICAL_ABUSE: (RiskGrade.HIGH, [AdultRole.SUSPECT],
                                  "Synthetic: bruising to the child's arm, consistent with being gripped."),
    IncidentType.ONLINE_HARM: (RiskGrade.MEDIUM, [],
                               "Synthetic: the child was sent messages by an unknown adult on a game's chat."),
    IncidentType.OTHER: (RiskGrade.STANDARD, [AdultRole.PARENT_OR_CARER],
                         "Synthetic: the child was left alone at a bus station late at night."),
}


def london(moment: datetime) -> str:
    """A London wall-clock time as a form writes it: no offset, to the minute."""
    return moment.strftime("%Y-%m-%dT%H:%M")


def concern(form_id: uuid.UUID, incident: IncidentType, occurred_at: datetime, observed: str, location: str,
            whose_words: str) -> dict[str, Any]:
    """What every form opening a referral holds (as JSON): its ID, the incident or concern, one synthetic child."""
    return {
        "form_id": str(form_id),
        "incident": {
            "type": incident.value,
            "occurred_at": london(occurred_at),
            "location": location,
            "summary": f"Synthetic summary of what happened, {whose_words}.",
        },
        "children": [
            {
                "child_id": "C1",
                "name": "Alder Synthton",
                "date_of_birth": date(occurred_at.year - 7, 3, 14).isoformat(),
                "home_address": "1 Placeholder Street, Testtown TT0001 (synthetic)",
                "observed": observed,
                "voice_of_the_child": "Synthetic: quiet, held a toy, said they were scared.",
            }
        ],
    }


def vist_form(incident: IncidentType, *, form_id: uuid.UUID | None = None, occurred_at: datetime | None = None) -> dict[str, Any]:
    """A valid VIST form (as JSON) for `incident`, filled with synthetic people.

    The same arguments give the same form: by default the example's fixed form ID and incident time.
    Domestic abuse records the voice of the child (required); physical abuse shows section 46
    police protection, which only a high initial risk allows.
    """
    risk, adults, observed = INCIDENTS[incident]
    occurred_at = occurred_at or EXAMPLE_OCCURRED_AT
    form = concern(form_id or uuid.uuid5(EXAMPLE_FORMS, incident.value), incident, occurred_at, observed,
                   "1 Placeholder Street, Testtown TT0001 (synthetic)", "in the officer's words") | {
        "adults": [
            {"name": f"Adult{n} Synthton", "role": role.value, "date_of_birth": date(1985 + n, 6, 1).isoformat()}
            for n, role in enumerate(adults, start=1)
        ],
        "initial_risk": risk.value,
        "officer_id": OFFICER.id,
        "station": "Testtown",
    }
    if incident is IncidentType.PHYSICAL_ABUSE:
        form["section_46"] = {
            "used_at": london(occurred_at + timedelta(minutes=50)),
            "child_ids": ["C1"],
            "accommodation": "Synthetic: emergency foster placement arranged by the out-of-hours team.",
        }
    return form


def vist_skeleton(incident: IncidentType, now: datetime) -> dict[str, Any]:
    """A form to fill in: a new form ID, the incident yesterday evening, the example's synthetic fields."""
    return vist_form(incident, form_id=uuid.uuid4(), occurred_at=yesterday_evening(now))


# What each partner's tool shows by example: its concern, the initial risk, what the referrer saw, what it marks.
PARTNER_TOOLS: dict[PartnerTool, tuple[IncidentType, RiskGrade, str, list[CseIndicator]]] = {
    PartnerTool.CSE_SCREENING_TOOL: (IncidentType.CSE, RiskGrade.HIGH,
                                     "Synthetic: collected from school by older adults in different cars.",
                                     [CseIndicator.MISSING_EPISODES, CseIndicator.TRANSPORTED_BY_UNKNOWN_ADULTS]),
    PartnerTool.SAFEGUARDING_CONCERN: (IncidentType.NEGLECT, RiskGrade.MEDIUM,
                                       "Synthetic: arrives hungry most days, in the same clothes.", []),
}


def partner_form(tool: PartnerTool, *, referrer_id: str = HEALTH_PARTNER.id, agency: str = HEALTH_PARTNER.agency.value,
                 form_id: uuid.UUID | None = None, occurred_at: datetime | None = None) -> dict[str, Any]:
    """A valid partner's referral (as JSON) made with `tool` by `referrer_id` of `agency`, about a synthetic child.

    The same arguments give the same form. A CSE screening tool's concern is CSE, with the indicators
    it marks; a safeguarding concern marks none.
    """
    incident, risk, observed, indicators = PARTNER_TOOLS[tool]
    form_id = form_id or uuid.uuid5(EXAMPLE_FORMS, f"partner:{tool.value}")
    return concern(form_id, incident, occurred_at or EXAMPLE_OCCURRED_AT, observed, "Testtown Primary School (synthetic)",
                   "in the referrer's words") | {
        "initial_risk": risk.value,
        "referrer_id": referrer_id,
        "referring_agency": agency,
        "tool": tool.value,
        "cse_indicators": [indicator.value for indicator in indicators],
    }


def yesterday_evening(now: datetime) -> datetime:
    """A skeleton's incident time: yesterday evening in London (never an hour the clocks skip or repeat)."""
    yesterday = now.astimezone(local_zone()).date() - timedelta(days=1)
    return datetime.combine(yesterday, EXAMPLE_OCCURRED_AT.time())


def partner_skeleton(tool: PartnerTool, referrer_id: str, agency: Agency, now: datetime) -> dict[str, Any]:
    """A partner's referral to fill in: a new form ID, the concern yesterday evening, the referrer's own ID and agency."""
    return partner_form(tool, referrer_id=referrer_id, agency=agency.value, form_id=uuid.uuid4(),
                        occurred_at=yesterday_evening(now))
