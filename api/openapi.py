"""The API's OpenAPI document as people read it: an example on every request body, errors as problem details.

Examples are synthetic and valid against their models (tests/test_openapi_examples.py), with
times as people write them: London wall-clock time without an offset.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from api.errors import PROBLEM_MEDIA_TYPE
from starter.forms import partner_form, vist_form
from workflows.models import IncidentType, PartnerTool

OWNER = {"agency": "childrens_social_care", "owner": "Social Worker Synthetic", "supervisor": "Team Manager Synthetic"}
ACTION = {"description": "Synthetic: visit the child at school and speak to them alone.", "owner": OWNER,
          "deadline": "2026-11-27"}
CHILD = {"name": "Alder Synthton", "date_of_birth": "2012-03-14"}
PLAN = {
    "owner": OWNER,
    "triggers": "Synthetic: goes missing after contact visits.",
    "police_activity": {"where_to_look_first": "Synthetic: the skate park on Fiction Close.",
                        "may_be_with": "Synthetic: an older friend", "places": "Synthetic: the bus station",
                        "phone": "07700 900000"},
    "review_by": "2027-02-20",
}
ATTENDEES = [
    {"name": "Social Worker Synthetic", "agency": "childrens_social_care", "role": "social worker",
     "named_role": "allocated_social_worker"},
    {"name": "DC Synthetic", "agency": "police", "role": "detective constable", "named_role": "investigating_officer"},
    {"name": "Nurse Synthetic", "agency": "health", "role": "school nurse"},
]

# Each request body's example, by its schema's name in the document.
EXAMPLES: dict[str, dict[str, Any]] = {
    "VistSubmission": vist_form(IncidentType.DOMESTIC_ABUSE),
    "PartnerReferral": partner_form(PartnerTool.CSE_SCREENING_TOOL),
    "AddressEnquiry": {"address": "1 Placeholder Street, Testtown TT0001"},
    "MissingReport": {
        "report_id": "0b7f6a52-3f0e-4d7e-9a4c-2d1f5e6a7b80", "child": CHILD, "missing_since": "2026-11-24T16:30",
        "assessment": {"grade": "medium", "indicators": ["cse_concern"]}, "station": "Testtown",
        "circumstances": "Synthetic: did not come home from school.",
    },
    "LowGradeDecisionRequest": {"keep_low": True, "rationale": "Synthetic: known to stay with a grandparent."},
    "EpisodeReviewRequest": {
        "tracing_done": "Synthetic: home address searched, friends called.",
        "next_steps": "Synthetic: check the bus station CCTV.", "grade": "high", "tracing_actions": [ACTION],
    },
    "TracingRecordRequest": {"activity": "cctv_reviewed", "note": "Synthetic: seen at the bus station at 17:10."},
    "EpisodeRegradeRequest": {"grade": "high", "reason": "Synthetic: seen with an unknown adult."},
    "FoundRequest": {
        "found_at": "2026-11-25T09:15", "where": "relative_or_friend", "how": "found_by_police",
        "safe_and_well": "safe_and_well", "safe_and_well_at": "2026-11-25T10:00", "interviewer": OWNER,
    },
    "ReturnHomeInterviewRequest": {
        "outcome": "done", "held_at": "2026-11-26T15:00",
        "intelligence_for_police": "Synthetic: met an older friend at the park.",
    },
    "TriggerPlanRequest": {"child": CHILD, "plan": PLAN},
    "PlanRevisionRequest": {"plan": PLAN, "folds_in": [1]},
    "PoliceAddendumRequest": {"information": "Synthetic: also uses the library on Nowhere Road.", "fold_in": False},
    "PlanEndingRequest": {"reason": "Synthetic: the child moved out of the area."},
    "SupervisorReviewRequest": {"approved": False, "reasons": "Synthetic: record what the child said."},
    "ResubmissionRequest": {"submission": vist_form(IncidentType.DOMESTIC_ABUSE)},
    "ScreeningRequest": {
        "risk": "medium",
        "child_decisions": [{"child_id": "C1", "decision": "strategy_discussion",
                             "rationale": "Synthetic: repeated exposure to domestic abuse."}],
        "outcome": "strategy_discussion", "rationale": "Synthetic: significant harm may be suspected.",
        "agencies_informed": ["childrens_social_care", "health"],
    },
    "OverrideRequestRequest": {"reason": "Synthetic: the earlier referrals were about a different household."},
    "CscNotInformedRequest": {"rationale": "Synthetic: children's social care made this referral themselves."},
    "OverrideDecisionRequest": {"granted": True, "rationale": "Synthetic: checked; no cumulative concern."},
    "StrategyDiscussionRequest": {
        "held_at": "2026-11-24T11:00", "attendees": ATTENDEES, "section_47": True,
        "rationale": "Synthetic: reasonable cause to suspect significant harm.", "risk": "high",
        "agreed_actions": [ACTION], "absences": [],
    },
    "ConferenceBookingRequest": {
        "conference_at": "2026-12-10T10:00", "police_attendance": "report_in_lieu",
        "attendance_rationale": "Synthetic: no new police information; a written report is enough.",
        "report_owner": "DC Synthetic",
    },
    "ConferenceOutcomeRequest": {
        "held_at": "2026-12-10T10:00", "child_protection_plan": True, "police_attended": False,
        "rationale": "Synthetic: a plan under the category of emotional abuse.", "agreed_actions": [ACTION],
        "allocated_social_worker": {"staff_id": "SW-6001", "name": "Social Worker Synthetic"},
    },
    "RiskRegradeRequest": {"risk": "high", "reason": "Synthetic: the suspect has returned to the address."},
    "ClosureRequest": {"reason": "no_further_action", "note": "Synthetic: no concerns found."},
    "ActionCompletionRequest": {"note": "Synthetic: visited the child at school on 26 November."},
    "ActionReassignmentRequest": {
        "owner": {"agency": "health", "owner": "Nurse Synthetic"}, "reason": "Synthetic: the school nurse knows the child.",
        "deadline": "2026-11-28T17:00",
    },
    "TriageDecisionRequest": {"reference": "REF-7K3QX-M2ZPA", "outcome": "early_help",
                              "rationale": "Synthetic: first incident; the family accepts support."},
    "Panel": {
        "panel_id": "CSENORTH", "name": "CSE and missing MARAC, north", "area": "Testtown north", "cadence": "monthly",
        "first_sitting": "2026-12-01", "meets_at": "10:00:00",
        "member_agencies": ["police", "childrens_social_care", "health", "education"],
    },
    "SittingClosureRequest": {},
    "AgendaEditRequest": {"add": [{"case_id": "MIS-7K3QX-M2ZPA", "referred_by": "education"}], "remove": [],
                          "reason": "Synthetic: the school raised a CSE concern."},
    "MeetingStartRequest": {},
    "AttendanceRecordRequest": {
        "attendees": [{"name": "DC Synthetic", "agency": "police", "role": "CSE team", "named_role": "cse_team",
                       "case_ids": ["MIS-7K3QX-M2ZPA"]}],
        "absences": [{"case_id": "MIS-7K3QX-M2ZPA", "named_role": "allocated_officer",
                      "reason": "Synthetic: on leave; briefed the CSE team."}],
    },
    "PanelCaseOutcomeRequest": {"case_id": "MIS-7K3QX-M2ZPA", "grade": "high",
                                "rationale": "Synthetic: new intelligence of an older adult.", "agreed_actions": [ACTION]},
}


def request_bodies(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Each operation's request body media type, with its "METHOD /path" name."""
    return [
        (f"{method.upper()} {path}", media)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        for media in operation.get("requestBody", {}).get("content", {}).values()
    ]


def schema_name(media: dict[str, Any]) -> str:
    return media["schema"]["$ref"].rsplit("/", 1)[-1]


def documented(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with every request body's example, and every error answer as `application/problem+json`."""
    for _, media in request_bodies(document):
        example = EXAMPLES.get(schema_name(media))
        if example is not None:
            media["example"] = example
    for operations in document["paths"].values():
        for operation in operations.values():
            for status, answer in operation.get("responses", {}).items():
                content = answer.get("content", {})
                if status[0] in "45" and "application/json" in content:
                    content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
    return document


def document_api(app: FastAPI) -> None:
    """Make `app.openapi()` the documented form, built once."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = documented(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
