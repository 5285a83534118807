"""Every rule of the decision and form models (workflows/models.py): each breach refused with the field and the reason."""

from __future__ import annotations

import copy
import json
import random
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from starter.synthetic import SCREENER, SERGEANT, screening, strategy_discussion, synthetic_vist
from workflows.models import (
    ActionCompletion,
    ActionReassignment,
    ConferenceBooking,
    Duration,
    RiskGrade,
    EscalationAcknowledgement,
    ScreeningOutcome,
    Screening,
    Section46,
    StrategyDiscussion,
    SupervisorReview,
    VistSubmission,
)

REMOVED = object()
HELD_AT = datetime(2026, 3, 2, 10, tzinfo=timezone.utc)
FORM = synthetic_vist(rng=random.Random("fast:models"), occurred_at=HELD_AT)
PROTECTED = FORM.model_copy(update={"initial_risk": RiskGrade.HIGH, "section_46": Section46(
    used_at=HELD_AT + timedelta(hours=1), child_ids=["C1"], accommodation="Synthetic foster placement.")})
CHILD = ("children", 0)

# (the model, a valid body, the path changed, its new value (REMOVED: taken out), what the refusal says)
BREACHES: dict[str, tuple[type[BaseModel], BaseModel, tuple, Any, str]] = {
    "a date where a time is meant": (VistSubmission, FORM, ("incident", "occurred_at"), "2026-03-02",
                                     "needs a time of day as well as the date"),
    "an hour London's clocks skip": (VistSubmission, FORM, ("incident", "occurred_at"), "2026-03-29T01:30",
                                     "London's clocks skip this time as they go forward: give an offset"),
    "an hour London's clocks show twice": (VistSubmission, FORM, ("incident", "occurred_at"), "2026-10-25T01:30",
                                           "London's clocks show this time twice as they go back: give an offset"),
    "an offset no clock shows": (VistSubmission, FORM, ("incident", "occurred_at"), "2026-03-02T10:00:00+14:30",
                                 "the timezone offset must be within -14:00 to +14:00"),
    "a time before 1900": (VistSubmission, FORM, ("incident", "occurred_at"), "1899-12-31T10:00:00+00:00",
                           "must lie between 1900 and 2200"),
    "a date before 1900": (VistSubmission, FORM, (*CHILD, "date_of_birth"), "1899-12-31", "must lie between 1900 and 2200"),
    "a control character in free text": (VistSubmission, FORM, (*CHILD, "observed"), "Synthetic\x00account",
                                         "must not hold control characters other than line breaks and tabs"),
    "a line break in short text": (VistSubmission, FORM, (*CHILD, "name"), "Synthetic\nName",
                                   "must not hold control characters"),
    "a lone surrogate": (VistSubmission, FORM, ("incident", "location"), "Synthetic\ud800Street",
                         "incident.location\n  Input should be a valid string, unable to parse raw data"),
    "blank text": (VistSubmission, FORM, ("station",), "   ", "at least 1 character"),
    "a staff ID with a space": (VistSubmission, FORM, ("officer_id",), "PC 1001", "should match pattern"),
    "a child key that is not C<n>": (VistSubmission, FORM, (*CHILD, "child_id"), "X1", "should match pattern"),
    "no child": (VistSubmission, FORM, ("children",), [], "at least 1 item"),
    "a field the form does not have": (VistSubmission, FORM, ("nickname",), "Synthetic", "Extra inputs are not permitted"),
    "the same child twice": (VistSubmission, FORM, ("children", 1), FORM.children[0].model_dump(mode="json"),
                             "children: each child_id must be unique within the referral"),
    "born after the incident": (VistSubmission, FORM, (*CHILD, "date_of_birth"), "2027-01-01",
                                "children[0].date_of_birth: is after the incident"),
    "18 or over at the incident": (VistSubmission, FORM, (*CHILD, "date_of_birth"), "2000-01-01",
                                   "children[0].date_of_birth: the child was 18 or over at the incident"),
    "domestic abuse without the voice of the child": (VistSubmission, FORM, (*CHILD, "voice_of_the_child"), None,
                                                      "children[0].voice_of_the_child: required when the incident is domestic abuse"),
    "police protection of a child not in the referral": (VistSubmission, PROTECTED, ("section_46", "child_ids"), ["C7"],
                                                         "section_46.child_ids: names a child not in the referral"),
    "police protection before the incident": (VistSubmission, PROTECTED, ("section_46", "used_at"),
                                              "2026-03-02T09:00:00+00:00", "section_46.used_at: is before the incident"),
    "police protection below high risk": (VistSubmission, PROTECTED, ("initial_risk",), "medium",
                                          "initial_risk: must be high when section 46 police protection was used"),
    "a return without reasons": (SupervisorReview, SupervisorReview(actor=SERGEANT, approved=True), ("approved",), False,
                                 "reasons: required when the VIST is returned to the officer"),
    "two decisions for one child": (Screening, screening(FORM, ScreeningOutcome.EARLY_HELP), ("child_decisions", 1),
                                    screening(FORM, ScreeningOutcome.EARLY_HELP).child_decisions[0].model_dump(mode="json"),
                                    "child_decisions: a child has more than one decision"),
    "a screening deciding for no child": (Screening, screening(FORM, ScreeningOutcome.EARLY_HELP), ("child_decisions",), [],
                                          "at least 1 item"),
    "an agreed action without an owner": (StrategyDiscussion, strategy_discussion(HELD_AT, section_47=False, actions=1),
                                          ("agreed_actions", 0, "owner"), REMOVED,
                                          "agreed_actions[0].owner: every agreed action needs an owner"),
    "an agreed action without a deadline": (StrategyDiscussion, strategy_discussion(HELD_AT, section_47=False, actions=1),
                                            ("agreed_actions", 0, "deadline"), None,
                                            "agreed_actions[0].deadline: every agreed action needs a deadline"),
    "a discussion nobody attended": (StrategyDiscussion, strategy_discussion(HELD_AT, section_47=False),
                                     ("attendees",), [], "at least 1 item"),
    "a report in lieu without its rationale": (
        ConferenceBooking, ConferenceBooking(actor=SCREENER, conference_at=HELD_AT, police_attendance="report_in_lieu",
                                             attendance_rationale="Synthetic.", report_owner="DC Synthetic"),
        ("attendance_rationale",), None, "attendance_rationale: required for a report in lieu"),
    "a report in lieu without its writer": (
        ConferenceBooking, ConferenceBooking(actor=SCREENER, conference_at=HELD_AT, police_attendance="report_in_lieu",
                                             attendance_rationale="Synthetic.", report_owner="DC Synthetic"),
        ("report_owner",), None, "report_owner: required for a report in lieu"),
    "a duration in hours and working days": (Duration, Duration(hours=1), ("working_days",), 1,
                                             "give exactly one of hours or working_days"),
    "a duration in neither": (Duration, Duration(hours=1), ("hours",), None, "give exactly one of hours or working_days"),
    "an escalation ID of no referral": (EscalationAcknowledgement,
                                        EscalationAcknowledgement(actor=SERGEANT, escalation_id="REF-AAAAA-BBBBB.E1"),
                                        ("escalation_id",), "REF-1.E1", "should match pattern"),
    "a reassignment without a reason": (ActionReassignment, ActionReassignment(
        actor=SCREENER, owner={"agency": "health", "owner": "Synthetic"}, reason="Synthetic."), ("reason",), " ",
        "at least 1 character"),
    "a completion without a note": (ActionCompletion, ActionCompletion(actor=SCREENER, note="Synthetic."), ("note",), "",
                                    "at least 1 character"),
}


def changed(body: BaseModel, path: tuple, value: Any) -> dict[str, Any]:
    """`body` as JSON with the value at `path` replaced, appended (one past a list's end) or taken out."""
    data = copy.deepcopy(body.model_dump(mode="json"))
    *parents, last = path
    target = data
    for key in parents:
        target = target[key]
    if value is REMOVED:
        del target[last]
    elif isinstance(target, list) and last == len(target):
        target.append(value)
    else:
        target[last] = value
    return data


@pytest.mark.parametrize("name", BREACHES)
def test_each_breach_of_a_model_rule_is_refused_naming_it(name):
    model, body, path, value, reason = BREACHES[name]
    # Through JSON, as the API takes a body: a lone surrogate travels as its escape.
    model.model_validate(json.loads(json.dumps(body.model_dump(mode="json"))))  # the body as it was is valid
    with pytest.raises(ValidationError) as caught:
        model.model_validate(json.loads(json.dumps(changed(body, path, value))))
    assert reason in str(caught.value)


def test_an_absence_is_of_a_required_role_no_attendee_fills_and_is_recorded_once():
    from workflows.models import Absence, NamedRole

    discussion = strategy_discussion(datetime(2026, 3, 2, 10, tzinfo=timezone.utc), section_47=False, actions=0)
    officer_absent = Absence(named_role=NamedRole.INVESTIGATING_OFFICER, reason="Synthetic: in court.")
    with pytest.raises(ValidationError, match=r"absences\[0\].named_role: an attendee fills this role"):
        discussion.model_validate(discussion.model_dump() | {"absences": [officer_absent.model_dump()]})
    stand_in = [a.model_copy(update={"named_role": None}) if a.named_role is NamedRole.INVESTIGATING_OFFICER else a
                for a in discussion.attendees]
    body = discussion.model_dump() | {"attendees": [a.model_dump() for a in stand_in]}
    with pytest.raises(ValidationError, match=r"absences\[1\].named_role: this role's absence is already recorded"):
        discussion.model_validate(body | {"absences": [officer_absent.model_dump()] * 2})
    held = discussion.model_validate(body | {"absences": [officer_absent.model_dump()]})
    assert held.quorate  # every agency is there
    assert held.missing_roles([NamedRole.ALLOCATED_SOCIAL_WORKER, NamedRole.INVESTIGATING_OFFICER]) == [
        NamedRole.INVESTIGATING_OFFICER]
    # A body from before named roles still validates: its attendees fill none.
    legacy = discussion.model_dump() | {"attendees": [a.model_dump(exclude={"named_role"}) for a in discussion.attendees]}
    assert discussion.model_validate(legacy).missing_roles([NamedRole.INVESTIGATING_OFFICER]) == [
        NamedRole.INVESTIGATING_OFFICER]


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("2026-11-26T10:00", "2026-11-26T10:00:00+00:00"),  # GMT
        ("2026-07-01T10:00", "2026-07-01T09:00:00+00:00"),  # BST: London is an hour ahead of UTC
        ("2026-03-29T02:30", "2026-03-29T01:30:00+00:00"),  # just after the clocks go forward
        ("2026-10-25T01:30+01:00", "2026-10-25T00:30:00+00:00"),  # the repeated hour, its first pass named
        ("2026-10-25T01:30+00:00", "2026-10-25T01:30:00+00:00"),  # and its second
        ("2026-11-26T10:00:00Z", "2026-11-26T10:00:00+00:00"),
    ],
)
def test_a_time_without_an_offset_is_londons(written, meant):
    body = FORM.model_dump(mode="json")
    body["incident"]["occurred_at"] = written
    occurred = VistSubmission.model_validate(body).incident.occurred_at
    assert occurred == datetime.fromisoformat(meant)


def test_a_deadline_written_as_a_date_is_the_end_of_that_london_day():
    from workflows.models import AgreedActionSpec

    owner = {"agency": "health", "owner": "Nurse Synthetic"}
    winter = AgreedActionSpec.model_validate({"description": "Synthetic.", "owner": owner, "deadline": "2026-11-27"})
    summer = AgreedActionSpec.model_validate({"description": "Synthetic.", "owner": owner, "deadline": "2026-07-01"})
    assert winter.deadline == datetime(2026, 11, 27, 23, 59, tzinfo=timezone.utc)
    assert summer.deadline == datetime(2026, 7, 1, 22, 59, tzinfo=timezone.utc)
    with pytest.raises(ValidationError, match="is not a day of the calendar"):
        AgreedActionSpec.model_validate({"description": "Synthetic.", "owner": owner, "deadline": "2026-02-30"})
